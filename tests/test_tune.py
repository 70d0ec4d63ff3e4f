"""ecg_keras.tune: search space as training configs, resuming, chief and workers, bad input."""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import keras_tuner as kt
import pandas as pd
import pytest

from ecg_keras import config_flags, tune
from ecg_keras.config import TrainConfig
from ecg_keras.training import hypermodel, tuning
from ecg_keras.training.run import Run

# A search space of tiny models, so that a trial is one short epoch on the real subset.
TINY_SPACE = [
    "--base_filters=4",
    "--num_stages=3",
    "--stage_depths=1",
    "--kernel_sizes=3",
    "--window_choices=0.32,0.64",
    "--hop_choices=0.08",
]


def _tune_cmd(data_dir, tuning_dir, *extra):
    return [
        sys.executable,
        "-m",
        "ecg_keras.tune",
        f"--data_dir={data_dir}",
        f"--tuning_dir={tuning_dir}",
        "--project=p",
        "--tuner=random",
        "--max_epochs=1",
        "--train_folds=1,2",  # ~390 records: seconds per trial
        *TINY_SPACE,
        *extra,
    ]


def _run(cmd, env=None):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def _trials(tuning_dir):
    return pd.read_csv(tuning_dir / "p" / tuning.TRIALS_CSV)


def test_best_flags_text_is_the_trial_config(parsed_flags, tmp_path):
    """A trial's flagfile parses back, through the training flags, to the trial's config."""
    space = hypermodel.SearchSpace()
    base = TrainConfig(data_dir="somewhere", epochs=3, seed=7)
    for family, head in (("vgg", "gap"), ("resnet", "flatten")):
        hp = kt.HyperParameters()
        hp.values.update({"family": family, "head": head, "window_seconds": 0.96})
        hp.values.update({f"{family}_num_stages": 4, f"{family}_base_filters": 32})
        hp.values.update({f"{family}_depth": 2, f"{family}_kernel_size": 5})
        config = hypermodel.trial_config(base, space, hp, epochs=5)
        assert config.model == hypermodel.FAMILY_PRESETS[family] and config.head == head
        assert config.stages == ("32x2", "64x2", "128x2", "256x2") and config.kernel_size == 5
        assert config.features.window_seconds == config.features.fft_seconds == 0.96
        assert config.epochs == 5 and config.seed == 7 and config.data_dir == "somewhere"
        path = tmp_path / f"{family}.cfg"
        path.write_text(config_flags.flags_text(config, "runs/x"))
        parsed_flags(f"--flagfile={path}")
        assert config_flags.config_from_flags() == config
        # The model tune builds is the one train builds from that config.
        base_run = Run(config, manifest={}, classes=("A", "B"), stats=None)
        model = hypermodel.EcgHyperModel(base_run, space).build(hp)
        assert model.name == config.model and model.output_shape == (None, 2)
        prefix = "block" if family == "vgg" else "stage"
        names = [layer.name for layer in model.layers]
        assert any(n.startswith(f"{prefix}4_") for n in names)
        assert not any(n.startswith(f"{prefix}5_") for n in names)
        convs = [layer for layer in model.layers if layer.name.startswith(f"{prefix}2_")]
        assert any(getattr(layer, "kernel_size", None) == (5, 5) for layer in convs)


def test_space_flags_and_clashes_fail_before_any_trial(
    parsed_flags, real_tfrecords, tmp_path, capsys
):
    bad = [
        (["--families=vgg,transformer"], "--families"),
        (["--window_choices=3.0"], "--window_choices"),  # longer than the 2.5 s crops
        (["--dropout_range=0.5,0.1"], "--dropout_range"),
        (["--base_filters=16,wide"], "--base_filters=16,wide"),
        (["--head=flatten"], "--head=flatten is searched"),
        (["--learning_rate=0.01"], "--learning_rate=0.01 is searched"),
        (["--data_dir=/nonexistent/tfrecords"], "/nonexistent/tfrecords"),
        (["--task=nope"], "--task=nope"),
    ]
    for args, message in bad:
        parsed_flags(*_tune_cmd(real_tfrecords, tmp_path, *args)[3:])
        with pytest.raises(SystemExit) as exit_info:
            tune.main(["tune"])
        assert exit_info.value.code == 1, args
        stderr = capsys.readouterr().err
        assert stderr.startswith("error:") and message in stderr, (args, stderr)
        assert not (tmp_path / "p").exists(), args  # nothing started
    # The command line itself: an unknown tuner is refused by the flag parser.
    result = _run(_tune_cmd(real_tfrecords, tmp_path, "--tuner=grid"))
    assert result.returncode != 0 and "--tuner" in result.stderr


