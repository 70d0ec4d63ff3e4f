"""Predictions of several runs on the same records: reading, matching by ecg_id, averaging.

``compare`` averages each config's seeds and scores configs against each other on the same
test records; ``ensemble`` averages its members. Both match rows by ``ecg_id``, never by
position, so runs whose datasets list records in another order (another ``--data_dir``, say
500 Hz) still pair up:

    ids, probs, classes = read_predictions("runs/a/predictions_test.csv")
    ids, mean = average_by_id({"runs/a": (ids_a, probs_a), "runs/b": (ids_b, probs_b)})
    ids, labels = labelled_records(config, config.test_folds)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ecg_keras import atomic


def read_predictions(path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A run's ``predictions_test.csv`` (``evaluate.write_predictions``).

    Returns:
      ecg_ids int64 [records], probabilities float64 [records, classes], class names.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the run has no test predictions")
    frame = pd.read_csv(path)
    if frame.columns[0] != "ecg_id" or frame["ecg_id"].duplicated().any():
        raise ValueError(f"{path}: expected a unique ecg_id column then one column per class")
    return (
        frame["ecg_id"].to_numpy(np.int64),
        frame.iloc[:, 1:].to_numpy(np.float64),
        [str(c) for c in frame.columns[1:]],
    )


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


def labelled_records(config, folds) -> tuple[np.ndarray, np.ndarray]:
    """The ecg_ids and labels of the records of ``folds`` that a run trains or scores on.

    Only three features are parsed, not the signals that ``export_check.load_records`` also
    decodes (71 MB for the training folds of the subset at 100 Hz): this also counts a run's
    training records.

    Args:
      config: a run's TrainConfig (``data_dir``, ``task``, ``classes``).
      folds: ``strat_fold`` values.

    Returns:
      ecg_ids int64 [records] ascending, labels float32 [records, classes] (the run's
      classes), records labelled for the task only (as ``make_dataset`` keeps them).
    """
    from ecg_keras.data import input_pipeline
    from ecg_keras.training.run import class_columns

    name = f"labels/{config.task}"
    got = input_pipeline.read_labelled(config.data_dir, folds, config.task, [name])
    return got["ecg_id"], got[name][:, class_columns(config)].astype(np.float32)


def write_csv_atomic(path, frame) -> None:
    """A pandas DataFrame as CSV (no index, 6 decimals), written atomically."""
    with atomic.replacing(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")
