"""ecg_keras.train and ecg_keras.evaluate: learning on real records, resuming, bad input,
two workers, a 1D model on the raw signal kept at its last epoch."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from ecg_keras.analysis import evaluation as evaluate
from ecg_keras.config import TrainConfig
from ecg_keras.data import input_pipeline
from ecg_keras.data import preparation as prepare
from ecg_keras.training import experiment as train
from ecg_keras.training.scoring import predict_dataset

from conftest import run_cli

# Two short epochs of the tiny model on the tiny folder's rhythm task, with a split in which
# every fold set holds SR and non-SR records.
TINY_RHYTHM = [
    "--model=vgg_tiny",
    "--epochs=2",
    "--batch_size=8",
    "--task=rhythm",
    "--train_folds=1,2,5,6,7,10",
    "--val_folds=3,4",
    "--test_folds=8,9",
]


def test_training_learns_real_signal(trained_run):
    workdir, result = trained_run
    # Chance is 0.5; misaligned labels or broken spectrograms stay near it. A correct pipeline
    # reaches ~0.75-0.8 after 4 short epochs on 1,481 records.
    assert result["test"]["macro_auc"] > 0.68
    assert result["val"]["macro_auc"] > 0.68
    assert result["classes"] == ["NORM", "MI", "STTC", "CD", "HYP"]
    low, high = result["test"]["macro_auc_ci"]
    assert low < result["test"]["macro_auc"] < high
    assert set(result["test"]) >= {"per_class_auc", "f1_macro", "fmax", "num_records"}
    assert result["test"]["num_records"] == 252 and result["epochs_trained"] == 4
    assert result["features_in"] == "model" and result["precision"] in ("mixed_bfloat16", "float32")
    for name in (
        "flags.cfg",
        "model.keras",
        "history.csv",
        "metrics.json",
        "run.json",
        "predictions_test.csv",
        "training_curves.png",
        "roc_test.png",
        "reliability.png",
    ):
        assert (workdir / name).is_file(), name
    assert any((workdir / "logs").rglob("*tfevents*"))
    predictions = pd.read_csv(workdir / "predictions_test.csv")
    assert list(predictions.columns) == ["ecg_id", "NORM", "MI", "STTC", "CD", "HYP"]
    assert len(predictions) == 252 and predictions.iloc[:, 1:].stack().between(0, 1).all()
    history = pd.read_csv(workdir / "history.csv")
    assert history["epoch"].tolist() == [0, 1, 2, 3]
    best = json.loads((workdir / "best.json").read_text())
    assert best["val_macro_auc"] == pytest.approx(history["val_macro_auc"].max())


def test_evaluate_cli_recomputes_metrics(trained_run, tmp_path):
    workdir, result = trained_run
    done = run_cli("ecg_keras.evaluate", f"--workdir={workdir}", "--windows=0", "--aggregate=mean")
    assert done.returncode == 0, done.stderr
    assert "test macro AUC" in done.stdout
    whole = json.loads((workdir / "metrics.json").read_text())
    assert whole["aggregate"] == "mean" and whole["test"]["macro_auc"] > 0.65
    assert whole["epochs_trained"] == 4  # kept from training
    again = evaluate.evaluate_run(workdir)  # back to the run's own 2.5 s windows, max
    assert again["test"]["macro_auc"] == pytest.approx(result["test"]["macro_auc"], abs=1e-6)


def test_bad_input_fails_before_training(tiny_ptbxl, tmp_path):
    data = tmp_path / "tfr"
    prepare.prepare(prepare.PrepareConfig(str(tiny_ptbxl), str(data), num_workers=1))
    base = TrainConfig(data_dir=str(data), model="vgg_tiny", epochs=1)
    cases = [
        (dict(task="nope"), ValueError, "unknown --task=nope"),
        (dict(classes=("NORM", "XYZ")), ValueError, r"--classes \['XYZ'\]"),
        (dict(model="alexnet"), ValueError, "unknown --model=alexnet"),
        (dict(test_folds=(11,)), input_pipeline.DataError, "fold 11 has no records"),
        (dict(model="resnet1d_tiny", kernel_size=5), ValueError, "--kernel_size=5 applies to"),
        (dict(model="resnet1d_tiny", head="flatten"), ValueError, "--head=flatten applies to"),
    ]
    for change, error, message in cases:
        with pytest.raises(error, match=message):
            train.train_and_evaluate(TrainConfig(**{**base.__dict__, **change}), tmp_path / "w")
    assert not (tmp_path / "w").exists()
    with pytest.raises(ValueError, match="disjoint"):
        TrainConfig(val_folds=(8,))
    with pytest.raises(ValueError, match="--select=first: must be best or last"):
        TrainConfig(select="first")
    with pytest.raises(ValueError, match="--adam_beta2=1.0"):
        TrainConfig(adam_beta2=1.0)
    with pytest.raises(ValueError, match="--validation_freq=0: must be >= 1"):
        TrainConfig(validation_freq=0)
    workdir = tmp_path / "other"
    workdir.mkdir()
    (workdir / "flags.cfg").write_text("--epochs=99\n")
    with pytest.raises(ValueError, match="holds a different run.*--overwrite"):
        train.train_and_evaluate(base, workdir, flags_text="--epochs=1\n")
    bad = run_cli("ecg_keras.train", f"--data_dir={data}", "--schedule=linear")
    assert bad.returncode != 0 and "schedule" in bad.stderr


def test_killed_training_resumes(real_tfrecords, tmp_path):
    workdir = tmp_path / "resume"
    args = [
        f"--data_dir={real_tfrecords}",
        f"--workdir={workdir}",
        "--model=vgg_tiny",
        "--epochs=5",
        "--time_masks=0",
        "--freq_masks=0",
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecg_keras.train", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    history = workdir / "history.csv"
    deadline = time.time() + 300
    while time.time() < deadline:
        if history.is_file() and len(history.read_text().splitlines()) >= 3:  # 2 epochs done
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (workdir / "metrics.json").exists()
    done = run_cli("ecg_keras.train", *args, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["resumed_at_epoch"] >= 2  # it did not start over
    epochs = pd.read_csv(history)["epoch"].tolist()
    assert epochs[0] == 0 and epochs[-1] == 4 and epochs.count(0) == 1


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_trains_two_workers_in_step_and_resumes(tiny_ptbxl, tmp_path):
    data = tmp_path / "tfr"
    prepare.prepare(prepare.PrepareConfig(str(tiny_ptbxl), str(data), num_workers=1))
    workdir = tmp_path / "mw"
    cluster = {"worker": [f"127.0.0.1:{p}" for p in _free_ports(2)]}
    args = [
        sys.executable,
        "-m",
        "ecg_keras.train",
        f"--data_dir={data}",
        f"--workdir={workdir}",
        *TINY_RHYTHM,
        "--classes=SR",
        "--strategy=multi_worker",
    ]

    def run_workers():
        procs = []
        for index in (0, 1):
            tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
            env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TF_CPP_MIN_LOG_LEVEL": "2"}
            procs.append(
                subprocess.Popen(
                    args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
                )
            )
        outputs = [p.communicate(timeout=400)[0] for p in procs]
        for p, out in zip(procs, outputs, strict=True):
            assert p.returncode == 0, out[-3000:]
        return outputs

    chief, worker = run_workers()
    epochs = [
        [line for line in out.splitlines() if line.startswith("Epoch ")] for out in (chief, worker)
    ]
    assert len(epochs[0]) == 2

    # Synchronous data parallelism: both workers apply the same all-reduced updates, so their
    # losses (on different shards, summed across workers) and validation AUCs agree. Not their
    # val_loss: Keras 3's BatchNormalization keeps its moving statistics per worker (its
    # variables' aggregation is "none" unless synchronized=True), each from its own shard, so
    # the workers' inference networks differ slightly (measured: 1.3389 vs 1.3448); the chief's
    # is the one kept.
    def logs(line):
        fields = dict(f.split(": ") for f in line.split(" - ", 2)[2].split(" - "))
        assert float(fields.pop("val_loss")) > 0
        return fields

    strip = [[logs(line) for line in lines] for lines in epochs]
    assert strip[0] == strip[1]
    # Only the chief wrote the run.
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 2 and metrics["resumed_at_epoch"] == 0
    assert len(pd.read_csv(workdir / "history.csv")) == 2
    assert (workdir / "model.keras").is_file() and (workdir / "roc_test.png").is_file()
    assert "validation macro AUC" in chief and "validation macro AUC" not in worker

    chief, worker = run_workers()  # the same command again: nothing left to train
    assert "resuming from" in chief and "resuming from" in worker
    assert json.loads((workdir / "metrics.json").read_text())["resumed_at_epoch"] == 2


@pytest.mark.slow
def test_mixed_precision_class_weighting_and_class_subset(tiny_ptbxl, tmp_path):
    data = tmp_path / "tfr"
    prepare.prepare(prepare.PrepareConfig(str(tiny_ptbxl), str(data), num_workers=1))
    workdir = tmp_path / "mp"
    done = run_cli(
        "ecg_keras.train",
        f"--data_dir={data}",
        f"--workdir={workdir}",
        *TINY_RHYTHM,
        "--mixed_precision",
        "--class_weighting",
        "--classes=SR",
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((workdir / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 2 and np.isfinite(metrics["test"]["macro_auc"])
    assert metrics["classes"] == ["SR"] and len(metrics["test"]["per_class_auc"]) == 1
    assert list(pd.read_csv(workdir / "predictions_test.csv").columns) == ["ecg_id", "SR"]
    assert "--mixed_precision=True" in (workdir / "flags.cfg").read_text()
    history = pd.read_csv(workdir / "history.csv")
    assert np.isfinite(history["loss"]).all()
    assert metrics["precision"] == "mixed_float16"
    # Trained in float16, kept in float32: evaluation and export never see the policy.
    import keras

    model = keras.models.load_model(workdir / "model.keras", compile=False)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(layer.dtype_policy.name == "float32" for layer in convs)


def test_signal_model_trains_and_keeps_the_last_epoch(tiny_signal_run):
    workdir, result = tiny_signal_run
    assert (result["select"], result["selected_epoch"], result["epochs_trained"]) == ("last", 6, 6)
    for name in ("model.keras", "best.json", "predictions_test.csv", "roc_test.png"):
        assert (workdir / name).is_file(), name
    run = json.loads((workdir / "run.json").read_text())
    assert run["config"]["features"]["representation"] == "signal"
    # One mean and std over every sample and lead (the benchmark's StandardScaler): the tiny
    # records are zero-mean sines of amplitude 0.25-0.75 mV.
    assert abs(run["stats"]["mean"]) < 0.01 and 0.3 < run["stats"]["std"] < 0.45
    flags_cfg = (workdir / "flags.cfg").read_text()
    assert "--select=last" in flags_cfg and "--adam_beta2=0.99" in flags_cfg
    assert "--validation_freq=4" in flags_cfg
    assert "representation" not in flags_cfg  # derived from --model, not a flag
    history = pd.read_csv(workdir / "history.csv")
    assert history["epoch"].tolist() == list(range(6))
    # --validation_freq=4: epochs 4 and 6 (the last) are scored, the others log NaN.
    assert history["val_macro_auc"].notna().tolist() == [False, False, False, True, False, True]
    assert history["val_loss"].notna().tolist() == [False, False, False, True, False, True]
    assert (workdir / "training_curves.png").stat().st_size > 0
    # The kept model is the last epoch's, whichever epoch scored best.
    assert result["val"]["macro_auc"] == pytest.approx(history["val_macro_auc"].iloc[-1])
    assert json.loads((workdir / "best.json").read_text())["val_macro_auc"] == pytest.approx(
        history["val_macro_auc"].max()
    )
    # Each superclass is a tone of its own frequency: chance is 0.5, measured 0.93.
    assert result["test"]["macro_auc"] > 0.75 and result["val"]["macro_auc"] > 0.75


def test_predict_tells_windows_from_the_model_input_rank(monkeypatch):
    """Windows become one prediction per record; in chunks smaller than a batch (here 4 of
    the 21 windows per call: chunks cut records apart) the answers are the eager model's."""
    from ecg_keras import models
    from ecg_keras.training import scoring

    monkeypatch.setattr(scoring, "CHUNK", 4)

    model = models.get("resnet1d_tiny", (None, 12), 2)
    x = np.random.default_rng(0).normal(size=(3, 7, 250, 12)).astype(np.float32)
    labels, ids = np.zeros((3, 2), np.float32), np.arange(3)

    def run(x):
        return predict_dataset(model, tf.data.Dataset.from_tensors((x, labels, ids)), "max")[2]

    windows = run(x)  # [batch, windows, samples, 12]: 4 axes, one more than the model's 3
    per_window = 1 / (1 + np.exp(-np.asarray(model(x.reshape(21, 250, 12))).reshape(3, 7, 2)))
    np.testing.assert_allclose(windows, per_window.max(1), rtol=1e-5)
    np.testing.assert_allclose(run(x[:, 0]), per_window[:, 0], rtol=1e-5)  # no windows
    with pytest.raises(ValueError, match=r"fits neither the model input \(None, None, 12\)"):
        run(x[:, :, :, :, np.newaxis])


