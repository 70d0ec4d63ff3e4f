"""Explain a model's answer for ECG records: which leads and time spans drove each class.

    python -m ecg_keras.explain --model=runs/NAME|saved_models/NAME/VERSION \
        --record=PATH/00001_lr [--record=...] [--ptbxl_dir=DIR --ecg_ids=1,2,3] \
        [--classes=MI,STTC] --output_dir=DIR

For each record (any WFDB record ``predict`` reads) and each class at or above its threshold
(or each of ``--classes``): ``DIR/NAME_CLASS.png`` (the 12 leads in mV with the spans of
largest attribution shaded, beside the spectrogram and its attribution map) and one
``DIR/NAME.json`` with, per class, the attribution mass per lead and per 0.5 s. The method is
integrated gradients of the record's logit (the max over the seven 2.5 s evaluation windows,
as ``evaluate`` scores a record) on the raw ECG, so the attribution lies in the window(s)
that produced the score; it passed both sanity checks (model randomization, masking) for
every class, docs/results.md "Explanations". Library: ``analysis/explanation.py``.
"""

from __future__ import annotations

import sys

from ecg_keras import cli_errors

# Fewer records take seconds each anyway; a bar would only clutter stderr.
PROGRESS_MIN_RECORDS = 3


def define_flags():
    from absl import flags

    flags.DEFINE_string("model", None, "Training workdir, or saved_models/NAME/VERSION.")
    flags.DEFINE_multi_string("record", [], "WFDB record path without extension (repeatable).")
    flags.DEFINE_string("ptbxl_dir", None, "PTB-XL folder, for --ecg_ids.")
    flags.DEFINE_list("ecg_ids", [], "PTB-XL ecg_ids to explain (with --ptbxl_dir).")
    flags.DEFINE_list("classes", [], "Classes to explain (default: those above threshold).")
    flags.DEFINE_string("output_dir", None, "Folder for the PNGs and JSONs.")
    flags.DEFINE_integer("steps", 32, "Integrated-gradients steps along the path.")
    flags.mark_flags_as_required(["model", "output_dir"])


def main(argv):
    from absl import flags
    from tqdm import tqdm

    from ecg_keras.analysis import explanation

    del argv
    f = flags.FLAGS
    with cli_errors.exit_on():
        try:
            ecg_ids = tuple(int(i) for i in f.ecg_ids)
        except ValueError:
            raise ValueError(f"--ecg_ids={','.join(f.ecg_ids)}: must be integers") from None
        config = explanation.ExplainConfig(
            model=f.model, output_dir=f.output_dir, records=tuple(f.record),
            ptbxl_dir=f.ptbxl_dir, ecg_ids=ecg_ids, classes=tuple(f.classes), steps=f.steps,
        )  # fmt: skip
        count = len(config.records) + len(ecg_ids)

        def progress(items):
            return tqdm(items, unit="record", file=sys.stderr, disable=count < PROGRESS_MIN_RECORDS)

        written = explanation.explain(config, progress)
    print(f"wrote {len(written)} explanations to {f.output_dir}", file=sys.stderr)


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
