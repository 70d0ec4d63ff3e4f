"""Train a spectrogram CNN on prepared PTB-XL and evaluate it with the benchmark protocol.

    python -m ecg_keras.train --flagfile=configs/quickstart.cfg [--workdir=runs/NAME] ...

The workdir receives ``flags.cfg`` (``--flagfile=WORKDIR/flags.cfg`` reruns it), ``run.json``
(the resolved config and the normalization statistics), ``model.keras`` (the epoch with the
best validation macro AUC), ``history.csv``, TensorBoard logs in ``logs/``, ``metrics.json``,
``predictions_test.csv``, ``training_curves.png`` and ``roc_test.png``. A killed run continues
from its last completed epoch when the same command is run again (``backup/``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

from ecg_keras import config_flags
from ecg_keras import manifest as manifest_lib
from ecg_keras.config import FeatureConfig, TrainConfig

MODEL, RUN, FLAGS_FILE, BEST = "model.keras", "run.json", "flags.cfg", "best.json"


def run_classes(config: TrainConfig) -> list[str]:
    """The classes this run predicts: the task's (from the manifest) or the chosen subset."""
    manifest = manifest_lib.load(config.data_dir)
    if config.task not in manifest["tasks"]:
        raise ValueError(
            f"unknown --task={config.task}; {config.data_dir} has {sorted(manifest['tasks'])}"
        )
    known = manifest["tasks"][config.task]["classes"]
    unknown = [c for c in config.classes if c not in known]
    if unknown:
        raise ValueError(
            f"--classes {unknown} are not classes of {config.task} in "
            f"{config.data_dir}/manifest.json: {known}"
        )
    return list(config.classes) or known


def class_index(config: TrainConfig) -> list[int]:
    """Columns of the task's label vector that this run predicts."""
    known = manifest_lib.load(config.data_dir)["tasks"][config.task]["classes"]
    return [known.index(c) for c in run_classes(config)]


def make_split(config: TrainConfig, folds, training: bool, stats):
    """``make_dataset`` for one split of a run, labels narrowed to the run's classes.

    Returns:
      training: (spec, labels float32 [batch, classes]); otherwise (spec, labels, ecg_id).
    """
    import tensorflow as tf

    from ecg_keras import input_pipeline

    index = class_index(config)
    ds = input_pipeline.make_dataset(
        config.data_dir,
        folds,
        config.task,
        config.features,
        training=training,
        batch_size=config.batch_size,
        stats=stats,
        seed=config.seed,
        cache=config.cache,
        with_ids=not training,
    )
    return ds.map(lambda x, y, *rest: (x, tf.gather(y, index, axis=-1), *rest))


def config_from_json(obj: dict) -> TrainConfig:
    obj = dict(obj)
    obj["features"] = FeatureConfig(**obj["features"])
    for key in ("classes", "train_folds", "val_folds", "test_folds"):
        obj[key] = tuple(obj[key])
    return TrainConfig(**obj)


def load_run(workdir) -> tuple[TrainConfig, tuple[np.ndarray, np.ndarray]]:
    """The config and normalization statistics (mean, std float32 [bins, 12]) of a run."""
    path = Path(workdir) / RUN
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {workdir} is not a training workdir")
    run = json.loads(path.read_text())
    stats = (
        np.asarray(run["stats"]["mean"], np.float32),
        np.asarray(run["stats"]["std"], np.float32),
    )
    return config_from_json(run["config"]), stats


def make_strategy(name: str):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        # Measured here with TF 2.21 / Keras 3.15 on two workers on 127.0.0.1: fit() fails
        # first in _maybe_symbolic_build ("Attempt to convert a value (PerReplica ...)") and,
        # past that, in reduce_per_replica; upstream: keras-team/keras#20585 (open).
        raise ValueError(
            "--strategy=multi_worker: Keras 3.15's model.fit does not run under "
            "MultiWorkerMirroredStrategy (keras-team/keras#20585); use --strategy=mirrored "
            "for several GPUs on one machine"
        )
    return tf.distribute.get_strategy()


def _loss(pos_weight: np.ndarray | None):
    """Binary cross-entropy on logits; with class weighting, positives of class k count
    ``pos_weight[k]`` (negatives / positives) times."""
    import keras

    from ecg_keras.losses import WeightedBinaryCrossentropy

    if pos_weight is None:
        return keras.losses.BinaryCrossentropy(from_logits=True)
    return WeightedBinaryCrossentropy(pos_weight)


