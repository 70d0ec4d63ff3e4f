"""ecg_keras.export (+ serving, lite, runtime, export_check): a real trained run exported once
(``exported`` in conftest.py), then its SavedModel, TFLite files and checks inspected."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from ecg_keras import filenames
from ecg_keras.data import ptbxl
from ecg_keras.deploy import export_check, exporting, runtime, serving
from ecg_keras.training import metrics
from ecg_keras.training.run import Run
from ecg_keras.training.scoring import predict_dataset

from conftest import assert_float_link, run_cli

TFLITE = ["tflite_float32", "tflite_float16", "tflite_dynamic_int8", "tflite_int8"]


def _evaluate_predictions(workdir):
    """ecg_id -> probabilities float32 [classes], as ``ecg_keras.evaluate`` computes them,
    calibrated with the run's metrics.json calibration, as the signature calibrates them."""
    import keras

    from ecg_keras.training import calibration

    run = Run.load(workdir)
    model = keras.models.load_model(workdir / filenames.MODEL, compile=False)
    ids, _, probs = predict_dataset(
        model, run.split(run.config.test_folds, False), run.config.aggregate
    )
    params = json.loads((workdir / "metrics.json").read_text())["calibration"]
    return dict(zip(ids.tolist(), calibration.apply(params, probs), strict=True))


def test_export_publishes_a_checked_version(exported):
    result, version_dir, workdir = exported
    assert version_dir.name == "1" and result["passed"]
    assert exporting.versions(version_dir.parent) == [1]
    assert not list(version_dir.parent.glob(".export-*"))  # no temporary folder left
    for name in ("saved_model.pb", "export.json", "assets.extra/" + serving.WARMUP):
        assert (version_dir / name).is_file(), name
    assert json.loads((version_dir / "export.json").read_text()) == json.loads(json.dumps(result))

    artifacts = {a["name"]: a for a in result["artifacts"]}
    assert list(artifacts) == ["keras", "saved_model", *TFLITE]
    assert all(a["check"]["passed"] and a["check"]["records"] == 252 for a in artifacts.values())
    for name in TFLITE:
        path = version_dir / artifacts[name]["path"]
        assert path.stat().st_size == artifacts[name]["size_bytes"]
    # The chain evaluate -> Keras endpoint -> SavedModel -> float32 TFLite holds within the
    # float32 rounding bound in logit (export_check's contract).
    for name in ("keras", "saved_model", "tflite_float32"):
        assert 0 <= artifacts[name]["check"]["bound_used"] <= 1, name
    float_auc = result["float_macro_auc"]
    assert float_auc > 0.68  # the run learned something, so the AUC comparison means something
    for name in TFLITE[1:]:
        check = artifacts[name]["check"]
        assert check["macro_auc"] >= float_auc - 0.01 and check["labels_mismatched"] == 0, name
    assert artifacts["tflite_int8"]["size_bytes"] < artifacts["saved_model"]["size_bytes"] / 3

    meta = json.loads((version_dir / "assets.extra" / serving.METADATA).read_text())
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert meta["classes"] == ["NORM", "MI", "STTC", "CD", "HYP"] == metrics["classes"]
    assert meta["thresholds"] == metrics["thresholds"]
    assert meta["leads"] == list(ptbxl.LEADS) and meta["units"] == "mV"
    assert (meta["sampling_rate"], meta["input_samples"]) == (100, 1000)
    assert meta["windows"] == {
        "seconds": 2.5,
        "stride_seconds": 1.25,
        "count": 7,
        "aggregate": "max",
    }
    tflite_meta = json.loads((version_dir / "tflite" / serving.METADATA).read_text())
    assert tflite_meta == meta


