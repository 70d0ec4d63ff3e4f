"""Benchmark-protocol evaluation of a trained run: predictions, metrics.json, plots.

    python -m ecg_keras.evaluate --workdir=runs/NAME [--data_dir=...] [--folds=10] \
        [--windows=2.5,1.25 --aggregate=max|mean]

A record's prediction is the max (or mean) of the model's sigmoid outputs over 2.5 s windows
at a 1.25 s stride, as in the PTB-XL benchmark; with ``--windows=0`` the model sees the whole
10 s record. Thresholds for F1 are chosen on the validation folds and applied to the test
folds. Probabilities are calibrated per class on the validation folds (Platt scaling,
``training/calibration.py``): metrics.json records the parameters (``calibration``) and, per
split, ECE and Brier score before and after; ``reliability.png`` draws both. ``report.html``
(``analysis/report.py``) is rewritten from them last. The library functions are what
``train`` calls after training.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ecg_keras import atomic, cli_errors
from ecg_keras.training import calibration, metrics

METRICS = "metrics.json"
# What training records about itself in metrics.json; evaluate_run keeps them.
TRAINING_KEYS = (
    "epochs_trained", "train_seconds", "resumed_at_epoch", "select", "selected_epoch",
    "precision", "features_in",
)  # fmt: skip


def predict(model, ds, aggregate: str = "max") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs ``model`` over a ``make_dataset(..., training=False, with_ids=True)`` dataset.

    Whether a batch holds windows is read off the model, not the data: the batch has one
    axis more than the model's input (spectrogram [batch, windows, frames, bins, channels] for
    a [batch, frames, bins, channels] model; signal [batch, windows, samples, 12] for a
    [batch, samples, 12] one), or exactly its rank.

    Returns:
      ecg_ids int64 [records], y_true float32 [records, classes], y_prob float32
      [records, classes] (sigmoid, aggregated over windows when the dataset has them).

    Raises:
      ValueError: a batch whose rank is neither the model input's nor one more.
    """
    rank = len(model.input_shape)  # with the batch axis

    # A plain call, not predict_on_batch: under MultiWorkerMirroredStrategy the latter would
    # split the batch across workers, and each worker scores the whole fold itself.
    def logits_of(x):
        return np.asarray(model(x, training=False), np.float64)

    def probabilities(x):
        x = x.numpy()
        if x.ndim == rank + 1:  # [batch, windows, ...]: one prediction per window
            logits = logits_of(x.reshape(-1, *x.shape[2:]))
            prob = 1 / (1 + np.exp(-logits.reshape(x.shape[0], x.shape[1], -1)))
            return prob.max(1) if aggregate == "max" else prob.mean(1)
        if x.ndim != rank:
            raise ValueError(
                f"a batch of shape {x.shape} fits neither the model input {model.input_shape} "
                "nor windows of it"
            )
        return 1 / (1 + np.exp(-logits_of(x)))

    ids, truth, probs = [], [], []
    for x, labels, ecg_id in ds:
        probs.append(probabilities(x).astype(np.float32))
        truth.append(labels.numpy())
        ids.append(ecg_id.numpy())
    return np.concatenate(ids), np.concatenate(truth), np.concatenate(probs)


def report(val, test, classes, task: str) -> dict:
    """metrics.json content from (y_true, y_prob) of validation and test.

    Calibration (``training/calibration.py``) is fitted on validation; the F1 thresholds are
    chosen on the calibrated validation probabilities and F1 is scored on the calibrated test
    ones, as the export labels records. AUCs (unchanged by the increasing per-class map) and
    Fmax are the model's own probabilities', as the PTB-XL benchmark scores them. Each split
    gains ``ece``, ``brier`` (calibrated), ``ece_uncalibrated`` and ``brier_uncalibrated``.
    """
    params = calibration.fit(*val)
    val_calibrated, test_calibrated = (calibration.apply(params, s[1]) for s in (val, test))
    thresholds = metrics.best_thresholds(val[0], val_calibrated)
    val_block = metrics.summarize(*val)
    test_block = metrics.summarize(*test, bootstrap=True)
    test_block["f1_macro"] = metrics.f1_macro(test[0], test_calibrated, thresholds)
    val_block.update(calibration.scores(*val, val_calibrated))
    test_block.update(calibration.scores(*test, test_calibrated))
    return {
        "task": task,
        "classes": list(classes),
        "val": val_block,
        "test": test_block,
        "thresholds": thresholds.tolist(),
        "thresholds_on": "calibrated probabilities",
        "calibration": params,
    }


