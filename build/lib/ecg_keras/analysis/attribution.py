"""Which samples and leads of an ECG drove a class's score: integrated gradients on the raw ECG.

    model = explainable.load("runs/NAME")  # a workdir, or saved_models/NAME/VERSION
    ecg = robustness.read_for_model(path, model.metadata)  # float32 [1000, 12] mV
    attr = attribution.integrated_gradients(model, ecg)
    attr[c]  # float32 [1000, 12]: sums to score_c(ecg) - score_c(baseline(ecg))

The explained score is the record's, as ``evaluate`` and the export compute it: the 10 s
record is cut into the evaluation windows (seven 2.5 s windows at 1.25 s for 100 Hz), each
window gets logits, and the record's score of class c is the max over windows of the logit
(the logit of the max-aggregated probability, since the sigmoid is monotonic). Integrated
gradients (Sundararajan et al. 2017) of that max over the whole record: the gradient flows
through whichever window is the max at each point of the path, so the attribution lies in the
window(s) that produced the record's score and is zero elsewhere. Being on the raw signal in
mV, it works alike for spectrogram models (``SpectrogramLayer`` inside) and 1D models.

The baseline is each lead's median held flat (no ECG activity at the lead's own level): the
same value that ``mask_blocks`` writes into masked spans, so masking a span moves it to where
the attribution path starts. Loading a model is ``explainable.load``; the measured choice of this
method over Grad-CAM is in docs/results.md ("Explanations").
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ecg_keras.analysis.explainable import Explainable, record_logits
from ecg_keras.data import features

__all__ = ["Explainable", "integrated_gradients", "record_logits", "spectrogram_attribution"]

STEPS = 32  # Riemann midpoints; completeness error < 2% of the score change at 32 (tests)
BIN_SECONDS = 0.5  # the JSON's time resolution


def baseline(ecg: np.ndarray) -> np.ndarray:
    """float32 [samples, 12] -> the same shape: each lead's median, held flat."""
    ecg = np.asarray(ecg, np.float32)
    return np.broadcast_to(np.median(ecg, axis=0), ecg.shape).astype(np.float32)


def integrated_gradients(
    model: Explainable, ecg: np.ndarray, steps: int = STEPS, batch: int = 16
) -> np.ndarray:
    """Integrated gradients of every class's record logit, from ``baseline(ecg)`` to ``ecg``.

    Args:
      model: the ``Explainable``.
      ecg: float32 [record_samples, 12] mV.
      steps: midpoint Riemann steps along the straight path (alpha = (k + 0.5) / steps).

    Returns:
      float32 [classes, record_samples, 12]; ``attr[c].sum()`` ~ logit_c(ecg) -
      logit_c(baseline). Non-finite gradients (|STFT| = 0 has none) count as 0.
    """
    x = tf.constant(ecg, tf.float32)
    x0 = tf.constant(baseline(ecg))
    alphas = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    step = _gradient_step(model)
    total = sum(step(x0, x, tf.constant(alphas[i : i + batch])) for i in range(0, steps, batch))
    return ((total / steps) * (x - x0)).numpy().astype(np.float32)


_STEPS_CACHE: dict = {}


def _gradient_step(model: Explainable):
    """A compiled ``(x0, x, alphas [b]) -> sum over the b path points of d logit_c / d input``,
    float32 [classes, samples, 12], one per model (tracing costs seconds, a step ~0.1 s)."""
    key = id(model.window_logits)
    if key not in _STEPS_CACHE:

        @tf.function(reduce_retracing=True)
        def step(x0, x, alphas):
            path = x0 + alphas[:, None, None] * (x - x0)  # [b, samples, 12]
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(path)
                logits = record_logits(model, path)  # [b, classes]
                targets = [tf.reduce_sum(logits[:, c]) for c in range(logits.shape[-1])]
            grads = tf.stack([tape.gradient(t, path) for t in targets])  # [classes, b, s, 12]
            grads = tf.where(tf.math.is_finite(grads), grads, 0.0)
            return tf.reduce_sum(grads, axis=1)

        # Holds window_logits too, so that its id is not reused while the entry lives.
        _STEPS_CACHE[key] = (model.window_logits, step)
    return _STEPS_CACHE[key][1]


def lead_mass(attr: np.ndarray) -> np.ndarray:
    """float32 [samples, 12] -> float64 [12]: each lead's share of sum |attr| (sums to 1)."""
    mass = np.abs(attr).sum(axis=0).astype(np.float64)
    return mass / max(mass.sum(), 1e-30)


