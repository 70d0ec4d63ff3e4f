"""A network scored on a prepared split, windows aggregated as the benchmark does.

    ids, y_true, y_prob = predict_dataset(network, run.split(folds, False), "max")

``ValidationAuc`` (every epoch of ``train`` and ``tune``) and ``inference.Predictor`` (every
evaluation of a kept run) call this one function, so validation during training and the
final scores see the same windows and the same aggregation.
"""

from __future__ import annotations

import numpy as np

from ecg_keras.data import windows as windows_lib


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
    def logits_of(x):
        return np.asarray(model(x, training=False), np.float64)

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
