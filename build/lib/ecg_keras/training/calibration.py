"""Probability calibration: per-class Platt scaling fitted on the validation folds; ECE, Brier.

    params = fit(y_val, p_val)                  # {"method", "a", "b", "logit_bound", "ece_bins"}
    q = apply(params, p)                        # numpy, what evaluate and ensemble score
    q = apply_tf(params, probabilities)         # the same map in the exported signature
    block = scores(y_true, p, q)                # ece, brier, ece_uncalibrated, brier_uncalibrated

The map is, per class k, ``q = sigmoid(a_k * logit(p) + b_k)`` with ``a_k > 0``: strictly
increasing in ``p``, so every per-class ROC curve and AUC is unchanged (up to the ties of
``LOGIT_BOUND``, below). A record's ``p`` is the max over windows of the sigmoid (or the
members' mean for an ensemble), and ``logit(p)`` is computed from ``p`` itself, so the same map
applies to a run, an ensemble and any aggregation.

Why Platt (``a`` and ``b``) rather than a temperature (``b = 0``): the max over seven windows
shifts every probability up, a bias in logit space that a temperature can only shrink toward
0.5, not move. Both fitted on validation (fold 9) and scored on test (fold 10), mean test ECE
of three seeds (docs/results.md, "Calibration"): ``vgg_small`` complex 0.083 -> 0.075 with a
temperature, -> 0.035 with Platt; ``resnet1d_wang`` 0.087 -> 0.082 and -> 0.033. The fitted
``b`` is negative for every class of every run (-0.3 to -2.9) and ``a`` below 1 for most (0.54
to 1.08): both parameters are needed, and two per class are few enough for ~250 validation
records.

Why ``LOGIT_BOUND``: ``logit(p)`` is ``log(p) - log(1 - p)`` clipped to +-11.75 (p within
~7.9e-6 of 0 or 1). Near 1 a float32 ``p`` has steps of 2^-24, and the export computes ``p`` in
float32 while ``evaluate`` rounds a float64 sigmoid, so the two can differ by an ulp; unclipped,
that ulp (or a ``p`` that rounds to exactly 1) moves ``logit(p)`` by up to ~0.7 and a
calibrated probability with ``a < 1`` by more than the export check's 1e-4; clipped, by at most
~1/128. For a max over windows the export takes ``max(logits)``, which equals ``logit(p)``, from
the network's float logits (``apply_tf_to_logits``): the int8 TFLite file stores the window
sigmoids in 8 bits, and logit(p) of a p rounded to 1/256 moved a calibrated probability by 0.65.
The clip uses MAXIMUM and MUL only (no MINIMUM), ops that ``deploy/lite.py`` keeps in float in
the int8 mode; the bound, ``a`` and ``b`` are float16-exact, so the float16 TFLite file, which
stores its constants in float16, holds the same map.
"""

from __future__ import annotations

import numpy as np

ECE_BINS = 15  # equal-width bins over [0, 1], over all classes' probabilities
LOGIT_BOUND = 11.75  # |logit(p)| clip: p within 7.9e-6 of 0 or 1; float16-exact
METHODS = ("platt", "temperature")
METHOD = "platt"
SCALE_BOUNDS = (2.0**-6, 64.0)  # a > 0 keeps the map increasing; both ends float16-exact


def expected_calibration_error(y_true, y_prob, bins: int = ECE_BINS) -> float:
    """ECE over every (record, class) probability, ``bins`` equal-width bins on [0, 1].

    Args:
      y_true: 0/1 int or float [records, classes] (any shape; flattened).
      y_prob: float [records, classes], same shape.

    Returns:
      sum over bins of (count / total) * |mean label - mean probability|; a probability of
      exactly 1 falls in the last bin.
    """
    y, p = np.ravel(y_true).astype(np.float64), np.ravel(y_prob).astype(np.float64)
    if y.shape != p.shape or not len(p):
        raise ValueError(f"labels {np.shape(y_true)} and probabilities {np.shape(y_prob)}")
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    gap = np.abs(np.bincount(index, y, bins) - np.bincount(index, p, bins))  # sums per bin
    return float(gap.sum() / len(p))  # sum_b n_b/N |mean_y - mean_p| = sum_b |sum_y - sum_p|/N


def brier_score(y_true, y_prob) -> float:
    """Mean squared difference between probability and 0/1 label over every (record, class)."""
    y, p = np.ravel(y_true).astype(np.float64), np.ravel(y_prob).astype(np.float64)
    return float(np.mean((p - y) ** 2))


def logit(y_prob) -> np.ndarray:
    """float64 ``log(p) - log(1 - p)`` clipped to [-LOGIT_BOUND, LOGIT_BOUND] (p = 0 or 1 too)."""
    p = np.asarray(y_prob, np.float64)
    with np.errstate(divide="ignore"):
        return np.clip(np.log(p) - np.log(1.0 - p), -LOGIT_BOUND, LOGIT_BOUND)


