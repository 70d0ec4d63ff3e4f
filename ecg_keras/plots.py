"""PNG plots of a run: training curves and per-class ROC curves. Headless (Agg canvas)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve


def _save(fig: Figure, output: str | os.PathLike) -> Path:
    """Saves through a temporary name, so a PNG under its final name is always whole."""
    output = Path(output)
    tmp = output.with_name(f".{output.stem}.{os.getpid()}.tmp.png")
    FigureCanvasAgg(fig).print_png(str(tmp))
    os.replace(tmp, output)
    return output


def training_curves(history_csv: str | os.PathLike, output: str | os.PathLike) -> Path:
    """Loss and validation macro AUC per epoch, from Keras' CSVLogger file."""
    history = pd.read_csv(history_csv)
    fig = Figure(figsize=(10, 4))
    loss, auc = fig.subplots(1, 2)
    epochs = history["epoch"] + 1
    loss.plot(epochs, history["loss"], label="train")
    if "val_loss" in history:
        loss.plot(epochs, history["val_loss"], label="validation")
    loss.set(xlabel="epoch", ylabel="binary cross-entropy", title="loss")
    loss.legend()
    if "val_macro_auc" in history:
        auc.plot(epochs, history["val_macro_auc"], color="C1", marker="o", ms=3)
        best = history["val_macro_auc"].idxmax()
        auc.axvline(epochs[best], color="gray", ls="--", lw=1, label=f"best epoch {epochs[best]}")
        auc.legend()
    auc.set(xlabel="epoch", ylabel="macro AUC", title="validation macro AUC (windows, aggregated)")
    fig.tight_layout()
    return _save(fig, output)


def roc_curves(y_true, y_prob, classes, output, title: str = "") -> Path:
    """One ROC curve per class (with its AUC in the legend) on one axis."""
    from ecg_keras.metrics import per_class_auc

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
