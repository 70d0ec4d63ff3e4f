"""``check_model``: every exported artifact, run on the same real records, against its reference.

The chain of references:

    evaluate (the training code's own predictions from TFRecords: FFT STFT in tf.data,
              calibrated with metrics.json's calibration, as the signature calibrates)
      -> keras (the export endpoint run eagerly on the raw ECG: DFT-matmul STFT)   FLOAT_LINK
        -> saved_model (reloaded from disk: grappler may fuse and reorder)          FLOAT_LINK
          -> tflite float32 (XNNPACK/TFLite kernels)                                FLOAT_LINK
          -> tflite float16 / dynamic_int8 / int8                                   TOLERANCES

and every artifact's macro AUC on the check records (the run's test folds) must be within
``AUC_TOLERANCE`` of the float model's.

Why the float links are compared in logit space, and why ``FLOAT_LINK`` holds on any x86 CPU
--------------------------------------------------------------------------------------------
What a float link changes is only the order and the algorithm of float32 arithmetic: the STFT
(an FFT against a DFT matmul), the batch each window is computed in, and the kernels (oneDNN's
choice depends on the CPU's AVX-512/AMX features and on ``TF_ENABLE_ONEDNN_OPTS``; TFLite runs
its own). No link changes the weights, the statistics, the windows or the calibration. Such
rounding differences are bounded *in logit*, relative to the logit's scale, not in probability:
a probability moves by ``p (1 - p) |a| dz`` for a logit change ``dz`` (``a``: the class's Platt
slope), so a fixed bound in probability is loose at p near 0 or 1 and tight at p near 0.5 with
a steep slope; the bound that broke the suite on an AMD EPYC (1e-4 in probability, measured
1.17e-4) was exactly such a record.

The bound: float32 has unit roundoff u = 2^-24. A dot product of length K computed in any order
is off by at most gamma_K = K u / (1 - K u) times the sum of its terms' magnitudes (Higham,
Accuracy and Stability of Numerical Algorithms, Thm 3.5), and a network of depth L at most adds
L such errors, each relative to its layer's activation scale, which at the logit we take as
``1 + |z|``. With the longest dot product of any preset, K = 3 x 3 x 512 = 4608, and L = 16
layers, L gamma_K = 4.4e-3: ``FLOAT_LINK`` allows |dz| <= 5e-3 (1 + |z|) per record and class.
The STFT itself (64-sample frames: gamma_64 = 3.8e-6 relative) is far inside it even after the
log compression (slope <= 1/0.01) and normalization. In probability that is
``|dp| <= 5e-3 (1 + |z|) |a| p (1 - p) + PROBABILITY_ULPS 2^-24`` with ``z`` and ``p`` the
reference's (the last term: one float32 rounding of each side's probability). Measured on the
shared subset (docs/results.md, "Export check contract"), the largest |dz| / (1 + |z|) over the
252 test records is 1e-5 to 1e-4 on AMD EPYC and Intel Xeon, with oneDNN on and off, float32 and
bfloat16 training: the bound has a 50x margin. A real defect is orders of magnitude above it:
a wrong normalization statistic, window or calibration moves logits by 0.1 to several units
(tests/test_export.py corrupts one and sees the check fail).

Quantized artifacts are compared in probability: the 99th percentile over records of each
record's largest |difference| within ``TOLERANCES``, the largest within ``QUANTIZED_MAX``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ecg_keras.training import metrics

# Quantized modes: the 99th percentile of each record's largest |difference| in probability.
# Quantization moves a logit by a roughly fixed amount, so the probability moves most for the
# rare record whose logit sits near 0: on a 4-epoch run with 40 Hz features, int8 moved one of
# 252 test records by 0.159 (CD 0.421 -> 0.579) while the 99th percentile was 0.036 and the AUC
# did not fall. A broken conversion moves many records (quantizing the raw ECG moved one by
# 0.79 and the AUC by 0.011), which the percentile and the AUC bound catch; one outlier must not
# fail an export, but no record may move by more than QUANTIZED_MAX.
TOLERANCES = {"float16": 0.05, "dynamic_int8": 0.1, "int8": 0.1}
FLOAT = ("keras", "saved_model", "float32")
QUANTIZED = ("float16", "dynamic_int8", "int8")
QUANTIZED_MAX = 0.25
AUC_TOLERANCE = 0.01
# Float links: |dz| <= FLOAT_LINK[name] * (1 + |z|) in logit (see the module docstring).
FLOAT_LINK = {"keras": 5e-3, "saved_model": 5e-3, "float32": 5e-3}
PROBABILITY_ULPS = 4  # float32 roundings of a probability in [0, 1]: 2^-24 each
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


def reference_probabilities(predictor, records: Records) -> np.ndarray:
    """float32 [n, classes]: what ``evaluate`` (an ensemble: ``ensemble``) scores for
    ``records`` (of the run's test folds): the predictor's own probabilities read through
    ``tf.data``, averaged over members, calibrated as metrics.json says."""
    folds = sorted({int(f) for f in predictor.config.test_folds})
    ids, _, probs = predictor.predict_split(folds)
    position = {int(i): k for k, i in enumerate(ids)}
    missing = [int(i) for i in records.ecg_ids if int(i) not in position]
    if missing:
        raise ValueError(f"ecg_ids {missing[:5]} are not in the test folds {folds}")
    return predictor.calibrate(probs[[position[int(i)] for i in records.ecg_ids]])


def float_link_bound(
    reference: np.ndarray, calibration: dict | None, tolerance: float = FLOAT_LINK["keras"]
) -> np.ndarray:
    """float64 [n, classes]: the largest |difference| in probability a float link may show
    against ``reference`` (calibrated probabilities, float [n, classes]): ``tolerance`` (1 + |z|)
    in logit mapped through the calibration's slope, plus float32 rounding."""
    from ecg_keras.training import calibration as calibration_lib

    p = np.clip(np.asarray(reference, np.float64), 0.0, 1.0)
    slope = 1.0 if calibration is None else np.abs(np.asarray(calibration["a"], np.float64))
    # The network's logit behind p: undo the calibration (z_cal = a z + b), clipped as it is.
    z_cal = calibration_lib.logit(p)
    z = z_cal if calibration is None else (z_cal - np.asarray(calibration["b"])) / slope
    return tolerance * (1 + np.abs(z)) * slope * p * (1 - p) + PROBABILITY_ULPS * 2.0**-24


def check_model(
    name: str,
    probabilities: np.ndarray,
    records: Records,
    reference: np.ndarray,
    float_auc: float,
    thresholds=None,
    labels: np.ndarray | None = None,
    calibration: dict | None = None,
) -> dict:
    """Compares one artifact's outputs on ``records`` with its reference.

    Args:
      name: ``keras``, ``saved_model`` or a TFLite mode: picks the contract.
      probabilities: the artifact's float32 [n, classes] on ``records.signals``.
      reference: the reference artifact's float32 [n, classes] on the same records.
      float_auc: macro AUC of the float model on the same records.
      thresholds, labels: the artifact's ``labels`` output int32 [n, classes], checked
        against ``probabilities >= thresholds``.
      calibration: the calibration both sides apply (its slopes scale the float bound).

    Returns:
      {passed, max_abs_diff, p99_abs_diff, tolerance, macro_auc, auc_drop, auc_tolerance,
      ...}; float links add ``bound_used`` (the largest |difference| / bound: at most 1) and
      ``max_logit_diff_relative`` (|dz| / (1 + |z|), against ``FLOAT_LINK``); the caller
      decides what a failure does (``export`` raises ``CheckError``).
    """
    difference = np.abs(probabilities.astype(np.float64) - reference)  # [n, classes]
    per_record = difference.max(1)  # [n]
    diff, p99 = float(per_record.max()), float(np.quantile(per_record, 0.99))
    auc = metrics.macro_auc(records.labels, probabilities)
    result = {
        "reference": REFERENCE.get(name, "saved_model"),
        "records": int(len(records.ecg_ids)),
        "max_abs_diff": diff,
        "p99_abs_diff": p99,
        "macro_auc": auc,
        "auc_drop": float_auc - auc,
        "auc_tolerance": AUC_TOLERANCE,
    }
    failures = []
    if not np.isfinite(probabilities).all():
        failures.append("non-finite probabilities")
    if name in QUANTIZED:
        tolerance = result["tolerance"] = TOLERANCES[name]
        if not p99 <= tolerance:
            failures.append(f"99th percentile |difference| {p99:.3g} > {tolerance:g}")
        if not diff <= QUANTIZED_MAX:
            failures.append(f"max |difference| {diff:.3g} > {QUANTIZED_MAX:g}")
    else:
        tolerance = result["tolerance"] = FLOAT_LINK[name]
        bound = float_link_bound(reference, calibration, tolerance)
        ratio = difference / np.maximum(bound, 2.0**-60)
        result.update(
            tolerance_units="logit, times (1 + |z|); in probability p (1 - p) |a| times that",
            bound_used=float(ratio.max()),
            max_logit_diff_relative=float(ratio.max()) * tolerance,
        )
        if not (difference <= bound).all():
            worst = np.unravel_index(np.argmax(difference - bound), difference.shape)
            failures.append(
                f"|difference| {difference[worst]:.3g} > its bound {bound[worst]:.3g} "
                f"(record {int(records.ecg_ids[worst[0]])}, class {worst[1]}; float32 bound "
                f"{tolerance:g} (1 + |z|) in logit)"
            )
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


def _outputs(predictor, name: str, path, signals: np.ndarray) -> dict[str, np.ndarray]:
    """An artifact's ``probabilities`` and ``labels`` on ``signals``, 64 records at a time:
    the predictor's endpoint run eagerly for "keras", else the SavedModel or TFLite file."""
    from ecg_keras.deploy import runtime

    predict = predictor if name == "keras" else runtime.load(path)
    parts = [predict(signals[i : i + 64]) for i in range(0, len(signals), 64)]
    keys = ("probabilities", "labels")
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in keys}


