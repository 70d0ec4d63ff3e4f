"""Matching predictions of several models (or labels) record by record, by ``ecg_id``.

    ids, mean = average_by_id({"runs/a": (ids_a, probs_a), "runs/b": (ids_b, probs_b)})

Ensembles (``Predictor``), ``compare``'s per-config averages and the paired bootstrap all match
rows here, so records are never paired by position.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def rows_of(ids: np.ndarray, wanted: np.ndarray, name: str) -> np.ndarray:
    """Positions int64 [len(wanted)] of ``wanted`` ecg_ids in ``ids``.

    Raises:
      ValueError naming ``name`` when the two hold different records.
    """
    position = {int(i): k for k, i in enumerate(ids)}
    if len(ids) != len(wanted) or any(int(i) not in position for i in wanted):
        missing = sorted(set(map(int, wanted)) ^ set(position))[:5]
        raise ValueError(
            f"{name}: its records differ from the others' ({len(ids)} vs {len(wanted)} records; "
            f"ecg_ids not in both, first 5: {missing})"
        )
    return np.array([position[int(i)] for i in wanted], np.int64)


def average_by_id(members: Mapping[str, tuple[np.ndarray, np.ndarray]]):
    """Mean probabilities of several runs over the same records, matched by ecg_id.

    Args:
      members: name (workdir) -> (ecg_ids int [records], probabilities float [records, classes]).

    Returns:
      ecg_ids int64 [records] in ascending order, mean probabilities float64 [records, classes].

    Raises:
      ValueError naming the first member whose records or classes differ from the first's.
    """
    names = list(members)
    ids = np.sort(np.asarray(members[names[0]][0], np.int64))
    total = None
    for name in names:
        member_ids, probs = members[name]
        probs = np.asarray(probs, np.float64)[rows_of(member_ids, ids, name)]
        if total is not None and probs.shape != total.shape:
            raise ValueError(f"{name}: {probs.shape[1]} classes, {names[0]} has {total.shape[1]}")
        total = probs if total is None else total + probs
    return ids, total / len(names)


def average_members(names, predictions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The members' mean probabilities, rows matched by ecg_id.

    Args:
      names: one name per member (its workdir), for the error message.
      predictions: each member's (ecg_ids, y_true, y_prob) on the same folds.

    Returns:
      ecg_ids int64 [n] ascending, y_true float32 [n, classes], y_prob float32 [n, classes].

    Raises:
      ValueError: members with different ecg_ids, or different labels for the same ecg_id.
    """
    named = {str(n): (p[0], p[2]) for n, p in zip(names, predictions, strict=True)}
    ids, probs = average_by_id(named)
    labels = None
    for name, (member_ids, y_true, _) in zip(names, predictions, strict=True):
        y_true = y_true[rows_of(member_ids, ids, str(name))]
        if labels is not None and not np.array_equal(y_true, labels):
            raise ValueError(
                f"{name}: its labels differ from {names[0]}'s for the same ecg_ids (prepared "
                "from different PTB-XL versions?)"
            )
        labels = y_true
    return ids, labels, probs.astype(np.float32)
