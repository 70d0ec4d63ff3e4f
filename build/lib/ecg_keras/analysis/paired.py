"""Predictions of several runs on the same records: reading them back and their labels.

``compare`` averages each config's seeds and scores configs against each other on the same
test records, matching rows by ``ecg_id`` (``inference.by_id``), never by position, so runs
whose datasets list records in another order (another ``--data_dir``, say 500 Hz) still pair up:

    ids, probs, classes = read_predictions("runs/a/predictions_test.csv")
    ids, labels = labelled_records(config, config.test_folds)
"""

from __future__ import annotations

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
