"""Benchmark-protocol evaluation of a trained run: predictions, metrics.json, plots.

The library behind ``python -m ecg_keras.evaluate``.

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
from pathlib import Path

from ecg_keras import atomic, filenames
from ecg_keras.training import calibration, metrics

# What training records about itself in metrics.json; evaluate_run keeps them.
TRAINING_KEYS = (
    "epochs_trained", "train_seconds", "resumed_at_epoch", "select", "selected_epoch",
    "precision", "features_in", "init_from",
)  # fmt: skip


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
    write_predictions(out / filenames.PREDICTIONS_TEST, test_ids, test[1], classes)
    plots.roc_curves(*test, classes, out / filenames.ROC_TEST, title=title)
    params = result["calibration"]
    splits = {
        name: (split[0], split[1], calibration.apply(params, split[1]))
        for name, split in (("validation", val), ("test", test))
    }
    plots.reliability_diagram(splits, out / filenames.RELIABILITY, bins=params["ece_bins"])


def write_predictions(path, ids, probs, classes) -> None:
    """CSV with ecg_id and one probability column per class, written atomically."""
    import pandas as pd

    frame = pd.DataFrame(probs, columns=list(classes))
    frame.insert(0, "ecg_id", ids)
    with atomic.replacing(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")


def evaluate_predictor(predictor, out, data_dir=None, training: dict | None = None) -> dict:
    """Scores ``predictor`` (an ``inference.Predictor`` of one run) on its validation and test
    folds and writes metrics.json, predictions, ROC and reliability plots and report.html into
    ``out``.

    Args:
      training: what training recorded about itself (``TRAINING_KEYS``), kept in metrics.json.
      data_dir: the TFRecords the report reads (default: the run's).

    Returns:
      the metrics.json content.
    """
    from ecg_keras.analysis import report as report_html  # its own name: report() is here

    out = Path(out)
    config = predictor.config
    _, *val = predictor.predict_split(config.val_folds)
    ids, *test = predictor.predict_split(config.test_folds)
    result = report(val, test, predictor.classes, config.task)
    result["test_folds"] = list(config.test_folds)
    result["aggregate"] = config.aggregate
    title = f"test folds {list(config.test_folds)}: macro AUC {result['test']['macro_auc']:.3f}"
    write_outputs(out, result, val, test, ids, title)
    result.update({k: training[k] for k in TRAINING_KEYS if k in (training or {})})
    atomic.write_json(out / filenames.METRICS, result)
    report_html.write(out, data_dir=data_dir and str(data_dir))  # last: reads metrics.json
    return result


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
    from ecg_keras.inference.predictor import Predictor, run_metrics

    workdir = Path(workdir)
    data_dir = data_dir and str(data_dir)
    previous = run_metrics(workdir, required=False)  # training's own keys are kept
    predictor = Predictor.from_workdir(workdir, data_dir=data_dir, metrics=previous)
    config = predictor.config
    changes = {}
    if windows is not None:
        changes = {"crop_seconds": windows[0], "window_stride_seconds": windows[1] or 1.0}
    config = dataclasses.replace(
        config,
        features=dataclasses.replace(config.features, **changes),
        test_folds=tuple(folds or config.test_folds),
        aggregate=aggregate or config.aggregate,
    )
    return evaluate_predictor(predictor.with_config(config), workdir, data_dir, previous)


def evaluate_external_dirs(path, sources) -> list[dict]:
    """Scores the run, ensemble or export at ``path`` on each folder of Challenge-layout
    records in ``sources`` (``analysis.external``), into ``PATH/external/NAME/`` (a .tflite
    file: ``external/STEM/NAME/`` beside it); a run's or
    ensemble's ``report.html`` is rewritten with them. Returns each folder's metrics.json.

    Raises:
      ValueError / FileNotFoundError naming the path or folder that is wrong.
    """
    from ecg_keras.analysis import external
    from ecg_keras.analysis import report as report_html
    from ecg_keras.inference import predictor as predictor_lib

    path = Path(path)
    names = [external.source_records(s)[0] for s in sources]  # bad folders fail before loading
    if len(set(names)) != len(names):
        raise ValueError(f"--external_dir: two folders share a name ({names}); rename one")
    predictor = predictor_lib.load(path)
    # A .tflite file's results go beside it, under its own name (int8.tflite: external/int8/).
    root = (
        path.parent / filenames.EXTERNAL / path.stem
        if path.is_file()
        else path / filenames.EXTERNAL
    )
    results = [external.evaluate_external(predictor, s, root) for s in sources]
    if filenames.kind(path) in ("run", "ensemble") and (path / filenames.METRICS).is_file():
        report_html.write(path)
    return results
