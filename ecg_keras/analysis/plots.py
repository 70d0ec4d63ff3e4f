"""PNG plots of a run: training curves and per-class ROC curves. Headless (Agg canvas)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from ecg_keras import atomic


def _save(fig: Figure, output: str | os.PathLike) -> Path:
    """Saves through a temporary name, so a PNG under its final name is always whole."""
    output = Path(output)
    with atomic.replacing(output) as tmp:
        FigureCanvasAgg(fig).print_png(str(tmp))
    return output


def training_curves(
    history_csv: str | os.PathLike, output: str | os.PathLike, kept_epoch: int | None = None
) -> Path:
    """Loss and validation macro AUC per epoch, from Keras' CSVLogger file. A dashed line marks
    ``kept_epoch`` (the epoch in ``model.keras``: the last one with ``--select=last``), or the
    best validated epoch when it is None."""
    history = pd.read_csv(history_csv)
    fig = Figure(figsize=(10, 4))
    loss, auc = fig.subplots(1, 2)
    epochs = history["epoch"] + 1
    loss.plot(epochs, history["loss"], label="train")
    # --validation_freq > 1 leaves NaN between validated epochs: join the validated ones.
    validated = history["val_macro_auc"].notna() if "val_macro_auc" in history else slice(None)
    if "val_loss" in history:
        loss.plot(epochs[validated], history["val_loss"][validated], label="validation")
    loss.set(xlabel="epoch", ylabel="binary cross-entropy", title="loss")
    loss.legend()
    if "val_macro_auc" in history:
        auc.plot(epochs[validated], history["val_macro_auc"][validated], "C1", marker="o", ms=3)
        if kept_epoch is None:
            kept_epoch, what = int(epochs[history["val_macro_auc"].idxmax()]), "best"
        else:
            what = "kept"
        auc.axvline(kept_epoch, color="gray", ls="--", lw=1, label=f"{what} epoch {kept_epoch}")
        auc.legend()
    auc.set(xlabel="epoch", ylabel="macro AUC", title="validation macro AUC (windows, aggregated)")
    fig.tight_layout()
    return _save(fig, output)


def roc_curves(y_true, y_prob, classes, output, title: str = "") -> Path:
    """One ROC curve per class (with its AUC in the legend) on one axis."""
    from ecg_keras.training.metrics import per_class_auc

    fig = Figure(figsize=(6, 6))
    ax = fig.subplots()
    aucs = per_class_auc(np.asarray(y_true), np.asarray(y_prob))
    for k, name in enumerate(classes):
        if np.isnan(aucs[k]):
            continue
        fpr, tpr, _ = roc_curve(y_true[:, k], y_prob[:, k])
        ax.plot(fpr, tpr, label=f"{name} (AUC {aucs[k]:.3f})")
    ax.plot([0, 1], [0, 1], color="gray", ls=":", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return _save(fig, output)


def comparison(scores: dict, differences: dict, output, title: str = "") -> Path:
    """``compare``'s figure: per-seed scores of each config, and the paired differences.

    Left: each config's validation and test macro AUC, one point per seed, with the mean ±
    sample sd as a bar. Right (with at least one pair): each pair's paired-bootstrap
    distribution of the test macro AUC difference, whiskers at its 90% interval.

    Args:
      scores: config name -> {"val": [macro AUC per seed], "test": [...]}.
      differences: "A - B" -> float [resamples] (``metrics.paired_bootstrap_macro_auc``).
    """
    fig = Figure(figsize=(11 if differences else 6, 4.5))
    axes = np.atleast_1d(fig.subplots(1, 2 if differences else 1))
    ax = axes[0]
    names = list(scores)
    for k, name in enumerate(names):
        for offset, split, color in ((-0.15, "val", "C1"), (0.15, "test", "C0")):
            values = np.asarray(scores[name][split], float)
            label = ("validation" if split == "val" else "test") if k == 0 else None
            ax.plot(np.full(len(values), k + offset), values, "o", color=color, alpha=0.5)
            sd = values.std(ddof=1) if len(values) > 1 else 0.0
            ax.errorbar(k + offset, values.mean(), yerr=sd, fmt="_", ms=16, capsize=5,
                        color=color, label=label)  # fmt: skip
    ax.set_xticks(range(len(names)), names)
    ax.set(xlim=(-0.6, len(names) - 0.4), ylabel="macro AUC", title=title or "per seed")
    ax.legend()
    if differences:
        pairs = list(differences)
        axes[1].boxplot([differences[p] for p in pairs], vert=False, whis=(5, 95),
                        tick_labels=pairs, showmeans=True, showfliers=False)  # fmt: skip
        axes[1].axvline(0.0, color="gray", ls="--", lw=1)
        axes[1].set(
            xlabel="test macro AUC difference",
            title="paired bootstrap (box: quartiles, whiskers: 90%)",
        )
    fig.tight_layout()
    return _save(fig, output)


def reliability_diagram(splits: dict, output, bins: int = 15) -> Path:
    """Reliability diagram: observed frequency against mean probability per equal-width bin.

    One panel per split, over all classes' probabilities (as ``calibration``'s ECE counts
    them), the model's own probabilities and the calibrated ones, the ECE of each in the
    legend, and the share of probabilities per bin (uncalibrated, bars) below.

    Args:
      splits: name -> (y_true 0/1 [records, classes], y_prob float [records, classes],
        calibrated float [records, classes]).
    """
    from ecg_keras.training.calibration import expected_calibration_error

    fig = Figure(figsize=(5 * len(splits), 5.5))
    axes = np.atleast_1d(fig.subplots(1, len(splits)))
    edges = np.linspace(0.0, 1.0, bins + 1)
    for ax, (name, (y_true, y_prob, calibrated)) in zip(axes, splits.items(), strict=True):
        y = np.ravel(y_true).astype(float)
        for probs, label, color in (
            (y_prob, "uncalibrated", "C3"),
            (calibrated, "calibrated", "C0"),
        ):
            p = np.ravel(probs).astype(float)
            index = np.minimum((p * bins).astype(int), bins - 1)
            count = np.bincount(index, minlength=bins)
            seen = count > 0
            mean_p = np.bincount(index, p, bins)[seen] / count[seen]
            freq = np.bincount(index, y, bins)[seen] / count[seen]
            ece = expected_calibration_error(y, p, bins)
            ax.plot(mean_p, freq, "o-", color=color, ms=4, label=f"{label} (ECE {ece:.3f})")
            if label == "uncalibrated":
                ax.bar(edges[:-1], 0.25 * count / len(p), width=1 / bins, align="edge",
                       color=color, alpha=0.15, label="share of probabilities (x0.25)")  # fmt: skip
        ax.plot([0, 1], [0, 1], color="gray", ls=":", lw=1)
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted probability",
               ylabel="observed frequency", title=f"{name}: {y.size} probabilities")  # fmt: skip
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    return _save(fig, output)