def time_mass(attr: np.ndarray, rate: int, seconds: float = BIN_SECONDS) -> np.ndarray:
    """float32 [samples, 12] -> float64 [samples / (rate * seconds)]: each ``seconds`` span's
    share of sum |attr| over all leads (sums to 1; 20 bins for 10 s at 0.5 s)."""
    width = round(rate * seconds)
    per_sample = np.abs(attr).sum(axis=1).astype(np.float64)
    bins = per_sample[: len(per_sample) // width * width].reshape(-1, width).sum(axis=1)
    return bins / max(bins.sum(), 1e-30)


def blocks(attr: np.ndarray, width: int) -> np.ndarray:
    """float32 [samples, 12] -> float64 [samples // width, 12]: attribution summed per span."""
    n = attr.shape[0] // width
    return attr[: n * width].reshape(n, width, attr.shape[1]).sum(axis=1, dtype=np.float64)


def mask_blocks(ecg: np.ndarray, chosen: np.ndarray, width: int) -> np.ndarray:
    """``ecg`` float32 [samples, 12] with every chosen (span, lead) block (bool
    [samples // width, 12]) replaced by the lead's median, as in ``baseline``."""
    keep = ~np.repeat(chosen, width, axis=0)
    out = np.array(ecg, np.float32, copy=True)
    out[: keep.shape[0]] = np.where(keep, ecg[: keep.shape[0]], baseline(ecg)[: keep.shape[0]])
    return out


def top_blocks(block_attr: np.ndarray, fraction: float) -> np.ndarray:
    """bool, shaped like ``block_attr``: the ``fraction`` of blocks with the largest (signed)
    attribution: the spans that pushed the score up most."""
    k = max(1, round(fraction * block_attr.size))
    flat = np.zeros(block_attr.size, bool)
    flat[np.argsort(-block_attr, axis=None)[:k]] = True
    return flat.reshape(block_attr.shape)


def random_blocks(shape, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """bool ``shape``: a random ``fraction`` of the blocks (as many as ``top_blocks``)."""
    size = int(np.prod(shape))
    flat = np.zeros(size, bool)
    flat[rng.choice(size, max(1, round(fraction * size)), replace=False)] = True
    return flat.reshape(shape)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two arrays of the same shape (flattened)."""
    from scipy import stats

    return float(stats.spearmanr(np.ravel(a), np.ravel(b)).statistic)


def spectrogram_attribution(
    model: Explainable, ecg: np.ndarray, classes, steps: int = STEPS
) -> dict:
    """Integrated gradients on the network's input, the normalized spectrogram, per class,
    for the window that gives the record its score (the max window; spectrogram workdir
    models only, which hold the network).

    Args:
      ecg: float32 [record_samples, 12] mV.
      classes: the class indices to explain, k of them.

    Returns:
      {"window": int32 [k] (the explained window of each class), "spectrogram": float32
      [windows, frames, bins, channels] (every window's network input), "attribution": float32
      [k, frames, bins, channels] (on window ``window[i]``; baseline: the spectrogram of
      ``baseline(ecg)``'s window)}.
    """
    w = model.windows
    cut = features.sliding_windows(tf.constant(ecg), w.length, w.stride)[: w.count]
    x0_cut = features.sliding_windows(tf.constant(baseline(ecg)), w.length, w.stride)[: w.count]
    spec, spec0 = model.input_layer(cut), model.input_layer(x0_cut)  # [windows, f, b, ch]
    logits = model.network(spec, training=False).numpy()  # [windows, classes]
    chosen = logits.argmax(axis=0).astype(np.int32)[list(classes)]
    alphas = tf.constant((np.arange(steps, dtype=np.float32) + 0.5) / steps)[:, None, None, None]
    out = []
    for c, k in zip(classes, chosen, strict=True):
        path = spec0[k] + alphas * (spec[k] - spec0[k])  # [steps, f, b, ch]
        with tf.GradientTape() as tape:
            tape.watch(path)
            target = tf.reduce_sum(model.network(path, training=False)[:, c])
        grads = tf.reduce_mean(tape.gradient(target, path), axis=0)
        out.append((grads * (spec[k] - spec0[k])).numpy())
    return {"window": chosen, "spectrogram": spec.numpy(), "attribution": np.stack(out)}
