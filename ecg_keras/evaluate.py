"""Benchmark-protocol evaluation of a trained run: predictions, metrics.json, plots.

    python -m ecg_keras.evaluate --workdir=runs/NAME [--data_dir=...] [--folds=10] \
        [--windows=2.5,1.25 --aggregate=max|mean]
    python -m ecg_keras.evaluate --workdir=RUN|ENSEMBLE|saved_models/NAME/V|FILE.tflite \
        --external_dir=DIR [--external_dir=DIR2 ...]   # other databases: RUN/external/DIR/

This module only parses the flags; ``ecg_keras.analysis.evaluation.evaluate_run`` and
``evaluate_external_dirs`` (``analysis/external.py``) do the work and say what is written.
"""

from __future__ import annotations

from ecg_keras import cli_errors
from ecg_keras.analysis.evaluation import evaluate_external_dirs, evaluate_run


def define_flags():
    from absl import flags

    flags.DEFINE_string("workdir", None, "Training workdir holding model.keras.")
    flags.DEFINE_string("data_dir", None, "Prepared TFRecords (default: the run's).")
    flags.DEFINE_list("folds", None, "Test folds (default: the run's, usually 10).")
    flags.DEFINE_list("windows", None, "window_seconds,stride_seconds; 0 = whole records.")
    flags.DEFINE_enum("aggregate", None, ["max", "mean"], "How windows combine.")
    flags.DEFINE_multi_string(
        "external_dir",
        [],
        "Challenge-layout records (a folder or its RECORDS file; repeatable): score the run, "
        "ensemble or export --workdir on them into WORKDIR/external/NAME/ instead.",
    )
    flags.mark_flag_as_required("workdir")


def main(argv):
    from absl import flags

    del argv
    f = flags.FLAGS
    if f.external_dir:
        with cli_errors.exit_on():
            results = evaluate_external_dirs(f.workdir, f.external_dir)
        for r in results:
            auc = "n/a" if r["macro_auc"] is None else f"{r['macro_auc']:.4f}"
            ci = (
                r["macro_auc_ci"]
                and f" (90% CI {r['macro_auc_ci'][0]:.4f}-{r['macro_auc_ci'][1]:.4f})"
            )
            print(
                f"{r['name']}: macro AUC {auc}{ci or ''} on {r['num_scored']} scored of "
                f"{r['num_records']} records ({r['num_refused']} refused, "
                f"{r['num_unknown_status']} of unknown superclass status); per class "
                + ", ".join(
                    f"{c} {'n/a' if a is None else f'{a:.3f}'}"
                    for c, a in r["per_class_auc"].items()
                )
            )
        return
    with cli_errors.exit_on():
        windows = None
        if f.windows is not None:
            windows = tuple(float(v) for v in f.windows) + (0.0,) * (2 - len(f.windows))
        result = evaluate_run(
            f.workdir,
            f.data_dir,
            [int(v) for v in f.folds] if f.folds else None,
            windows,
            f.aggregate,
        )
    test = result["test"]
    print(
        f"test macro AUC {test['macro_auc']:.4f} (90% CI {test['macro_auc_ci'][0]:.4f}-"
        f"{test['macro_auc_ci'][1]:.4f}), F1 {test['f1_macro']:.4f}, Fmax {test['fmax']:.4f}; "
        f"validation macro AUC {result['val']['macro_auc']:.4f}; ECE (15 bins) validation "
        f"{result['val']['ece_uncalibrated']:.4f} -> {result['val']['ece']:.4f} calibrated, "
        f"test {test['ece_uncalibrated']:.4f} -> {test['ece']:.4f}"
    )


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
