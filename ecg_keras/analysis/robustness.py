"""Does a model give the same answer however an ECG was recorded? Paired-record measurements.

    model = inference.predictor.load("runs/NAME")  # or saved_models/NAME/VERSION, a .tflite
    pairs = robustness.read_pairs(ptbxl_dir, model.metadata)  # every record at both rates
    p100, p500 = model.probabilities(pairs.low), model.probabilities(pairs.high)
    robustness.differences(p100, p500)  # per-class and per-record |p100 - p500|

PTB-XL holds each recording twice: ``records100/…_lr`` (downsampled by PhysioNet) and
``records500/…_hr``. Both are read the way ``ecg_keras.predict`` reads a user's record
(``ptbxl.read_any_record`` + ``inference.records.fit_to_model``, which resamples the 500 Hz
file), so the
difference between the two answers is what a clinician sees when they feed the other file.
``benchmarks/robustness_bench.py`` prints these figures; a test bounds them on a trained run.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

from ecg_keras.data import ptbxl
from ecg_keras.inference import records as records_lib


@dataclasses.dataclass(frozen=True)
class Pairs:
    """Records present at both rates, as the model receives them.

    ecg_ids int64 [n]; folds int64 [n]; low, high float32 [n, input_samples, 12] (mV, the
    model's rate: the 100 Hz file, and the 500 Hz file through predict's resampling); labels
    float32 [n, classes] (the model's classes; all zero for a record without a label).
    """

    ecg_ids: np.ndarray
    folds: np.ndarray
    low: np.ndarray
    high: np.ndarray
    labels: np.ndarray
    low_paths: tuple[str, ...]


def read_for_model(path, metadata: dict) -> np.ndarray:
    """One WFDB record as ``predict`` feeds it: float32 [input_samples, 12] mV."""
    signal, rate, _ = ptbxl.read_any_record(path)
    return records_lib.fit_to_model(signal, rate, metadata)[0]


def read_pairs(ptbxl_dir, metadata: dict, limit: int | None = None, progress=None) -> Pairs:
    """Every ecg_id of ``ptbxl_dir`` whose 100 Hz and 500 Hz files are both present.

    Args:
      metadata: the model's export metadata (``sampling_rate``, ``input_samples``, ``task``,
        ``classes``).
      limit: keep the first ``limit`` pairs by ecg_id.
      progress: wraps the iterable of ecg_ids (e.g. ``tqdm.tqdm``).
    """
    db = ptbxl.load_database(ptbxl_dir)
    tasks = ptbxl.load_tasks(ptbxl_dir)
    task_classes = tasks.classes[metadata["task"]]
    columns = [task_classes.index(c) for c in metadata["classes"]]
    paths = {
        r: [ptbxl.record_path(ptbxl_dir, row, r) for row in db.itertuples()] for r in (100, 500)
    }
    both = [
        k for k in range(len(db)) if all(paths[r][k].with_suffix(".hea").is_file() for r in paths)
    ][:limit]
    if not both:
        raise ptbxl.PtbxlError(f"{ptbxl_dir}: no ecg_id has both a 100 Hz and a 500 Hz record")
    ids, folds, low, high, labels = [], [], [], [], []
    for k in progress(both) if progress else both:
        row = db.iloc[k]
        ids.append(db.index[k])
        folds.append(row.strat_fold)
        low.append(read_for_model(paths[100][k], metadata))
        high.append(read_for_model(paths[500][k], metadata))
        labels.append(tasks.multi_hot(row.scp_codes)[metadata["task"]][columns])
    return Pairs(
        np.array(ids, np.int64),
        np.array(folds, np.int64),
        np.stack(low),
        np.stack(high),
        np.array(labels, np.float32),
        tuple(str(paths[100][k]) for k in both),
    )


def differences(p_a: np.ndarray, p_b: np.ndarray, classes) -> dict:
    """Summary of |p_a - p_b| (float [n, classes] each).

    Returns:
      {"per_class": {class: {median, p95, max}}, "per_record_max": {median, p95, max}}: the
      second over each record's largest difference across classes (what the goals bound).
    """
    diff = np.abs(np.asarray(p_a, np.float64) - np.asarray(p_b, np.float64))

    def summary(values):
        return {
            "median": float(np.median(values)),
            "p95": float(np.quantile(values, 0.95)),
            "max": float(values.max()),
        }

    return {
        "per_class": {c: summary(diff[:, k]) for k, c in enumerate(classes)},
        "per_record_max": summary(diff.max(1)),
    }


def delayed(signals: np.ndarray, samples: float, batch: int = 64) -> np.ndarray:
    """The same ECGs ``samples`` samples later (any fraction), by a band-limited delay
    (``data.delay.delay``: a linear phase ramp, exact for a band-limited signal; the record's
    first ``samples`` are the delayed end's continuation). float32 [n, samples, 12] each."""
    import tensorflow as tf

    from ecg_keras.data import delay

    out = []
    for start in range(0, len(signals), batch):
        chunk = tf.constant(signals[start : start + batch], tf.float32)
        out.append(delay.delay(chunk, tf.fill([len(chunk)], float(samples))).numpy())
    return np.concatenate(out)


def worst(p_a, p_b, ecg_ids, classes, count: int = 5) -> list[dict]:
    """The ``count`` records with the largest difference: ecg_id, class, both probabilities."""
    diff = np.abs(np.asarray(p_a, np.float64) - p_b)
    out = []
    for i in np.argsort(-diff.max(1))[:count]:
        k = int(diff[i].argmax())
        out.append(
            {
                "ecg_id": int(ecg_ids[i]),
                "class": classes[k],
                "a": round(float(p_a[i, k]), 4),
                "b": round(float(p_b[i, k]), 4),
            }
        )
    return out


def rewritten(paths, metadata: dict, shuffle_seed: int | None, micro_volts: bool) -> np.ndarray:
    """The records at ``paths`` written again as WFDB records and read back as ``predict``
    does: leads in a random order (``shuffle_seed``), and/or in µV at 1 adu/µV (the same
    digital samples as PTB-XL's 1000 adu/mV). float32 [n, input_samples, 12]."""
    import wfdb

    rng = np.random.default_rng(shuffle_seed)
    scale, unit = (1000.0, "uV") if micro_volts else (1.0, "mV")
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, path in enumerate(paths):
            record = wfdb.rdrecord(str(path))
            order = rng.permutation(record.n_sig) if shuffle_seed is not None else np.arange(12)
            wfdb.wrsamp(
                f"r{k}",
                fs=record.fs,
                units=[unit] * record.n_sig,
                sig_name=[record.sig_name[i] for i in order],
                p_signal=record.p_signal[:, order] * scale,
                fmt=["16"] * record.n_sig,
                adc_gain=[record.adc_gain[i] / scale for i in order],
                baseline=[record.baseline[i] for i in order],
                write_dir=tmp,
            )
            out.append(read_for_model(Path(tmp) / f"r{k}", metadata))
    return np.stack(out)