def _optimizer(config: TrainConfig, steps_per_epoch: int, epochs: int):
    import keras

    total = epochs * steps_per_epoch
    warmup = int(total * (0.3 if config.schedule == "onecycle" else 0.05))
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 25,
        decay_steps=max(total - warmup, 1),
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
        alpha=1e-3,
    )
    return keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay)


def prepare_data(config: TrainConfig) -> tuple[TrainConfig, dict, list[str]]:
    """Checks (and, with ``ptbxl_dir``, first prepares) the run's data, before any training.

    Returns:
      (config with the data's sampling rate, the manifest, the run's classes).

    Raises:
      ValueError / FileNotFoundError naming the flag, folder or shard that is wrong.
    """
    from ecg_keras import input_pipeline, models, prepare

    if config.model not in models.PRESETS:
        raise ValueError(f"unknown --model={config.model}; known: {sorted(models.PRESETS)}")
    if not (Path(config.data_dir) / manifest_lib.MANIFEST).is_file() and config.ptbxl_dir:
        prepare.prepare(prepare.PrepareConfig(config.ptbxl_dir, config.data_dir))
    manifest = manifest_lib.load(config.data_dir)
    config = dataclasses.replace(
        config,
        features=dataclasses.replace(config.features, sampling_rate=manifest["sampling_rate"]),
    )
    classes = run_classes(config)
    for folds in (config.train_folds, config.val_folds, config.test_folds):
        input_pipeline.shard_files(config.data_dir, folds)  # empty or damaged folds fail here
    return config, manifest, classes


def model_input_shape(config: TrainConfig) -> tuple[int | None, int, int]:
    """(frames, bins, 12) of a training crop; frames None with a pooling head, so the model
    also takes whole 10 s records (``evaluate --windows=0``, raw-ECG export)."""
    from ecg_keras import features

    frames, bins, leads = features.spectrogram_shape(config.features, config.features.input_samples)
    return (None if config.head == "gap" else frames, bins, leads)


def build_model(config: TrainConfig, classes: list[str]):
    """``models.get(config.model, ...)`` with the config's overrides (shared with ``tune``).

    Returns:
      keras.Model float32 [batch, frames, bins, 12] -> logits float32 [batch, len(classes)].
    """
    from ecg_keras import models

    shape = model_input_shape(config)
    return models.get(config.model, shape, len(classes), **config.model_overrides())


def compile_model(model, config: TrainConfig, manifest: dict, classes: list[str], epochs=None):
    """Binary cross-entropy on logits (class-weighted if asked), AdamW with the run's schedule
    spread over ``epochs`` (default ``config.epochs``), and a streaming AUC for the logs."""
    import keras

    labelled = sum(manifest["folds"][str(f)] for f in config.train_folds)  # upper bound
    steps = max(1, labelled // config.batch_size)
    task = manifest["tasks"][config.task]
    counts = np.array([task["counts"][c] for c in classes], float)
    total = manifest["num_records"] - task["unlabeled"]
    pos_weight = (total - counts) / np.maximum(counts, 1) if config.class_weighting else None
    model.compile(
        optimizer=_optimizer(config, steps, epochs or config.epochs),
        loss=_loss(pos_weight),
        metrics=[keras.metrics.AUC(multi_label=True, from_logits=True, name="auc")],
    )
    return model


class ValidationAuc:
    """Keras callback factory: computes validation macro AUC (windows aggregated like the test)
    each epoch and logs it as ``val_macro_auc`` (what the tuner maximizes). With a ``workdir``
    it keeps the best model in ``model.keras``; ``best`` and ``best_epoch`` (from 1) track it.

    The best score lives in ``best.json`` so that a resumed run never replaces a better model
    saved before it was killed.
    """

    def __new__(cls, val_ds, workdir: Path | None, aggregate: str):
        import keras

        from ecg_keras import evaluate, metrics

        class _Callback(keras.callbacks.Callback):
            best, best_epoch = -1.0, 0

            def on_train_begin(self, logs=None):
                if workdir is not None and (workdir / BEST).is_file():
                    saved = json.loads((workdir / BEST).read_text())
                    self.best, self.best_epoch = saved["val_macro_auc"], saved["epoch"]

            def on_epoch_end(self, epoch, logs=None):
                _, y, p = evaluate.predict(self.model, val_ds, aggregate)
                score = metrics.macro_auc(y, p)
                logs["val_macro_auc"] = score
                if score <= self.best:
                    return
                self.best, self.best_epoch = score, epoch + 1
                if workdir is not None:
                    tmp = workdir / f".{MODEL}.tmp.keras"
                    self.model.save(tmp)
                    os.replace(tmp, workdir / MODEL)
                    manifest_lib.write_json_atomic(
                        workdir / BEST, {"val_macro_auc": score, "epoch": epoch + 1}
                    )

        return _Callback()


def _check_workdir(workdir: Path, flags_text: str, overwrite: bool) -> None:
    """Refuses a workdir that holds a different run; clears it with ``overwrite``."""
    previous = workdir / FLAGS_FILE
    if previous.is_file() and previous.read_text() != flags_text:
        if not overwrite:
            raise ValueError(
                f"{workdir} holds a different run (its {FLAGS_FILE} differs); "
                "pass --overwrite to replace it or choose another --workdir"
            )
        import shutil

        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)


