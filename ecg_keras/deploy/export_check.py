"""``check_model``: every exported artifact, run on the same real records, against its reference.

The chain of references, each link within its tolerance of absolute difference in
probability (the largest for float artifacts; for quantized ones, the 99th percentile over
records of each record's largest, and the largest within ``QUANTIZED_MAX``):

    ecg_keras.evaluate (the training code's own predictions from TFRecords, calibrated with
                        the run's metrics.json calibration, as the signature calibrates)
      -> keras (the export endpoint run eagerly on the raw ECG)       1e-4
        -> saved_model (reloaded from disk)                           1e-4
          -> tflite float32                                           1e-4
          -> tflite float16 / dynamic_int8 / int8                     TOLERANCES

and every artifact's macro AUC on the check records (the run's test folds) must be within
``AUC_TOLERANCE`` of the float model's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ecg_keras.training import metrics

# Absolute difference in probability against the reference: the largest for the float
# artifacts; for the quantized modes, the 99th percentile of each record's largest. Quantization
# moves a logit by a roughly fixed amount, so the probability moves most for the rare record
# whose logit sits near 0: on a 4-epoch run with 40 Hz features, int8 moved one of 252 test
# records by 0.159 (CD 0.421 -> 0.579) while the 99th percentile was 0.036 and the AUC did not
# fall. A broken conversion moves many records (quantizing the raw ECG moved one by 0.79 and
# the AUC by 0.011), which the percentile and the AUC bound catch; one outlier must not fail an
# export, but no record may move by more than QUANTIZED_MAX.
TOLERANCES = {
    "keras": 1e-4,
    "saved_model": 1e-4,
    "float32": 1e-4,
    "float16": 0.05,
    "dynamic_int8": 0.1,
    "int8": 0.1,
}
QUANTIZED = ("float16", "dynamic_int8", "int8")
QUANTIZED_MAX = 0.25
AUC_TOLERANCE = 0.01
REFERENCE = {"keras": "evaluate", "saved_model": "keras"}  # TFLite modes: saved_model


class CheckError(RuntimeError):
    """An exported artifact disagrees with its reference beyond the stated tolerance."""


@dataclasses.dataclass(frozen=True)
class Records:
    """Labelled records, sorted by ecg_id: ids int64 [n], signals float32 [n, samples, 12]
    in mV, labels float32 [n, classes] (the run's classes)."""

    ecg_ids: np.ndarray
    signals: np.ndarray
    labels: np.ndarray


def load_records(run, folds, limit: int | None = None, seed: int = 0) -> Records:
    """The raw ECGs of the labelled records of ``folds`` from the run's prepared TFRecords.

    Args:
      run: the ``training.run.Run`` (``data_dir``, ``task``, its classes' label columns).
      folds: ``strat_fold`` values.
      limit: keep a random sample of this many records (drawn with ``seed``).
    """
    from ecg_keras.data import input_pipeline

    config = run.config
    name = f"labels/{config.task}"
    got = input_pipeline.read_labelled(config.data_dir, folds, config.task, ["signal", name])
    ids, signals = got["ecg_id"], got["signal"]
    labels = got[name][:, run.class_index].astype(np.float32)
    order = np.arange(len(ids))  # read_labelled sorts by ecg_id
    if limit is not None and limit < len(order):
        order = np.sort(np.random.default_rng(seed).choice(order, limit, replace=False))
    return Records(ids[order], signals[order], labels[order])


def evaluate_probabilities(network, run, records: Records) -> np.ndarray:
    """``ecg_keras.evaluate``'s predictions for ``records`` (the test folds of the
    ``run.Run``), float32 [n, classes]."""
    from ecg_keras import evaluate

    config = run.config
    folds = sorted({int(f) for f in config.test_folds})
    ds = run.split(folds, False)
    ids, _, probs = evaluate.predict(network, ds, config.aggregate)
    position = {int(i): k for k, i in enumerate(ids)}
    missing = [int(i) for i in records.ecg_ids if int(i) not in position]
    if missing:
        raise ValueError(f"ecg_ids {missing[:5]} are not in the test folds {folds}")
    return probs[[position[int(i)] for i in records.ecg_ids]]


def check_model(
    name: str,
    probabilities: np.ndarray,
    records: Records,
    reference: np.ndarray,
    float_auc: float,
    thresholds=None,
    labels: np.ndarray | None = None,
) -> dict:
    """Compares one artifact's outputs on ``records`` with its reference.

    Args:
      name: ``keras``, ``saved_model`` or a TFLite mode: picks the tolerance.
      probabilities: the artifact's float32 [n, classes] on ``records.signals``.
      reference: the reference artifact's float32 [n, classes] on the same records.
      float_auc: macro AUC of the float model on the same records.
      thresholds, labels: the artifact's ``labels`` output int32 [n, classes], checked
        against ``probabilities >= thresholds``.

    Returns:
      {passed, max_abs_diff, p99_abs_diff, tolerance, macro_auc, auc_drop, auc_tolerance,
      ...}; the caller decides what a failure does (``export`` raises ``CheckError``).
    """
    tolerance = TOLERANCES[name]
    per_record = np.abs(probabilities.astype(np.float64) - reference).max(1)  # [n]
    diff, p99 = float(per_record.max()), float(np.quantile(per_record, 0.99))
    auc = metrics.macro_auc(records.labels, probabilities)
    result = {
        "reference": REFERENCE.get(name, "saved_model"),
        "records": int(len(records.ecg_ids)),
        "max_abs_diff": diff,
        "p99_abs_diff": p99,
        "tolerance": tolerance,
        "macro_auc": auc,
        "auc_drop": float_auc - auc,
        "auc_tolerance": AUC_TOLERANCE,
    }
    failures = []
    if not np.isfinite(probabilities).all():
        failures.append("non-finite probabilities")
    if name in QUANTIZED:
        if not p99 <= tolerance:
            failures.append(f"99th percentile |difference| {p99:.3g} > {tolerance:g}")
        if not diff <= QUANTIZED_MAX:
            failures.append(f"max |difference| {diff:.3g} > {QUANTIZED_MAX:g}")
    elif not diff <= tolerance:
        failures.append(f"max |difference| {diff:.3g} > {tolerance:g}")
    if not float_auc - auc <= AUC_TOLERANCE:
        failures.append(f"macro AUC {auc:.4f} is {float_auc - auc:.4f} below {float_auc:.4f}")
    if labels is not None:
        expected = (probabilities >= np.asarray(thresholds, np.float32)).astype(np.int32)
        mismatched = int((labels != expected).sum())
        result["labels_mismatched"] = mismatched
        if mismatched:
            failures.append(f"{mismatched} labels disagree with probabilities >= thresholds")
    result["passed"] = not failures
    if failures:
        result["failures"] = failures
    return result


def _outputs(source, name: str, path, signals: np.ndarray) -> dict[str, np.ndarray]:
    """An artifact's ``probabilities`` and ``labels`` on ``signals``, 64 records at a time:
    the endpoint run eagerly for "keras", else the SavedModel or TFLite file at ``path``."""
    from ecg_keras.deploy import runtime

    predict = source.endpoint if name == "keras" else runtime.load(path)
    parts = [predict(signals[i : i + 64]) for i in range(0, len(signals), 64)]
    keys = ("probabilities", "labels")
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in keys}


