"""ecg_keras.ensemble: two tiny runs averaged and scored like a run; mismatched members refused."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from ecg_keras import filenames
from ecg_keras.analysis import ensembling as ensemble
from ecg_keras.config import TrainConfig
from ecg_keras.data import preparation as prepare
from ecg_keras.training import experiment as train

from conftest import assert_float_link, make_tiny_ptbxl
from report_check import parse_report


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two 1-epoch vgg_tiny runs (seeds 0, 1) on the tiny folder's rhythm task, TINY_RHYTHM's
    split (test_train.py), trained in this process."""
    root = tmp_path_factory.mktemp("ensemble")
    data = root / "tfr"
    ptbxl_dir = make_tiny_ptbxl(root / "ptbxl")
    prepare.prepare(prepare.PrepareConfig(str(ptbxl_dir), str(data), num_workers=1))
    workdirs = []
    for seed in (0, 1):
        config = TrainConfig(
            data_dir=str(data),
            model="vgg_tiny",
            epochs=1,
            batch_size=8,
            seed=seed,
            task="rhythm",
            train_folds=(1, 2, 5, 6, 7, 10),
            val_folds=(3, 4),
            test_folds=(8, 9),
        )
        train.train_and_evaluate(config, root / f"seed{seed}", f"--seed={seed}\n")
        workdirs.append(root / f"seed{seed}")
    return root, workdirs


def test_ensemble_averages_members(members):
    root, workdirs = members
    out = root / "ens"
    result = ensemble.ensemble(ensemble.EnsembleConfig(tuple(map(str, workdirs)), str(out)))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert set(saved) == {
        "task", "classes", "val", "test", "thresholds", "thresholds_on", "calibration",
        "test_folds", "members",
    }  # fmt: skip
    for split in ("val", "test"):  # calibrated on the averaged validation probabilities
        assert set(saved[split]) >= {"ece", "brier", "ece_uncalibrated", "brier_uncalibrated"}
    assert saved["classes"] == ["AFIB", "SR"] and saved["members"] == list(map(str, workdirs))
    assert set(saved["test"]) >= {"macro_auc", "macro_auc_ci", "f1_macro", "fmax"}
    own = [pd.read_csv(w / "predictions_test.csv") for w in workdirs]
    mine = pd.read_csv(out / "predictions_test.csv")
    assert list(mine.columns) == ["ecg_id", "AFIB", "SR"]
    assert mine["ecg_id"].tolist() == own[0]["ecg_id"].tolist() == own[1]["ecg_id"].tolist()
    mean = (own[0].iloc[:, 1:].to_numpy() + own[1].iloc[:, 1:].to_numpy()) / 2
    np.testing.assert_allclose(mine.iloc[:, 1:].to_numpy(), mean, atol=1e-5)
    listed = json.loads((out / filenames.ENSEMBLE).read_text())["members"]
    for member, workdir in zip(listed, workdirs, strict=True):
        metrics = json.loads((workdir / "metrics.json").read_text())
        assert member["workdir"] == str(workdir) and member["model"] == "vgg_tiny"
        for split in ("val", "test"):
            assert member[f"{split}_macro_auc"] == pytest.approx(metrics[split]["macro_auc"])
    assert (out / "roc_test.png").read_bytes()[:4] == b"\x89PNG"
    page = parse_report(out / "report.html")  # self-contained, every image an embedded PNG
    assert {"config", "data", "metrics", "curves", "reliability", "confusion"} <= set(page.sections)
    assert f"{saved['test']['macro_auc']:.4f}" in page.sections["metrics"]["cells"]
    assert {str(w) for w in workdirs} <= set(page.sections["config"]["cells"])
    assert [len(page.sections[s]["images"]) for s in ("curves", "reliability")] == [1, 1]


