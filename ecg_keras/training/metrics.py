"""PTB-XL benchmark metrics (Strodthoff et al. 2021): macro AUC, bootstrap CI, F1, Fmax.

Every function takes ``y_true`` int/float [records, classes] (multi-hot) and ``y_prob`` float
[records, classes] (sigmoid probabilities, one row per record after window aggregation).
Training, evaluation, tuning and export all use these, so a number means the same thing
everywhere.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

THRESHOLDS = np.linspace(0.0, 1.0, 101)  # the Fmax grid (the benchmark's)


def exact_in_float16(values) -> np.ndarray:
    """``values`` rounded to the nearest float16, as float64.

    Decision thresholds go through this: TFLite's float16 conversion stores every float
    constant, the thresholds in the exported graph too, as float16 (0.66 became 0.66015625).
    A threshold that float16 holds exactly gives the same labels in every artifact, whatever
    precision a CPU computes in; an inexact one gave a label that the artifact's own
    probability did not earn (tflite_float16 on an AVX-512 FP16 CPU).
    """
    return np.asarray(values, np.float64).astype(np.float16).astype(np.float64)


# The per-class threshold search: the 0.01 grid, held exactly by float16 (see above).
THRESHOLD_GRID = exact_in_float16(THRESHOLDS)


def per_class_auc(y_true: np.ndarray, y_prob: np.ndarray) -> np.ndarray:
    """ROC AUC of each class, float64 [classes]; NaN for a class without both labels."""
    out = np.full(y_true.shape[1], np.nan)
    for k in range(y_true.shape[1]):
        if 0 < y_true[:, k].sum() < len(y_true):
            out[k] = roc_auc_score(y_true[:, k], y_prob[:, k])
    return out


def macro_auc(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Mean of the per-class AUCs over the classes that have positives and negatives."""
    aucs = per_class_auc(y_true, y_prob)
    if np.isnan(aucs).all():
        raise ValueError("macro AUC undefined: no class has both positive and negative records")
    return float(np.nanmean(aucs))