def train_and_evaluate(config: TrainConfig, workdir, flags_text: str = "", overwrite=False) -> dict:
    """Trains, keeps the best epoch by validation macro AUC, evaluates it on the test folds.

    Returns:
      the metrics.json content.
    """
    import keras

    from ecg_keras import evaluate, input_pipeline, plots

    workdir = Path(workdir)
    strategy = make_strategy(config.strategy)  # before other TF work, as tf.distribute asks
    config, manifest, classes = prepare_data(config)
    _check_workdir(workdir, flags_text, overwrite)
    (workdir / FLAGS_FILE).write_text(flags_text)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")

    stats = input_pipeline.feature_stats(config.data_dir, config.train_folds, config.features)
    manifest_lib.write_json_atomic(
        workdir / RUN,
        {
            "config": dataclasses.asdict(config),
            "classes": classes,
            "stats": {"mean": stats[0].tolist(), "std": stats[1].tolist()},
        },
    )
    train_ds = make_split(config, config.train_folds, True, stats)
    val_ds = make_split(config, config.val_folds, False, stats)
    keras.utils.set_random_seed(config.seed)  # right before building, as tune's trials do
    with strategy.scope():
        model = compile_model(build_model(config, classes), config, manifest, classes)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(workdir / "backup")),
        ValidationAuc(val_ds, workdir, config.aggregate),
        keras.callbacks.CSVLogger(str(workdir / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(workdir / "logs")),
    ]
    start = time.perf_counter()
    history = model.fit(train_ds, epochs=config.epochs, callbacks=callbacks, verbose=2)
    seconds = time.perf_counter() - start
    plots.training_curves(workdir / "history.csv", workdir / "training_curves.png")
    # A resumed run's fit() starts at the epoch after the last backed-up one.
    result = {
        "epochs_trained": config.epochs,
        "train_seconds": round(seconds, 1),
        "resumed_at_epoch": history.epoch[0] if history.epoch else config.epochs,
    }
    manifest_lib.write_json_atomic(workdir / evaluate.METRICS, result)
    return evaluate.evaluate_run(workdir)


def define_flags():
    """The config flags (see ``config_flags``) plus ``--workdir`` and ``--overwrite``."""
    from absl import flags

    config_flags.define_config_flags()
    flags.DEFINE_string("workdir", "runs/default", "Where the run's files go.")
    flags.DEFINE_bool("overwrite", False, "Replace a workdir that holds a different run.")


def main(argv):
    import sys

    from absl import flags

    del argv
    try:
        config = config_flags.config_from_flags()
        workdir = flags.FLAGS.workdir
        text = config_flags.flags_text(config, workdir)
        result = train_and_evaluate(config, workdir, text, flags.FLAGS.overwrite)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    if result:
        test = result["test"]
        print(
            f"{flags.FLAGS.workdir}: validation macro AUC {result['val']['macro_auc']:.4f}; "
            f"test macro AUC {test['macro_auc']:.4f} (90% CI {test['macro_auc_ci'][0]:.4f}-"
            f"{test['macro_auc_ci'][1]:.4f}), F1 {test['f1_macro']:.4f}, Fmax {test['fmax']:.4f}"
        )


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
