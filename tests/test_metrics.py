"""ecg_keras.training.metrics against hand-computed cases and scikit-learn."""

import numpy as np
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from ecg_keras.training import metrics


def test_auc_hand_computed_and_against_sklearn():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.3], [0.3, 0.2]])
    # class 0: positives 0.9, 0.4 vs negatives 0.2, 0.3 -> 4/4 pairs ordered; class 1:
    # positives 0.8, 0.3 vs negatives 0.1, 0.2 -> 4/4 too.
    assert metrics.per_class_auc(y, p).tolist() == [1.0, 1.0]
    p[2, 0] = 0.25  # now 0.25 < 0.3: 3 of 4 pairs ordered
    assert metrics.per_class_auc(y, p)[0] == 0.75
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (200, 5))
    p = np.clip(y * 0.3 + rng.random((200, 5)), 0, 1)
    assert metrics.macro_auc(y, p) == pytest.approx(roc_auc_score(y, p, average="macro"))


def test_auc_skips_classes_without_both_labels():
    y = np.array([[1, 0], [0, 0], [1, 0]])
    p = np.array([[0.9, 0.5], [0.1, 0.5], [0.8, 0.5]])
    aucs = metrics.per_class_auc(y, p)
    assert aucs[0] == 1.0 and np.isnan(aucs[1])
    assert metrics.macro_auc(y, p) == 1.0
    with pytest.raises(ValueError, match="undefined"):
        metrics.macro_auc(np.zeros((3, 2)), p)


def test_f1_thresholds_and_fmax():
    y = np.array([[1, 0], [0, 1], [1, 0], [0, 0]])
    p = np.array([[0.7, 0.2], [0.6, 0.9], [0.8, 0.1], [0.1, 0.4]])
    thresholds = metrics.best_thresholds(y, p)
    assert 0.6 < thresholds[0] <= 0.7 and 0.4 < thresholds[1] <= 0.9
    # float16 holds them exactly, so a float16 TFLite graph keeps the same thresholds.
    assert (thresholds.astype(np.float16).astype(np.float64) == thresholds).all()
    assert (metrics.exact_in_float16([0.66, 0.81]) != [0.66, 0.81]).all()
    assert metrics.f1_macro(y, p, thresholds) == 1.0
    pred = (p >= 0.5).astype(int)
    assert metrics.f1_macro(y, p, np.full(2, 0.5)) == pytest.approx(
        f1_score(y, pred, average="macro")
    )
    # Fmax: at t in (0.4, 0.6] every prediction is right and complete -> 1.
    assert metrics.fmax(y, p) == 1.0
    # One global threshold cannot separate these. Hand-computed best, t in (0.2, 0.7]:
    # record 1 predicts {0, 1} (P 1/2, R 1), records 0 and 2 exact, record 3 nothing
    # -> P = (1 + .5 + 1) / 3, R = 1 (t in (0.75, 0.8] gives P 1, R 2/3: F 0.8, lower).
    p2 = np.array([[0.7, 0.2], [0.75, 0.9], [0.8, 0.1], [0.1, 0.2]])
    precision, recall = (1 + 0.5 + 1) / 3, 1.0
    assert metrics.fmax(y, p2) == pytest.approx(2 * precision * recall / (precision + recall))


def test_bootstrap_interval_brackets_the_estimate():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (150, 5))
    y[:, 4] = 0
    y[:3, 4] = 1  # a rare class: resamples without it are drawn again
    p = np.clip(y * 0.4 + rng.random((150, 5)) * 0.8, 0, 1)
    low, high = metrics.bootstrap_macro_auc(y, p, resamples=100)
    assert low < metrics.macro_auc(y, p) < high and high - low < 0.3
    assert metrics.bootstrap_macro_auc(y, p, resamples=100) == (low, high)  # seeded
    summary = metrics.summarize(y, p, thresholds=np.full(5, 0.5), bootstrap=True)
    assert set(summary) >= {"macro_auc", "per_class_auc", "macro_auc_ci", "f1_macro", "fmax"}