def test_saved_model_cli_lists_the_documented_signature(exported):
    _, version_dir, _ = exported
    cli = Path(sys.executable).with_name("saved_model_cli")
    done = subprocess.run(
        [str(cli), "show", "--dir", str(version_dir), "--all"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    signature = out[out.index("signature_def['serving_default']") :]
    inputs, outputs = signature.split("output(s):")[:2]
    assert "inputs['ecg']" in inputs and "shape: (-1, 1000, 12)" in inputs
    assert "DT_FLOAT" in inputs
    for name, shape in [
        ("probabilities", "(-1, 5)"),
        ("labels", "(-1, 5)"),
        ("window_probabilities", "(-1, 7, 5)"),
    ]:
        block = outputs[outputs.index(f"outputs['{name}']") :]
        assert f"shape: {shape}" in block.split("name:")[0], name


def test_rest_request_from_the_readme_matches_evaluate(exported, real_ptbxl_dir):
    _, version_dir, workdir = exported
    expected = _evaluate_predictions(workdir)
    db = ptbxl.load_database(real_ptbxl_dir)
    ecg_ids = sorted(expected)[:3]
    signals = [
        ptbxl.read_signal(ptbxl.record_path(real_ptbxl_dir, db.loc[i], 100), 100) for i in ecg_ids
    ]
    # The README's body: POST /v1/models/NAME:predict {"instances": [ECG, ...]}, ECG [1000][12].
    body = json.dumps({"instances": [s.tolist() for s in signals]})
    instances = np.asarray(json.loads(body)["instances"], np.float32)
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    outputs = {k: v.numpy() for k, v in serve(ecg=tf.constant(instances)).items()}
    # TF Serving's row format: one object per instance, one key per named output.
    response = {"predictions": [{k: v[i].tolist() for k, v in outputs.items()} for i in range(3)]}
    response = json.loads(json.dumps(response))
    got = np.array([p["probabilities"] for p in response["predictions"]])
    calibration = json.loads((workdir / "metrics.json").read_text())["calibration"]
    assert_float_link(got, [expected[i] for i in ecg_ids], calibration, err_msg="served")
    thresholds = json.loads((version_dir / "assets.extra/metadata.json").read_text())["thresholds"]
    assert [p["labels"] for p in response["predictions"]] == (got >= thresholds).astype(
        int
    ).tolist()
    assert np.array(response["predictions"][0]["window_probabilities"]).shape == (7, 5)

    # The warm-up file holds one PredictionLog whose predict request is for this model's
    # signature, with input "ecg" float32 [1, 1000, 12] that the model runs; read with TF
    # Serving's own message classes.
    raw = next(iter(tf.data.TFRecordDataset(str(version_dir / "assets.extra" / serving.WARMUP))))
    log = prediction_log_pb2.PredictionLog.FromString(raw.numpy())
    request = log.predict_log.request
    assert log.WhichOneof("log_type") == "predict_log"
    assert request.model_spec.name == version_dir.parent.name
    assert request.model_spec.signature_name == "serving_default"
    assert list(request.inputs) == ["ecg"]
    tensor = tf.make_ndarray(request.inputs["ecg"])
    assert tensor.shape == (1, 1000, 12) and tensor.dtype == np.float32
    assert np.isfinite(serve(ecg=tf.constant(tensor))["probabilities"].numpy()).all()


def test_tflite_runtime_takes_any_batch(exported):
    _, version_dir, _ = exported
    predictor = runtime.load(version_dir / "tflite" / "int8.tflite", num_threads=1)
    ecg = np.random.default_rng(0).normal(0, 0.2, (3, 1000, 12)).astype(np.float32)
    three = predictor(ecg)["probabilities"]
    one = predictor(ecg[:1])["probabilities"]
    assert three.shape == (3, 5) and np.allclose(one, three[:1], atol=1e-6)
    with pytest.raises(ValueError, match=r"takes \[n, 1000, 12\]"):
        predictor(ecg[:, :500])
    with pytest.raises(runtime.ArtifactError, match="neither a SavedModel"):
        runtime.load(version_dir / "tflite")


def test_int8_tflite_keeps_only_the_signal_path_and_head_in_float(exported):
    """No float-only op (the DFT-matmul STFT replaced RFFT2D, COMPLEX_ABS, REAL, IMAG); the
    network's convolutions are int8, the DFT's one stays float by name (lite.py)."""
    from ai_edge_litert.interpreter import Interpreter

    _, version_dir, _ = exported
    interpreter = Interpreter(model_path=str(version_dir / "tflite" / "int8.tflite"))
    interpreter.allocate_tensors()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    convs = {}  # output tensor name -> input dtype
    ops = set()
    for op in interpreter._get_ops_details():
        ops.add(op["op_name"])
        if op["op_name"] == "CONV_2D":
            name = tensors[op["outputs"][0]]["name"]
            convs[name] = tensors[op["inputs"][0]]["dtype"]
    assert not ops & {"RFFT2D", "COMPLEX_ABS", "REAL", "IMAG"}
    float_convs = [name for name, dtype in convs.items() if dtype == np.float32]
    assert len(float_convs) == 1 and "dft_stft" in float_convs[0]
    assert sum(dtype == np.int8 for dtype in convs.values()) == len(convs) - 1 >= 8


def test_versions_are_never_overwritten(exported, tmp_path):
    _, version_dir, workdir = exported
    with pytest.raises(ValueError, match="exists and is never overwritten"):
        exporting.export(
            exporting.ExportConfig(
                output_dir=str(version_dir.parent), workdir=str(workdir), version=1
            )
        )
    assert exporting.resolve_version(version_dir.parent, None) == 2
    for name in ("1", "3", "notes", ".export-9-1"):
        (tmp_path / name).mkdir()
    assert exporting.versions(tmp_path) == [1, 3]
    assert exporting.resolve_version(tmp_path, None) == 4
    assert exporting.resolve_version(tmp_path, 2) == 2
    assert exporting.resolve_version(tmp_path / "new", None) == 1
    with pytest.raises(ValueError, match="--tflite=int4"):
        exporting.ExportConfig(output_dir="x", workdir="w", tflite=("int4",))


def test_failed_check_exits_nonzero_and_publishes_nothing(exported):
    _, version_dir, workdir = exported
    output_dir = version_dir.parent
    # The real CLI, with a tolerance no artifact can meet.
    code = (
        "import sys; from absl import app; from ecg_keras import export; "
        "from ecg_keras.deploy import export_check; "
        "export_check.FLOAT_LINK['saved_model'] = -1.0; export.define_flags(); "
        "app.run(export.main, argv=sys.argv)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, f"--workdir={workdir}", f"--output_dir={output_dir}",
         "--tflite="],
        capture_output=True,
        text=True,
        timeout=600,
        # oneDNN off: the child checks every float link in another kernel order.
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"},
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    assert "error: check failed for ['saved_model']" in done.stderr
    assert exporting.versions(output_dir) == [1]  # version 2 was not published
    failed = json.loads((output_dir / ".failed-2" / "export.json").read_text())
    assert not failed["passed"]
    assert [a["check"]["passed"] for a in failed["artifacts"]] == [True, False]
    # It failed for the reason forced in the child, not another: the impossible tolerance.
    assert failed["artifacts"][1]["check"]["tolerance"] == -1.0
    assert failed["artifacts"][1]["check"]["failures"][0].startswith("|difference|")


@pytest.mark.parametrize("crop_seconds, windows", [(2.5, 7), (0.0, 1)])
def test_endpoint_scores_windows_like_evaluate(crop_seconds, windows):
    """The endpoint's windows, features and aggregation against a plain loop over windows."""
    import dataclasses

    from ecg_keras import models
    from ecg_keras.config import TrainConfig
    from ecg_keras.data import features

    config = TrainConfig(aggregate="max")
    config = dataclasses.replace(
        config, features=dataclasses.replace(config.features, crop_seconds=crop_seconds)
    )
    rng = np.random.default_rng(0)
    bins = features.stft_sizes(config.features)[3]
    mean, std = rng.normal(-3, 0.5, (bins, 12)), rng.uniform(0.5, 2, (bins, 12))
    model = models.get("vgg_tiny", (None, bins, 12), 5)
    run = Run(config, manifest={}, classes=tuple("ABCDE"), stats=(mean, std))
    endpoint, _ = serving.make_endpoint(model, run, [0.5] * 5)
    ecg = rng.normal(0, 0.3, (2, 1000, 12)).astype(np.float32)
    out = {k: v.numpy() for k, v in endpoint(ecg).items()}
    length = config.features.input_samples
    starts = range(0, 1000 - length + 1, 125 if crop_seconds else 1000)
    per_window = []
    for start in starts:
        spec = features.normalize(
            features.spectrogram(ecg[:, start : start + length], config.features),
            mean.astype(np.float32),
            std.astype(np.float32),
        )
        per_window.append(1 / (1 + np.exp(-model(spec).numpy())))
    per_window = np.stack(per_window, 1)  # [2, windows, 5]
    assert per_window.shape == (2, windows, 5) == out["window_probabilities"].shape
    np.testing.assert_allclose(out["window_probabilities"], per_window, atol=1e-5)
    np.testing.assert_allclose(out["probabilities"], per_window.max(1), atol=1e-5)
    np.testing.assert_array_equal(out["labels"], out["probabilities"] >= 0.5)


def test_quantized_check_bounds_the_99th_percentile_and_the_outlier():
    rng = np.random.default_rng(0)
    labels = (rng.uniform(size=(300, 5)) < 0.3).astype(np.float32)
    reference = np.clip(labels * 0.6 + rng.uniform(0, 0.4, labels.shape), 0, 1)
    records = export_check.Records(np.arange(300), np.zeros((300, 1, 12)), labels)
    float_auc = 1.0

    def check(name, moved):
        return export_check.check_model(name, moved, records, reference, float_auc)

    one_outlier = reference + 0.01
    one_outlier[7, 2] += 0.19  # one record near a logit of 0, as int8 can move it
    assert check("int8", one_outlier)["passed"]
    assert not check("float32", one_outlier)["passed"]  # float artifacts: every record
    one_outlier[7, 2] += 0.1
    assert check("int8", one_outlier)["failures"] == ["max |difference| 0.3 > 0.25"]
    many = reference + np.where(rng.uniform(size=reference.shape) < 0.05, 0.12, 0.0)
    result = check("int8", many)
    assert not result["passed"] and result["p99_abs_diff"] == pytest.approx(0.12)


def test_signal_run_exports_and_passes_every_check(tiny_signal_run, tmp_path):
    """A 1D model on the raw signal: the endpoint standardizes instead of the STFT."""
    workdir, metrics = tiny_signal_run
    output_dir = tmp_path / "saved_models" / "signal"
    done = run_cli(
        "export", f"--workdir={workdir}", f"--output_dir={output_dir}", "--calibration_records=20"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    version_dir = output_dir / "1"
    result = json.loads((version_dir / "export.json").read_text())
    artifacts = {a["name"]: a["check"] for a in result["artifacts"]}
    assert list(artifacts) == ["keras", "saved_model", *TFLITE] and result["passed"]
    for name in ("keras", "saved_model", "tflite_float32"):
        assert 0 <= artifacts[name]["bound_used"] <= 1, name
    assert result["float_macro_auc"] == pytest.approx(metrics["test"]["macro_auc"])
    meta = json.loads((version_dir / "assets.extra" / serving.METADATA).read_text())
    assert meta["features"]["representation"] == "signal"
    assert meta["windows"]["count"] == 7 and meta["input_samples"] == 1000
    # No STFT in the graph (a spectrogram endpoint's holds RFFT ops); that it standardizes
    # like training is what the keras -> evaluate check above proved to 1e-4.
    assert b"RFFT" not in (version_dir / "saved_model.pb").read_bytes()


def test_float_link_contract_passes_rounding_and_catches_a_wrong_statistic(exported):
    """The float-link bound is wide for rounding and narrow for a defect: the endpoint of the
    same run passes it, the endpoint given a normalization 1% off does not."""
    import dataclasses

    from ecg_keras.inference.predictor import Predictor

    _, _, workdir = exported
    predictor = Predictor.from_workdir(workdir)
    records = export_check.load_records(predictor.run, predictor.config.test_folds, limit=96)
    truth = export_check.reference_probabilities(predictor, records)
    auc = float(metrics.macro_auc(records.labels, truth))

    def check(candidate):
        out = candidate(records.signals)
        return export_check.check_model(
            "keras", out["probabilities"], records, truth, auc, candidate.thresholds,
            out["labels"], candidate.calibration,
        )  # fmt: skip

    good = check(predictor)
    assert good["passed"] and good["bound_used"] <= 1
    member = predictor.members[0]
    mean, std = member.run.stats
    wrong = member.run.with_config(member.run.config, (mean, std * 1.01))
    broken = dataclasses.replace(predictor, members=(dataclasses.replace(member, run=wrong),))
    bad = check(broken)
    assert not bad["passed"] and bad["failures"][0].startswith("|difference|")
    # Orders of magnitude apart: the defect uses its bound many times over.
    assert bad["bound_used"] > 10 * max(good["bound_used"], 0.01)