def test_nonfinite_weights_stop_training_with_a_named_error():
    """A NaN in any weight (or a BatchNormalization statistic) stops fit() at that epoch's
    end with an error naming the epoch and the weight, before later callbacks save it."""
    import keras

    from ecg_keras.training.callbacks import StopOnNonFinite

    model = keras.Sequential([keras.Input((3,)), keras.layers.BatchNormalization(name="bn")])
    seen = []

    class _Poison(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                variance = self.model.get_layer("bn").moving_variance
                variance.assign(np.array([1.0, np.nan, 1.0], "float32"))

    class _Saver(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(epoch)

    model.compile("sgd", "mse")
    x = np.ones((8, 3), "float32")
    with pytest.raises(FloatingPointError, match=r"epoch 2: weight \S*bn/moving_variance is no"):
        model.fit(x, x, epochs=4, verbose=0, callbacks=[_Poison(), StopOnNonFinite(), _Saver()])
    assert seen == [0]  # the saver never saw the NaN epoch


def test_ema_momentum_scores_and_keeps_averaged_weights_and_steps_from_raw_ones():
    """--ema_momentum: the callbacks after ``weight_averaging`` see, at each epoch's end, the
    exponential moving average of the weights after every step (computed here by hand from
    the raw weights each step left); the next epoch's steps start from the raw weights, not
    the average; after fit the model holds the average, as KeepModel saved it."""
    import keras

    from ecg_keras.training import recipe
    from ecg_keras.training.callbacks import weight_averaging

    momentum, steps, epochs = 0.9, 4, 3
    config = TrainConfig(ema_momentum=momentum, learning_rate=0.1, weight_decay=0.0)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="dense")])
    model.compile(recipe._optimizer(config, steps, epochs), "mse")
    raw_after_step, first_of_epoch, kept = [], [], []

    class _Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            if batch == 0:
                first_of_epoch.append(self.model.get_weights()[0].copy())

        def on_train_batch_end(self, batch, logs=None):
            raw_after_step.append(self.model.get_weights()[0].copy())

        def on_epoch_end(self, epoch, logs=None):
            kept.append(self.model.get_weights()[0].copy())

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8 * steps, 3)), rng.normal(size=(8 * steps, 2))
    model.fit(x, y, batch_size=8, epochs=epochs, verbose=0,
              callbacks=[*weight_averaging(config.ema_momentum), _Record()])  # fmt: skip

    average, expected = raw_after_step[0], []  # Keras' first step copies the weights
    for step, raw in enumerate(raw_after_step):
        average = average if step == 0 else momentum * average + (1 - momentum) * raw
        if (step + 1) % steps == 0:
            expected.append(average)
    np.testing.assert_allclose(kept, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(kept[-1] - raw_after_step[-1]).max() > 1e-3  # the average is not the raw
    # Each epoch steps on from the raw weights the last one left. Not bit for bit: Keras
    # swaps in place by adding and subtracting, a rounding of float32's eps times the sum
    # (weights of order 1 here: ~1e-7), against the steps' changes of order 1e-2.
    for epoch in (1, 2):
        np.testing.assert_allclose(
            first_of_epoch[epoch], raw_after_step[epoch * steps - 1], rtol=0, atol=1e-6
        )
        assert np.abs(first_of_epoch[epoch] - kept[epoch - 1]).max() > 1e-3
    np.testing.assert_allclose(model.get_weights()[0], kept[-1], rtol=1e-6)
    assert weight_averaging(0.0) == []
    with pytest.raises(ValueError, match="--ema_momentum=0.5: must be 0"):
        TrainConfig(ema_momentum=0.5)