def check_artifacts(folder, predictor, modes, records: Records, progress=print) -> dict:
    """Runs ``check_model`` on every artifact of an export on the same ``records``.

    Args:
      folder: the version folder (SavedModel, ``tflite/MODE.tflite`` for each of ``modes``).
      predictor: the ``inference.Predictor`` exported: its endpoint is run eagerly as the
        Keras artifact, its ``reference_probabilities`` (``evaluate``'s) are the reference of
        that, its thresholds are what every ``labels`` output must agree with.
      records: the check records (the run's test folds).
      progress: called with one line per step.

    Returns:
      The export.json content: ``passed``, ``check_records``, ``float_macro_auc``,
      ``float_link`` (the contract) and ``artifacts`` ([{name, path, size_bytes, check}]).
    """
    from ecg_keras.deploy import runtime

    progress(f"checking every artifact on {len(records.ecg_ids)} test records")
    truth = reference_probabilities(predictor, records)
    float_auc = float(metrics.macro_auc(records.labels, truth))
    paths = {"keras": predictor.model_path, "saved_model": folder}
    paths.update({m: Path(folder) / "tflite" / f"{m}.tflite" for m in modes})
    outputs = {n: _outputs(predictor, n, path, records.signals) for n, path in paths.items()}
    references = {"evaluate": truth, **{n: o["probabilities"] for n, o in outputs.items()}}
    artifacts = []
    for name, path in paths.items():
        check = check_model(
            name,
            outputs[name]["probabilities"],
            records,
            references[REFERENCE.get(name, "saved_model")],
            float_auc,
            predictor.thresholds,
            outputs[name]["labels"],
            predictor.calibration,
        )
        within = (
            f"{check['bound_used']:.2f} of its bound"
            if "bound_used" in check
            else f"99th percentile {check['p99_abs_diff']:.2e}, tolerance {check['tolerance']:g}"
        )
        progress(
            f"  {name}: max |diff| {check['max_abs_diff']:.2e} ({within}), "
            f"macro AUC {check['macro_auc']:.4f} -> {'ok' if check['passed'] else 'FAILED'}",
        )
        artifacts.append(
            {
                "name": name if name in ("keras", "saved_model") else f"tflite_{name}",
                "path": str(path if name == "keras" else Path(path).relative_to(folder)),
                "size_bytes": (
                    sum(runtime.size_bytes(m.model_path) for m in predictor.members)
                    if name == "keras"
                    else runtime.size_bytes(path)
                ),
                "check": check,
            }
        )
    return {
        "passed": all(a["check"]["passed"] for a in artifacts),
        "check_records": {
            "folds": list(predictor.config.test_folds),
            "count": len(records.ecg_ids),
        },
        "float_macro_auc": float_auc,
        "float_link": {"logit_tolerance": FLOAT_LINK, "probability_ulps": PROBABILITY_ULPS},
        "artifacts": artifacts,
    }