def write_outputs(out: Path, result: dict, val, test, test_ids, title: str) -> None:
    """``predictions_test.csv`` (the model's own probabilities), ``roc_test.png`` and
    ``reliability.png`` (validation and test, before and after calibration) into ``out``."""
    from ecg_keras.analysis import plots

    classes = result["classes"]
    write_predictions(out / "predictions_test.csv", test_ids, test[1], classes)
    plots.roc_curves(*test, classes, out / "roc_test.png", title=title)
    params = result["calibration"]
    splits = {
        name: (split[0], split[1], calibration.apply(params, split[1]))
        for name, split in (("validation", val), ("test", test))
    }
    plots.reliability_diagram(splits, out / "reliability.png", bins=params["ece_bins"])


def write_predictions(path, ids, probs, classes) -> None:
    """CSV with ecg_id and one probability column per class, written atomically."""
    import pandas as pd

    frame = pd.DataFrame(probs, columns=list(classes))
    frame.insert(0, "ecg_id", ids)
    with atomic.replacing(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")


def evaluate_run(workdir, data_dir=None, folds=None, windows=None, aggregate=None) -> dict:
    """Recomputes metrics.json, predictions, ROC plots and report.html of a run from its kept
    model.

    Args:
      workdir: a training workdir (``model.keras``, ``run.json``).
      data_dir: prepared TFRecords; default: the run's.
      folds: test folds; default: the run's. Thresholds always come from the run's
        validation folds.
      windows: (window_seconds, stride_seconds), (0, 0) for whole records; default: the run's.
      aggregate: ``max`` or ``mean``; default: the run's.
    """
    import keras

    from ecg_keras.training import recipe
    from ecg_keras.training.run import Run

    workdir = Path(workdir)
    saved = Run.load(workdir, data_dir and str(data_dir))
    config = saved.config
    changes = {}
    if windows is not None:
        changes = {"crop_seconds": windows[0], "window_stride_seconds": windows[1] or 1.0}
    features = dataclasses.replace(config.features, **changes)
    config = dataclasses.replace(
        config,
        features=features,
        test_folds=tuple(folds or config.test_folds),
        aggregate=aggregate or config.aggregate,
    )
    model = keras.models.load_model(workdir / recipe.MODEL, compile=False)  # inference only
    classes = list(saved.classes)
    scored = saved.with_config(config, saved.stats)

    def run(folds):
        return predict(model, scored.split(folds, False), config.aggregate)

    _, *val = run(config.val_folds)
    ids, *test = run(config.test_folds)
    result = report(val, test, classes, config.task)
    result["test_folds"] = list(config.test_folds)
    result["aggregate"] = config.aggregate
    title = f"test folds {list(config.test_folds)}: macro AUC {result['test']['macro_auc']:.3f}"
    write_outputs(workdir, result, val, test, ids, title)
    previous = workdir / METRICS
    if previous.is_file():  # keep what training recorded about itself
        old = json.loads(previous.read_text())
        result.update({k: old[k] for k in TRAINING_KEYS if k in old})
    atomic.write_json(previous, result)
    from ecg_keras.analysis import report as report_html  # its own name: report() is here

    report_html.write(workdir, data_dir=data_dir and str(data_dir))  # last: reads metrics.json
    return result


def define_flags():
    from absl import flags

    flags.DEFINE_string("workdir", None, "Training workdir holding model.keras.")
    flags.DEFINE_string("data_dir", None, "Prepared TFRecords (default: the run's).")
    flags.DEFINE_list("folds", None, "Test folds (default: the run's, usually 10).")
    flags.DEFINE_list("windows", None, "window_seconds,stride_seconds; 0 = whole records.")
    flags.DEFINE_enum("aggregate", None, ["max", "mean"], "How windows combine.")
    flags.mark_flag_as_required("workdir")


def main(argv):
    from absl import flags

    del argv
    f = flags.FLAGS
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