def _kill_after_first_trial(cmd, csv):
    """Starts the search and SIGKILLs it once one trial is COMPLETED in ``csv``."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if csv.is_file() and (pd.read_csv(csv).status == "COMPLETED").sum() >= 1:
            break
        time.sleep(0.5)
    assert proc.poll() is None, f"the search ended first: {proc.communicate()[1][-3000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_search_resumes_after_sigkill_without_repeating_trials(real_tfrecords, tmp_path):
    cmd = _tune_cmd(real_tfrecords, tmp_path, "--max_trials=2")
    csv = tmp_path / "p" / tuning.TRIALS_CSV
    _kill_after_first_trial(cmd, csv)
    before = pd.read_csv(csv)
    done_before = before[before.status == "COMPLETED"]
    assert len(done_before) == 1

    result = _run(cmd)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Reloading Tuner" in result.stdout + result.stderr
    after = _trials(tmp_path)
    assert len(after) == 2 and (after.status == "COMPLETED").all()
    # The finished trials are kept as they were, not run again.
    kept = after.set_index("trial_id").loc[done_before.trial_id]
    assert list(kept.val_macro_auc) == list(done_before.val_macro_auc)
    assert list(kept.seconds) == list(done_before.seconds)
    assert after.val_macro_auc.between(0, 1).all() and (after.epochs == 1).all()
    assert "| rank | trial | family" in result.stdout  # the top-5 table
    best = (tmp_path / "p" / tuning.BEST_FLAGS).read_text()
    assert f"{after.val_macro_auc.max():.4f}" in best.splitlines()[0]
    assert "--stages=4x1,8x1,16x1" in best and "--epochs=1" in best
    # The printed training command on best_flags.cfg reproduces the best trial's score: it
    # carries the search's oneDNN setting (off by default, see ecg_keras/tune.py).
    assert "TF_ENABLE_ONEDNN_OPTS=0 python -m ecg_keras.train --flagfile=" in best
    workdir = tmp_path / "retrain"
    result = _run(
        [
            sys.executable,
            "-m",
            "ecg_keras.train",
            f"--flagfile={tmp_path / 'p' / tuning.BEST_FLAGS}",
        ]
        + [f"--workdir={workdir}"],
        env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    retrained = json.loads((workdir / "best.json").read_text())["val_macro_auc"]
    assert retrained == pytest.approx(after.val_macro_auc.max(), abs=1e-6)

    result = _run(_tune_cmd(real_tfrecords, tmp_path, "--max_trials=1", "--overwrite"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(_trials(tmp_path)) == 1


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_chief_and_two_workers_fill_one_trials_csv(real_tfrecords, tmp_path):
    cmd = _tune_cmd(real_tfrecords, tmp_path, "--max_trials=4", "--families=vgg")
    base = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1"}
    base["KERASTUNER_ORACLE_PORT"] = str(_free_port())
    procs = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        env = {**base, "KERASTUNER_TUNER_ID": tuner_id}
        procs[tuner_id] = subprocess.Popen(
            cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        if tuner_id == "chief":
            time.sleep(2)  # let the chief's oracle server start listening
    outputs = {k: p.communicate(timeout=600)[0] for k, p in procs.items()}
    for tuner_id, proc in procs.items():
        assert proc.returncode == 0, (tuner_id, outputs[tuner_id][-3000:])
    trials = _trials(tmp_path)
    assert len(trials) == 4 and (trials.status == "COMPLETED").all()
    assert set(trials.worker) == {0, 1}  # both workers' trials, recorded by the chief
    assert "| rank | trial |" in outputs["chief"]
    assert (tmp_path / "p" / tuning.BEST_FLAGS).is_file()


def test_options_are_validated():
    with pytest.raises(ValueError, match="--max_trials"):
        tuning.TuneOptions(max_trials=0)
    with pytest.raises(ValueError, match="--tuner"):
        tuning.TuneOptions(tuner="grid")
    space = dataclasses.replace(hypermodel.SearchSpace(), heads=("gap", "dense"))
    with pytest.raises(ValueError, match="--heads"):
        space.check(TrainConfig().features)


def test_tuner_state_is_written_atomically(tmp_path):
    """KerasTuner's JSON goes through a temporary file and a rename: a kill mid-write leaves
    the old file whole (in place, it left an empty trial.json that the resume could not read)."""
    from keras_tuner.src import utils

    path = tmp_path / "trial.json"
    path.write_text('{"old": 1}')
    inode = path.stat().st_ino
    tuning._atomic_tuner_json()
    assert utils.save_json(str(path), {"new": 2}) == '{"new": 2}'
    assert json.loads(path.read_text()) == {"new": 2}
    assert path.stat().st_ino != inode and not list(tmp_path.glob("*.tmp"))  # replaced whole


def test_a_trial_killed_before_the_oracle_state_is_run_on_resume(tmp_path):
    """The state a SIGKILL between KerasTuner's two writes leaves (seen in CI: trial_1/trial.json
    RUNNING, oracle.json without it): the resumed search runs that trial instead of counting it
    toward max_trials and stopping."""
    from keras_tuner.src.engine import trial as trial_module

    def oracle():
        made = kt.oracles.RandomSearchOracle(objective=kt.Objective("s", "max"), max_trials=2)
        made.hyperparameters.Choice("x", [1, 2, 3])
        made._set_project_dir(str(tmp_path), "p")
        return made

    first = oracle()
    done = first.create_trial("tuner0")
    first.update_trial(done.trial_id, {"s": 0.5})
    done.status = "COMPLETED"  # as the Tuner ends a trial, then saves the oracle
    first.end_trial(done)
    first.save()
    # What create_trial writes first for the next trial, then the kill: no first.save().
    lost = trial_module.Trial(first.hyperparameters.copy(), trial_id="1", status="RUNNING")
    lost.hyperparameters.values = {"x": 2}
    first._save_trial(lost)

    resumed = oracle()
    resumed.reload()
    assert resumed.trials["1"].status == "RUNNING" and not resumed.ongoing_trials
    assert tuning.requeue_interrupted(resumed) == ["1"]
    assert tuning.requeue_interrupted(resumed) == []  # queued once
    rerun = resumed.create_trial("tuner0")
    assert (rerun.trial_id, rerun.status, rerun.hyperparameters.values) == (
        "1",
        "RUNNING",
        {"x": 2},
    )
    resumed.update_trial("1", {"s": 0.7})
    rerun.status = "COMPLETED"
    resumed.end_trial(rerun)
    assert resumed.create_trial("tuner0").status == "STOPPED"
    assert {t.status for t in resumed.trials.values()} == {"COMPLETED"}
