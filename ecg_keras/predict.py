"""Predict the classes of WFDB ECG records with an exported model.

    python -m ecg_keras.predict --model=saved_models/NAME/VERSION|FILE.tflite \
        [--record=PATH/00001_lr ...] [--record_dir=DIR ...] [--ptbxl_dir=DIR --ecg_ids=1,2,3] \
        [--output=FILE.csv|FILE.jsonl]

Records run in the order given: ``--record`` paths, then each ``--record_dir`` (the records
its ``RECORDS`` file lists, else every ``*.hea`` in it, sorted), then ``--ecg_ids``. Without
``--output``, one JSON line per record goes to stdout: ``record``, ``probabilities`` (class ->
probability, calibrated as the export's ``metadata.json`` records), ``labels`` (classes at or
above the exported validation thresholds), ``notes`` (what was done to fit the record to the
model) and, for ``--ecg_ids``, ``ecg_id``. With
``--output``, one flat row per record (``record``, ``ecg_id``, one column per class,
``labels`` joined by ";", ``notes`` joined by "; ", ``error``) goes to a CSV or JSON-lines
file, which appears only once complete. A record that cannot be read gets an ``error`` and an
``error:`` line on stderr, and the others still run; the exit code is 1 when any record
failed. More than ``PROGRESS_MIN_RECORDS`` records show a progress bar on stderr.

Any WFDB record with the 12 standard leads is accepted (``ptbxl.read_any_record``): leads are
matched by name and put in the model's order, another sampling rate is resampled to the
model's (``scipy.signal.resample_poly``). A longer record than the model's 10 s is scored over
its whole length with the evaluation's windows, stride and aggregation (10 s spans through the
signature, ``inference.records.combine_spans``); a shorter one (at least ``MIN_SECONDS``) is
repeated from its start until 10 s, because the model has only seen ECGs, never a flat pad. A
.tflite file needs the ``metadata.json`` that ``export`` writes next to it.
"""

from __future__ import annotations

import sys

from ecg_keras import cli_errors
from ecg_keras.inference.records import (
    check_output,
    dir_records,
    line_writer,
    predict_all,
    record_list,
)


def define_flags():
    from absl import flags

    flags.DEFINE_string(
        "model", None, "saved_models/NAME/VERSION, a .tflite file, or a training workdir."
    )
    flags.DEFINE_multi_string("record", [], "WFDB record path without extension (repeatable).")
    flags.DEFINE_multi_string(
        "record_dir", [], "Folder: the records its RECORDS file lists, else every *.hea in it."
    )
    flags.DEFINE_string("ptbxl_dir", None, "PTB-XL folder, for --ecg_ids.")
    flags.DEFINE_list("ecg_ids", [], "PTB-XL ecg_ids to predict (with --ptbxl_dir).")
    flags.DEFINE_string(
        "output", None, "FILE.csv or FILE.jsonl: one row per record (default: JSON lines)."
    )
    flags.mark_flag_as_required("model")


def main(argv):
    from absl import flags

    from ecg_keras.inference import predictor as predictor_lib

    del argv
    f = flags.FLAGS
    try:
        ecg_ids = [int(i) for i in f.ecg_ids]
    except ValueError:
        print(f"error: --ecg_ids={','.join(f.ecg_ids)}: must be integers", file=sys.stderr)
        sys.exit(1)
    with cli_errors.exit_on():
        if not f.record and not f.record_dir and not ecg_ids:
            raise ValueError(
                "nothing to predict: pass --record=PATH, --record_dir=DIR, or --ptbxl_dir and "
                "--ecg_ids"
            )
        if ecg_ids and not f.ptbxl_dir:
            raise ValueError("--ecg_ids needs --ptbxl_dir")
        output = check_output(f.output)
        paths = [*f.record, *(p for folder in f.record_dir for p in dir_records(folder))]
        predictor = predictor_lib.load(f.model)
        records = record_list(paths, f.ptbxl_dir, ecg_ids, predictor.metadata["sampling_rate"])
    with line_writer(output, predictor.metadata["classes"]) as write:
        failed = predict_all(predictor, records, write)
    if output:
        print(f"wrote {len(records)} rows to {output}", file=sys.stderr)
    if failed:
        print(f"error: {failed} of {len(records)} records failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