def check_artifacts(folder, source, modes, records: Records, progress=print) -> dict:
    """Runs ``check_model`` on every artifact of an export on the same ``records``.

    Args:
      folder: the version folder (SavedModel, ``tflite/MODE.tflite`` for each of ``modes``).
      source: the ``export_source.Source`` exported: its endpoint is run eagerly as the Keras
        artifact, its ``truth`` (``evaluate``'s predictions) is the reference of that, its
        thresholds are what every ``labels`` output must agree with.
      records: the check records (the run's test folds).
      progress: called with one line per step.

    Returns:
      The export.json content: ``passed``, ``check_records``, ``float_macro_auc`` and
      ``artifacts`` ([{name, path, size_bytes, check}]).
    """
    from ecg_keras.deploy import runtime

    progress(f"checking every artifact on {len(records.ecg_ids)} test records")
    thresholds = source.thresholds
    truth = source.truth(records)
    float_auc = float(metrics.macro_auc(records.labels, truth))
    paths = {"keras": source.model_path, "saved_model": folder}
    paths.update({m: Path(folder) / "tflite" / f"{m}.tflite" for m in modes})
    outputs = {name: _outputs(source, name, path, records.signals) for name, path in paths.items()}
    references = {"evaluate": truth, **{n: o["probabilities"] for n, o in outputs.items()}}
    artifacts = []
    for name, path in paths.items():
        reference = references[REFERENCE.get(name, "saved_model")]
        check = check_model(
            name,
            outputs[name]["probabilities"],
            records,
            reference,
            float_auc,
            thresholds,
            outputs[name]["labels"],
        )
        progress(
            f"  {name}: max |diff| {check['max_abs_diff']:.2e}, 99th percentile "
            f"{check['p99_abs_diff']:.2e} (tolerance {check['tolerance']:g}), "
            f"macro AUC {check['macro_auc']:.4f} -> {'ok' if check['passed'] else 'FAILED'}",
        )
        artifacts.append(
            {
                "name": name if name in ("keras", "saved_model") else f"tflite_{name}",
                "path": str(path if name == "keras" else Path(path).relative_to(folder)),
                "size_bytes": (
                    sum(runtime.size_bytes(m.model_path) for m in source.members)
                    if name == "keras"
                    else runtime.size_bytes(path)
                ),
                "check": check,
            }
        )
    return {
        "passed": all(a["check"]["passed"] for a in artifacts),
        "check_records": {"folds": list(source.config.test_folds), "count": len(records.ecg_ids)},
        "float_macro_auc": float_auc,
        "artifacts": artifacts,
    }
