"""(Re)write ``report.html`` for a run, an ensemble or a comparison.

    python -m ecg_keras.report --workdir=runs/NAME|runs/ens_NAME|runs/compare_NAME \
        [--explain_classes=2] [--data_dir=...]

``train`` and ``evaluate`` write it in the workdir, ``ensemble`` and ``compare`` in their
output dir; this command writes it alone, from the files there (the model runs only for the
explanations). One self-contained HTML file: images embedded, no script and no link, so it
opens offline. Library: ``analysis/report.py``.
"""

from __future__ import annotations

import time

from ecg_keras import cli_errors


def define_flags():
    """``--workdir`` (required), ``--explain_classes``, ``--data_dir``."""
    from absl import flags

    flags.DEFINE_string("workdir", None, "A training workdir, ensemble or compare output dir.")
    flags.DEFINE_integer(
        "explain_classes", None,
        "Classes whose test records are explained (runs only; 0: none); default "
        "$ECG_KERAS_REPORT_EXPLAIN_CLASSES, else 2.",
    )  # fmt: skip
    flags.DEFINE_string("data_dir", None, "Prepared TFRecords for the labels (default: the run's).")
    flags.mark_flag_as_required("workdir")


def main(argv):
    """Writes the report; a missing or unknown folder exits 1 with ``error:``."""
    from absl import flags

    from ecg_keras.analysis import report

    del argv
    f = flags.FLAGS
    start = time.perf_counter()
    with cli_errors.exit_on():
        path = report.write(f.workdir, f.explain_classes, f.data_dir)
    print(f"wrote {path} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
