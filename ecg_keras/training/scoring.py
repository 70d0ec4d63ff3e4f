"""A network scored on a prepared split, windows aggregated as the benchmark does.

    ids, y_true, y_prob = predict_dataset(network, run.split(folds, False), "max")

``ValidationAuc`` (every epoch of ``train`` and ``tune``) and ``inference.Predictor`` (every
evaluation of a kept run) call this one function, so validation during training and the
final scores see the same windows and the same aggregation.
"""

from __future__ import annotations

import weakref

import numpy as np
import tensorflow as tf

from ecg_keras.data import windows as windows_lib

# Inputs (windows or crops) per network call. A batch of 128 records with the main config's 31
# windows is 3,968 network inputs; in one eager call they ran at 109 windows/s on a 2-core AVX2
# EPYC (no AVX-512), in chunks of 256 through a tf.function at 404 windows/s (3.7x; chunks of
# 256 eager: 287/s): the activations of one big call no longer fit in cache. The validation
# of each epoch scored with it (docs/benchmarks.md).
CHUNK = 256
# model -> its compiled inference function, kept while the model lives: ``ValidationAuc``
# scores the same model every few epochs, and a trace per call would cost more than a chunk.
_COMPILED = weakref.WeakKeyDictionary()


def _compiled(model):
    """``model(x, training=False)`` as a tf.function (one trace for the full chunks, one for
    the shapes of last chunks); it reads the model's variables, so later weights are seen.
    The function holds the model only weakly: a strong reference in the cached value would
    keep its weak key, and every model scored (each trial of ``tune``), alive."""
    if model not in _COMPILED:
        ref = weakref.ref(model)
        _COMPILED[model] = tf.function(
            lambda x: ref()(x, training=False), reduce_retracing=True, autograph=False
        )
    return _COMPILED[model]


def predict_dataset(model, ds, aggregate: str = "max") -> tuple[np.ndarray, ...]:
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
    call = _compiled(model)

    def logits_of(x):
        chunks = [call(tf.constant(x[i : i + CHUNK])) for i in range(0, len(x), CHUNK)]
        return np.concatenate([np.asarray(c, np.float64) for c in chunks])

    def probabilities(x):
        x = x.numpy()
        if x.ndim == rank + 1:  # [batch, windows, ...]: one prediction per window
            logits = logits_of(x.reshape(-1, *x.shape[2:]))
            prob = 1 / (1 + np.exp(-logits.reshape(x.shape[0], x.shape[1], -1)))
            return windows_lib.aggregate(prob, aggregate)
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