def test_mismatched_members_exit_1(members):
    root, workdirs = members
    other = root / "other_task"
    shutil.copytree(workdirs[1], other, dirs_exist_ok=True)
    run = json.loads((other / "run.json").read_text())
    run["config"]["task"] = "superdiagnostic"
    (other / "run.json").write_text(json.dumps(run))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    def cli(*workdirs, output=root / "bad"):
        dirs = ",".join(map(str, workdirs))
        command = ["-m", "ecg_keras.ensemble", f"--workdirs={dirs}", f"--output_dir={output}"]
        return subprocess.run(
            [sys.executable, *command], capture_output=True, text=True, timeout=300, env=env
        )

    done = cli(workdirs[0], other)
    assert done.returncode == 1 and done.stderr.startswith(f"error: {other}: --task=")
    done = cli(workdirs[0], root / "nowhere")
    assert done.returncode == 1 and f"{root / 'nowhere' / 'run.json'} not found" in done.stderr
    done = cli(workdirs[0], workdirs[1], output=workdirs[1])
    assert done.returncode == 1 and "error: --output_dir" in done.stderr
    assert not (root / "bad").exists()


def test_ensemble_exports_one_checked_model_that_averages_its_members(members):
    from ecg_keras.deploy import export_check, runtime, serving
    from ecg_keras.deploy import exporting as export
    from ecg_keras.inference.predictor import Predictor
    from ecg_keras.training import calibration

    root, workdirs = members
    ens = root / "ens_export"
    ensemble.ensemble(ensemble.EnsembleConfig(tuple(map(str, workdirs)), str(ens)))
    saved = root / "saved_ens"
    result = export.export(
        export.ExportConfig(output_dir=str(saved), workdir=str(ens), tflite=("float32",))
    )
    assert result["passed"] and [a["name"] for a in result["artifacts"]] == [
        "keras", "saved_model", "tflite_float32"
    ]  # fmt: skip
    meta = json.loads(runtime.metadata_path(saved / "1").read_text())
    assert [m["workdir"] for m in meta["source"]["members"]] == list(map(str, workdirs))
    thresholds = json.loads((ens / "metrics.json").read_text())["thresholds"]
    np.testing.assert_allclose(meta["thresholds"], thresholds, atol=1e-3)  # float16-exact
    # The published model's probabilities are the mean of what each member's network alone
    # gives (before the member's own calibration), calibrated with the ensemble's calibration.
    params = json.loads((ens / "metrics.json").read_text())["calibration"]
    assert meta["calibration"] == params
    sources = [Predictor.from_workdir(w) for w in workdirs]
    records = export_check.load_records(sources[0].run, sources[0].config.test_folds)
    alone = [
        serving.make_endpoint(s.members[0].network, s.run, s.thresholds)[0](records.signals)
        for s in sources
    ]
    raw = (alone[0]["probabilities"].numpy() + alone[1]["probabilities"].numpy()) / 2
    mean = calibration.apply(params, raw)
    for path in (saved / "1", saved / "1" / "tflite" / "float32.tflite"):
        served = runtime.load(path)(records.signals)
        assert_float_link(served["probabilities"], mean, params, err_msg=str(path))
        assert served["window_probabilities"].shape[1] == alone[0]["window_probabilities"].shape[1]
        expected = (served["probabilities"] >= np.float32(meta["thresholds"])).astype(np.int32)
        np.testing.assert_array_equal(served["labels"], expected)


def test_ensemble_export_refuses_members_cut_into_other_windows(members):
    from ecg_keras.inference.predictor import Predictor

    root, workdirs = members
    other = root / "other_windows"
    shutil.copytree(workdirs[1], other, dirs_exist_ok=True)
    run = json.loads((other / "run.json").read_text())
    run["config"]["features"]["crop_seconds"] = 0.0  # whole records, one window
    (other / "run.json").write_text(json.dumps(run))
    ens = root / "ens_windows"
    ens.mkdir()
    shutil.copy(workdirs[0] / "metrics.json", ens / "metrics.json")
    members_json = {"members": [{"workdir": str(workdirs[0])}, {"workdir": str(other)}]}
    (ens / filenames.ENSEMBLE).write_text(json.dumps(members_json))
    with pytest.raises(ValueError, match=f"{other}: its windows"):
        Predictor.from_workdir(ens)
