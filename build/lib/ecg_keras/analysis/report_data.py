"""What ``report.html`` shows of a run or an ensemble, as table rows and PNG bytes, computed
from the files the run left (``metrics.json``, ``predictions_test.csv``) and the labels of its
prepared data (``data_dir``): nothing here reruns the model.

    labelled = labelled_records(config, classes)      # every fold's ecg_ids, folds, labels
    y = truth_for(ids, labelled)                        # the test labels, rows as predictions
    q, on = scored_probabilities(metrics, p)            # what the thresholds apply to
    rows = confusion_rows(y, q, metrics["thresholds"], classes)
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ecg_keras.analysis import html_page

N = html_page.number


@dataclasses.dataclass(frozen=True)
class Labelled:
    """Every record of a run's folds labelled for its task, sorted by ecg_id: ``ids`` int64
    [n], ``folds`` int64 [n], ``labels`` float32 [n, classes] (the run's classes)."""

    ids: np.ndarray
    folds: np.ndarray
    labels: np.ndarray


def labelled_records(config, extra_folds=()) -> Labelled:
    """One pass over the training, validation and test folds of ``config`` (a TrainConfig)
    and ``extra_folds`` (those ``evaluate --folds`` scored), parsing only ids, folds and
    labels (not the signals)."""
    from ecg_keras.data import input_pipeline
    from ecg_keras.training.run import class_columns

    folds = sorted({*config.train_folds, *config.val_folds, *config.test_folds, *extra_folds})
    name = f"labels/{config.task}"
    got = input_pipeline.read_labelled(config.data_dir, folds, config.task, [name, "strat_fold"])
    labels = got[name][:, class_columns(config)].astype(np.float32)
    return Labelled(got["ecg_id"], got["strat_fold"], labels)


def truth_for(ids: np.ndarray, labelled: Labelled) -> np.ndarray:
    """float32 [len(ids), classes]: the labels of ``ids`` (a predictions file's rows).

    Raises:
      ValueError: an ecg_id that the data does not hold (predictions from other data).
    """
    position = {int(i): k for k, i in enumerate(labelled.ids)}
    missing = [int(i) for i in ids if int(i) not in position]
    if missing:
        raise ValueError(
            f"ecg_ids of predictions_test.csv not labelled in the data, first 5: {missing[:5]}"
        )
    return labelled.labels[[position[int(i)] for i in ids]]


def split_rows(config, manifest: dict, labelled: Labelled, classes) -> tuple[list, list]:
    """(header, rows): per split, its folds, the records the data holds in them, those
    labelled for the task (what training and scoring use) and the positives per class."""
    header = ["split", "folds", "records", "labelled", *[f"{c} positives" for c in classes]]
    rows = []
    for name, folds in (
        ("train", config.train_folds),
        ("validation", config.val_folds),
        ("test", config.test_folds),
    ):
        records = sum(int(manifest["folds"].get(str(f), 0)) for f in folds)
        keep = np.isin(labelled.folds, list(folds))
        positives = labelled.labels[keep].sum(axis=0).astype(int).tolist()
        rows.append([name, ",".join(map(str, folds)), records, int(keep.sum()), *positives])
    return header, rows


def metric_rows(metrics: dict) -> tuple[list, list]:
    """(header, rows) of the split-level metrics in ``metrics.json``; ``-`` where a run has
    not recorded one (a run evaluated before calibration existed has no ECE)."""
    header = [
        "split", "records", "macro AUC", "90% CI", "F1 macro", "Fmax",
        "ECE", "ECE uncalibrated", "Brier", "Brier uncalibrated",
    ]  # fmt: skip
    rows = []
    for split, name in (("val", "validation"), ("test", "test")):
        block = metrics.get(split)
        if not block:
            continue
        ci = block.get("macro_auc_ci")
        rows.append([
            name, block.get("num_records", "-"), N(block.get("macro_auc")),
            f"{ci[0]:.4f}-{ci[1]:.4f}" if ci else "-", N(block.get("f1_macro")),
            N(block.get("fmax")), N(block.get("ece")), N(block.get("ece_uncalibrated")),
            N(block.get("brier")), N(block.get("brier_uncalibrated")),
        ])  # fmt: skip
    return header, rows


def per_class_rows(metrics: dict) -> tuple[list, list]:
    """(header, rows): per class, validation and test AUC, F1 threshold, calibration a, b."""
    classes, calibration = metrics["classes"], metrics.get("calibration") or {}
    header = ["class", "validation AUC", "test AUC", "threshold", "calibration a", "b"]
    missing = [None] * len(classes)
    val, test = ((metrics.get(s) or {}).get("per_class_auc", missing) for s in ("val", "test"))
    thresholds = metrics.get("thresholds", missing)
    rows = []
    for k, name in enumerate(classes):
        scale = [N(calibration[p][k]) if calibration else "-" for p in ("a", "b")]
        rows.append([name, N(val[k]), N(test[k]), N(thresholds[k]), *scale])
    return header, rows


def scored_probabilities(metrics: dict, probs: np.ndarray) -> tuple[np.ndarray, str]:
    """(what the F1 thresholds apply to, its name): the calibrated probabilities when the run
    chose its thresholds on them (``thresholds_on``), else the model's own."""
    from ecg_keras.training import calibration

    if metrics.get("calibration") and metrics.get("thresholds_on") == "calibrated probabilities":
        return calibration.apply(metrics["calibration"], probs), "calibrated probabilities"
    return np.asarray(probs, np.float32), "the model's own probabilities (no calibration)"


def confusion_rows(y, q, thresholds, classes) -> tuple[list, list]:
    """(header, rows): per class, TP, FP, FN, TN at ``q >= threshold``, then sensitivity,
    specificity, precision and F1 (``-`` where undefined)."""
    header = ["class", "threshold", "TP", "FP", "FN", "TN", "sensitivity", "specificity",
              "precision", "F1"]  # fmt: skip
    rows = []
    for k, name in enumerate(classes):
        pred, true = q[:, k] >= thresholds[k], y[:, k] > 0
        tp, fp = int((pred & true).sum()), int((pred & ~true).sum())
        fn, tn = int((~pred & true).sum()), int((~pred & ~true).sum())

        def ratio(a, b):
            return N(a / b) if b else "-"

        rates = (ratio(tp, tp + fn), ratio(tn, tn + fp), ratio(tp, tp + fp))
        rows.append(
            [name, N(thresholds[k]), tp, fp, fn, tn, *rates, ratio(2 * tp, 2 * tp + fp + fn)]
        )
    return header, rows


def roc_pr_png(y, p, classes, title: str) -> bytes:
    """One figure: per-class ROC curves (AUC in the legend) and precision-recall curves
    (average precision, and the class's prevalence as the chance level)."""
    from matplotlib.figure import Figure
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

    from ecg_keras.analysis.plots import _save
    from ecg_keras.training.metrics import per_class_auc

    fig = Figure(figsize=(12, 5.5))
    roc, pr = fig.subplots(1, 2)
    aucs = per_class_auc(y, p)
    for k, name in enumerate(classes):
        if np.isnan(aucs[k]):  # no positive (or no negative) test record: no curve
            continue
        fpr, tpr, _ = roc_curve(y[:, k], p[:, k])
        roc.plot(fpr, tpr, color=f"C{k}", label=f"{name} (AUC {aucs[k]:.3f})")
        precision, recall, _ = precision_recall_curve(y[:, k], p[:, k])
        ap = average_precision_score(y[:, k], p[:, k])
        pr.plot(recall, precision, color=f"C{k}", label=f"{name} (AP {ap:.3f})")
        pr.axhline(y[:, k].mean(), color=f"C{k}", ls=":", lw=0.8)
    roc.plot([0, 1], [0, 1], color="gray", ls=":", lw=1)
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC, {title}")
    pr.set(xlabel="recall", ylabel="precision", ylim=(0, 1.02),
           title="precision-recall (dotted: prevalence)")  # fmt: skip
    roc.legend(loc="lower right", fontsize=8)
    pr.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return html_page.png_bytes(lambda path: _save(fig, path))
