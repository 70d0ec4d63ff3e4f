"""The training callbacks ``train`` and ``tune`` share.

    score = ValidationAuc(val_ds, "max")          # logs val_macro_auc each epoch
    keep = KeepModel(workdir, select="best")       # model.keras + best.json, atomically
    model.fit(train_ds, callbacks=[score, keep])   # score first: keep reads its log

Why not ``keras.callbacks.ModelCheckpoint(monitor="val_macro_auc", save_best_only=True)``: it
writes ``model.keras`` in place, so a run killed during the save leaves a broken model that a
resumed run would trust; ``KeepModel`` writes under a temporary name and renames
(``atomic``), and records the best score in ``best.json`` so that a resumed run never replaces
a better model saved before it was killed.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from ecg_keras import atomic
from ecg_keras.filenames import BEST, MODEL
from ecg_keras.training import metrics, scoring

LOG = "val_macro_auc"


class StopOnNonFinite(keras.callbacks.Callback):
    """Raises ``FloatingPointError`` at the end of the first epoch whose weights are no longer
    all finite, before any later callback saves them (put it first).

    Why: a NaN in a weight does not always show in the logged loss (the main config trained in
    mixed_bfloat16 on an AMX Xeon went on from epoch 12 until it was killed at epoch 21, at a
    training AUC of 0.5 with a finite loss; docs/results.md), and its ``model.keras`` was NaN.
    Failing names the epoch and the first bad weight; ``backup/`` still holds the last finite
    epoch."""

    def on_epoch_end(self, epoch, logs=None):
        for weight in self.model.weights:
            if not np.isfinite(keras.ops.convert_to_numpy(weight)).all():
                raise FloatingPointError(
                    f"epoch {epoch + 1}: weight {weight.path} is no longer finite (NaN or inf);"
                    " the run stopped before saving it. If it trained in mixed_bfloat16 "
                    "(--precision=auto on a CPU with AMX), train it with --precision=float32"
                )


def weight_averaging(ema_momentum: float) -> list:
    """The callbacks that put the optimizer's averaged weights (``--ema_momentum``) in the
    model at each epoch's end, before the callbacks after them score and keep it, and the raw
    ones back for the next epoch's steps: Keras' ``SwapEMAWeights``; [] when it is off.

    Put them after ``BackupAndRestore`` (a resumed run must go on from the raw weights) and
    before ``ValidationAuc`` and ``KeepModel``. After the last epoch the averaged weights stay
    in the model, as Keras' ``fit`` leaves them."""
    return [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if ema_momentum else []


class ValidationAuc(keras.callbacks.Callback):
    """Validation macro AUC after each epoch, windows aggregated like the test (``aggregate``:
    "max" or "mean"), logged as ``val_macro_auc`` (what the tuner maximizes). From the same
    pass, ``val_loss``: the unweighted binary cross-entropy of each record's aggregated
    probability (records, not crops, and no class weighting, so it is not the training
    ``loss`` on a new fold; it tells a fine-tuned start from a fresh one). ``best`` and
    ``best_epoch`` (from 1) track the best epoch of this fit.

    ``every``: validate after epochs every, 2 * every, ... and after the last one, ``epochs``
    (None: every epoch is validated); the others log NaN for both, which ``KeepModel``
    never counts as an improvement and the training curves leave out."""

    def __init__(self, val_ds, aggregate: str, every: int = 1, epochs: int | None = None):
        super().__init__()
        self.val_ds, self.aggregate = val_ds, aggregate
        self.every, self.epochs = every, epochs
        self.best, self.best_epoch = -1.0, 0

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every and epoch + 1 != self.epochs:
            logs[LOG] = logs["val_loss"] = float("nan")
            return
        _, y, p = scoring.predict_dataset(self.model, self.val_ds, self.aggregate)
        score = metrics.macro_auc(y, p)
        logs[LOG] = score
        logs["val_loss"] = metrics.binary_cross_entropy(y, p)
        if score > self.best:
            self.best, self.best_epoch = score, epoch + 1


class KeepModel(keras.callbacks.Callback):
    """Keeps ``WORKDIR/model.keras``: the epoch with the best ``val_macro_auc``
    (``select="best"``) or the latest (``"last"``, saved every epoch so that a killed run's
    model is its last completed epoch). ``best.json`` holds the best epoch and score either way;
    ``best`` and ``best_epoch`` start from it when a killed run resumes. ``saved``: a function
    returning the model to save (default: the fitted model), e.g. the float32 network inside a
    ``device_features.training_model``. ``kept_weights``: the weights of the model last
    saved in this process (None before the first save), so that ``train`` scores the kept
    epoch without reading ``model.keras`` back."""

    def __init__(self, workdir, select: str = "best", saved=None):
        super().__init__()
        self.workdir, self.select, self.saved = Path(workdir), select, saved
        self.best, self.best_epoch = -1.0, 0
        self.kept_weights = None

    def on_train_begin(self, logs=None):
        if (self.workdir / BEST).is_file():
            saved = json.loads((self.workdir / BEST).read_text())
            self.best, self.best_epoch = saved[LOG], saved["epoch"]

    def on_epoch_end(self, epoch, logs=None):
        score = logs[LOG]
        improved = score > self.best
        if improved:
            self.best, self.best_epoch = score, epoch + 1
        if improved or self.select == "last":
            kept = self.saved() if self.saved else self.model
            with atomic.replacing(self.workdir / MODEL) as tmp:
                kept.save(tmp)
            self.kept_weights = kept.get_weights()
        if improved:
            atomic.write_json(self.workdir / BEST, {LOG: score, "epoch": epoch + 1})