def _fit_class(z: np.ndarray, y: np.ndarray, method: str) -> tuple[float, float]:
    """(a, b) minimizing the mean binary cross-entropy of sigmoid(a z + b) against y."""
    from scipy.optimize import minimize
    from scipy.special import expit, log_expit

    def loss(theta):
        a, b = theta[0], (theta[1] if method == "platt" else 0.0)
        s = a * z + b
        value = -np.mean(y * log_expit(s) + (1 - y) * log_expit(-s))
        r = expit(s) - y  # d loss / d s, per record
        grad = np.array([np.mean(r * z), np.mean(r)])
        return value, grad[: len(theta)]

    start = np.array([1.0, 0.0][: 2 if method == "platt" else 1])
    bounds = [SCALE_BOUNDS, (None, None)][: len(start)]
    found = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return float(found.x[0]), float(found.x[1]) if method == "platt" else 0.0


# Two parameters from a handful of records overfit: on a separable validation fold the slope
# grows without bound (a = 12 from 5 records in a test run), and the export's int8 models,
# whose logits are a few hundredths off, then moved probabilities by 0.3. The real subset's
# fold 9 has 30 or more of each label for every superclass (HYP: 30 of 232).
MIN_PER_LABEL = 10


def fit(y_true, y_prob, method: str = METHOD) -> dict:
    """Per-class calibration fitted on ``(y_true, y_prob)``: use the validation folds.

    Args:
      y_true: 0/1 float [records, classes]; y_prob: float [records, classes].
      method: ``platt`` (a and b) or ``temperature`` (b = 0, a = 1 / T).

    Returns:
      {"method", "a": [classes], "b": [classes], "logit_bound", "ece_bins"}: float16-exact
      floats (see the module docstring); a class with fewer than ``MIN_PER_LABEL`` records of
      either label keeps the identity (a = 1, b = 0).
    """
    from ecg_keras.training.metrics import exact_in_float16

    if method not in METHODS:
        raise ValueError(f"calibration method {method!r}: one of {', '.join(METHODS)}")
    y_true, z = np.asarray(y_true, np.float64), logit(y_prob)
    a, b = np.ones(y_true.shape[1]), np.zeros(y_true.shape[1])
    for k in range(y_true.shape[1]):
        positives = y_true[:, k].sum()
        if min(positives, len(y_true) - positives) >= MIN_PER_LABEL:
            a[k], b[k] = _fit_class(z[:, k], y_true[:, k], method)
    return {
        "method": method,
        "a": exact_in_float16(a).tolist(),
        "b": exact_in_float16(b).tolist(),
        "logit_bound": LOGIT_BOUND,
        "ece_bins": ECE_BINS,
    }


def apply(params: dict, y_prob) -> np.ndarray:
    """Calibrated probabilities float32 [records, classes] from float [records, classes]."""
    a, b = np.asarray(params["a"], np.float64), np.asarray(params["b"], np.float64)
    return (1.0 / (1.0 + np.exp(-(a * logit(y_prob) + b)))).astype(np.float32)


def apply_tf(params: dict, probabilities):
    """``apply`` as TensorFlow ops on float32 [batch, classes]: what the export's signature
    runs after averaging windows or ensemble members (LOG, SUB, MAXIMUM, MUL, ADD, LOGISTIC)."""
    import tensorflow as tf

    p = tf.convert_to_tensor(probabilities, tf.float32)
    return apply_tf_to_logits(params, tf.math.log(p) - tf.math.log(1.0 - p))


def apply_tf_to_logits(params: dict, logits):
    """``apply`` on float32 [batch, classes] logits ``z`` with ``sigmoid(z) = p`` (the max over
    windows of the network's logits); +-inf allowed (from ``apply_tf`` at p = 0 or 1)."""
    import tensorflow as tf

    a = tf.constant(np.asarray(params["a"], np.float32))
    b = tf.constant(np.asarray(params["b"], np.float32))
    low = tf.constant(np.float32(-params["logit_bound"]))
    minus = tf.constant(np.float32(-1.0))
    # clip(z, -bound, bound) as MAXIMUM and MUL: min(x, bound) = -max(-x, -bound).
    z = minus * tf.maximum(minus * tf.maximum(logits, low), low)
    return tf.sigmoid(a * z + b)


def scores(y_true, y_prob, calibrated) -> dict:
    """The four metrics.json keys of one split: ``ece``, ``brier`` (calibrated) and
    ``ece_uncalibrated``, ``brier_uncalibrated`` (the model's own probabilities)."""
    return {
        "ece": expected_calibration_error(y_true, calibrated),
        "brier": brier_score(y_true, calibrated),
        "ece_uncalibrated": expected_calibration_error(y_true, y_prob),
        "brier_uncalibrated": brier_score(y_true, y_prob),
    }