def binary_cross_entropy(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Mean binary cross-entropy over records and classes, float [records, classes] each;
    probabilities are clipped to [1e-7, 1 - 1e-7] as Keras' own loss clips them."""
    p = np.clip(np.asarray(y_prob, np.float64), 1e-7, 1 - 1e-7)
    y = np.asarray(y_true, np.float64)
    return float(np.mean(-(y * np.log(p) + (1 - y) * np.log1p(-p))))


def bootstrap_macro_auc(
    y_true: np.ndarray, y_prob: np.ndarray, resamples: int = 100, level: float = 0.9, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the macro AUC, as the PTB-XL benchmark computes it.

    Records are resampled with replacement; a resample in which some class has no positive
    (or no negative) is drawn again, so every resample scores every class.

    Returns:
      (low, high): the (1 - level) / 2 and (1 + level) / 2 quantiles.
    """
    rng = np.random.default_rng(seed)
    n = len(y_true)
    scored = (y_true.sum(0) > 0) & (y_true.sum(0) < n)  # classes with an AUC on the full set
    scores = []
    while len(scores) < resamples:
        index = rng.integers(0, n, n)
        positives = y_true[index][:, scored].sum(0)
        # The benchmark redraws resamples without a positive; with tiny folds a resample
        # can also lack negatives, so require both.
        if (positives == 0).any() or (positives == n).any():
            continue
        scores.append(macro_auc(y_true[index], y_prob[index]))
    low, high = np.quantile(scores, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def f1_scores(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Per-class F1 of binary predictions, float64 [classes] (0 where undefined)."""
    tp = (y_true * y_pred).sum(0)
    denominator = y_true.sum(0) + y_pred.sum(0)
    return np.divide(2 * tp, denominator, out=np.zeros(y_true.shape[1]), where=denominator > 0)


def best_thresholds(y_true: np.ndarray, y_prob: np.ndarray) -> np.ndarray:
    """Per-class thresholds in ``THRESHOLD_GRID`` that maximize F1; choose them on validation."""
    f1 = np.stack([f1_scores(y_true, (y_prob >= t).astype(float)) for t in THRESHOLD_GRID])
    return THRESHOLD_GRID[f1.argmax(0)]


def f1_macro(y_true: np.ndarray, y_prob: np.ndarray, thresholds: np.ndarray) -> float:
    """Macro F1 at the given per-class thresholds float [classes]."""
    return float(f1_scores(y_true, (y_prob >= thresholds).astype(float)).mean())


def fmax(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Sample-centric Fmax (the benchmark's ``Fmax``): over one global threshold t, the best
    2PR/(P+R), P averaged over records with a prediction at t, R over all records with a label."""
    labelled = y_true.sum(1) > 0
    best = 0.0
    for t in THRESHOLDS:
        pred = y_prob >= t
        predicted = pred.sum(1) > 0
        if not predicted.any():
            continue
        tp = (pred & (y_true > 0)).sum(1)
        precision = (tp[predicted] / pred[predicted].sum(1)).mean()
        recall = (tp[labelled] / y_true[labelled].sum(1)).mean()
        if precision + recall > 0:
            best = max(best, 2 * precision * recall / (precision + recall))
    return float(best)


def summarize(y_true, y_prob, thresholds=None, bootstrap: bool = False) -> dict:
    """The metrics.json block of one split: macro/per-class AUC [, CI, F1 at thresholds, Fmax]."""
    out = {
        "num_records": int(len(y_true)),
        "macro_auc": macro_auc(y_true, y_prob),
        "per_class_auc": [None if np.isnan(a) else float(a) for a in per_class_auc(y_true, y_prob)],
        "fmax": fmax(y_true, y_prob),
    }
    if bootstrap:
        out["macro_auc_ci"] = list(bootstrap_macro_auc(y_true, y_prob))
    if thresholds is not None:
        out["f1_macro"] = f1_macro(y_true, y_prob, thresholds)
    return out


def bootstrap_indices(y_true: np.ndarray, resamples: int = 100, seed: int = 0):
    """Yields the record indices int64 [records] of ``bootstrap_macro_auc``'s resamples.

    The same draws (same generator, same redraw rule) as ``bootstrap_macro_auc`` with the
    same ``seed``: a resample in which a class scored on the full set has no positive or no
    negative is drawn again.

    Raises:
      ValueError: after 1,000 draws per wanted resample (too few records to redraw from).
    """
    rng = np.random.default_rng(seed)
    n = len(y_true)
    scored = (y_true.sum(0) > 0) & (y_true.sum(0) < n)
    kept = 0
    for _ in range(1000 * resamples):
        index = rng.integers(0, n, n)
        positives = y_true[index][:, scored].sum(0)
        if (positives == 0).any() or (positives == n).any():
            continue
        yield index
        kept += 1
        if kept == resamples:
            return
    raise ValueError(f"{n} records: too few to draw resamples in which every class has both labels")


def paired_bootstrap_macro_auc(
    y_true: np.ndarray,
    prob_a: np.ndarray,
    prob_b: np.ndarray,
    resamples: int = 100,
    level: float = 0.9,
    seed: int = 0,
) -> dict:
    """Macro AUC of A minus that of B, both scored on the SAME bootstrap resamples.

    Pairing removes the test set's own sampling noise, which the two models share, from the
    comparison: the interval is that of the difference, far narrower than the two separate
    intervals suggest. Resamples follow ``bootstrap_indices`` (the benchmark's redraw rule).

    Args:
      y_true: int/float [records, classes] multi-hot.
      prob_a, prob_b: float [records, classes], rows matched to ``y_true``.

    Returns:
      ``difference`` (on the full set), ``mean`` (over resamples), ``low`` and ``high`` (the
      ``level`` percentile interval), ``a_wins`` (share of resamples in which A scores higher;
      a tie counts half, so identical predictions give 0.5), ``resamples``, and
      ``differences`` float64 [resamples].
    """
    differences = np.array(
        [
            macro_auc(y_true[i], prob_a[i]) - macro_auc(y_true[i], prob_b[i])
            for i in bootstrap_indices(y_true, resamples, seed)
        ]
    )
    low, high = np.quantile(differences, [(1 - level) / 2, (1 + level) / 2])
    return {
        "difference": macro_auc(y_true, prob_a) - macro_auc(y_true, prob_b),
        "mean": float(differences.mean()),
        "low": float(low),
        "high": float(high),
        "a_wins": float((differences > 0).mean() + 0.5 * (differences == 0).mean()),
        "resamples": len(differences),
        "differences": differences,
    }
