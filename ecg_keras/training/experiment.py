"""Train a CNN (spectrogram 2D or raw-signal 1D) on prepared PTB-XL and evaluate it with the
benchmark protocol. The library behind ``python -m ecg_keras.train``.

The workdir receives ``flags.cfg`` (``--flagfile=WORKDIR/flags.cfg`` reruns it), ``run.json``
(the resolved config and the normalization statistics), ``model.keras`` (the epoch with the
best validation macro AUC, or with ``--select=last`` the last epoch), ``best.json`` (the best
epoch and its score either way), ``history.csv``, TensorBoard logs in ``logs/``, ``metrics.json``,
``predictions_test.csv``, ``training_curves.png``, ``roc_test.png`` and ``report.html`` (written by
``evaluate``). A killed run continues from its last completed epoch when the same command is run
again (``backup/``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path

from ecg_keras import atomic, filenames
from ecg_keras.config import TrainConfig, config_from_dict, run_identity
from ecg_keras.filenames import FLAGS as FLAGS_FILE
from ecg_keras.filenames import RUN_JSON as RUN


def make_strategy(name: str):
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":  # TF_CONFIG names the workers; see multi_worker.py
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _check_workdir(workdir: Path, config: TrainConfig, flags_text: str, overwrite: bool) -> None:
    """Refuses a workdir that holds a different run; clears it with ``overwrite``.

    A run is recognized by its resolved config (``config.run_identity``, from ``run.json``),
    not by the text of its flagfile: a flag added after the run was made, left at its default,
    does not make it another run. A workdir with a flagfile but no ``run.json`` yet (killed
    before training began) is compared by its flagfile.
    """
    previous, saved = workdir / FLAGS_FILE, workdir / RUN
    if saved.is_file():
        old = config_from_dict(json.loads(saved.read_text())["config"])
        differs = run_identity(old) != run_identity(config)
    else:
        differs = previous.is_file() and previous.read_text() != flags_text
    if differs:
        if not overwrite:
            raise ValueError(
                f"{workdir} holds a different run (its {RUN if saved.is_file() else FLAGS_FILE} "
                "differs); pass --overwrite to replace it or choose another --workdir"
            )
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)


def _fit(model, run, strategy, workdirs, datasets, saved=None):
    """Runs the epochs with Keras' ``fit``, or the multi-worker loop.

    Args:
      run: the ``run.Run`` being trained.
      saved: what ``KeepModel`` saves (a function returning the model), default ``model``.
      workdirs: (this worker's workdir, the chief's workdir).
      datasets: (train, validation) from ``run.split``.

    Returns:
      (first epoch run from 0, seconds, the KeepModel callback: the best epoch).
    """
    import keras

    from ecg_keras.training import multi_worker
    from ecg_keras.training.callbacks import (
        KeepModel,
        StopOnNonFinite,
        ValidationAuc,
        weight_averaging,
    )

    workdir, chief_workdir = workdirs
    config = run.config
    history_csv = keras.callbacks.CSVLogger(str(workdir / filenames.HISTORY), append=True)
    score = ValidationAuc(datasets[1], config.aggregate, config.validation_freq, config.epochs)
    if config.strategy == "multi_worker":
        # Every worker scores (the validation pass is collective); only the chief keeps files.
        keep = KeepModel(workdir, config.select)
        callbacks = [StopOnNonFinite(), score]
        callbacks += [keep] if multi_worker.is_chief(strategy) else []
        first, seconds = multi_worker.fit(
            model, run, strategy, chief_workdir, [*callbacks, history_csv]
        )
        return first, seconds, keep
    keep = KeepModel(workdir, config.select, saved)
    callbacks = [
        StopOnNonFinite(),  # first: nothing may back up or keep NaN weights
        keras.callbacks.BackupAndRestore(str(workdir / filenames.BACKUP)),
        *weight_averaging(config.ema_momentum),  # scored and kept: the averaged weights
        score,
        keep,
        history_csv,
        keras.callbacks.TensorBoard(str(workdir / filenames.LOGS)),
    ]
    start = time.perf_counter()
    history = model.fit(datasets[0], epochs=config.epochs, callbacks=callbacks, verbose=2)
    # A resumed run's fit() starts at the epoch after the last backed-up one.
    first = history.epoch[0] if history.epoch else config.epochs
    return first, time.perf_counter() - start, keep


def _kept_network(model, saved, keep, workdir: Path):
    """The float32 network ``KeepModel`` kept (the best or the last epoch), in memory: the
    fitted network given the kept weights. Read back from ``model.keras`` only when the kept
    epoch was saved by an earlier process (a resumed run whose best came before the kill)."""
    from ecg_keras import models

    if keep.kept_weights is None:
        return models.load(workdir / filenames.MODEL)
    network = saved() if saved else model
    network.set_weights(keep.kept_weights)
    return network


def train_and_evaluate(config: TrainConfig, workdir, flags_text: str = "", overwrite=False) -> dict:
    """Trains, keeps the best epoch by validation macro AUC (or the last, ``select``), and
    evaluates it on the test folds (the network in memory, not reloaded).

    Returns:
      the metrics.json content.
    """
    import keras

    from ecg_keras.analysis import evaluation, plots
    from ecg_keras.inference.predictor import Predictor
    from ecg_keras.training import device_features, multi_worker
    from ecg_keras.training.run import Run
    from ecg_keras.training.trainer import trainer

    workdir = Path(workdir)
    strategy = make_strategy(config.strategy)  # before other TF work, as tf.distribute asks
    run = Run.prepare(config)
    config = run.config
    distributed = config.strategy == "multi_worker"
    chief = not distributed or multi_worker.is_chief(strategy)
    chief_workdir = workdir
    if distributed:
        workdir = multi_worker.worker_workdir(workdir, strategy)
    _check_workdir(workdir, config, flags_text, overwrite)
    (workdir / FLAGS_FILE).write_text(flags_text)

    # tf.data's seeded shuffle also depends on TF's global seed: set it before the datasets
    # exist, as tune's trials do (build() seeds, then fit() makes the datasets).
    keras.utils.set_random_seed(config.seed)
    atomic.write_json(
        workdir / RUN,
        {
            "config": dataclasses.asdict(config),
            "classes": list(run.classes),
            "stats": {"mean": run.stats[0].tolist(), "std": run.stats[1].tolist()},
        },
    )
    model, saved, datasets = trainer(run, strategy)
    first, seconds, keep = _fit(model, run, strategy, (workdir, chief_workdir), datasets, saved)
    if not chief:
        shutil.rmtree(workdir, ignore_errors=True)
        return {}
    selected_epoch = config.epochs if config.select == "last" else keep.best_epoch
    plots.training_curves(workdir / filenames.HISTORY, workdir / filenames.CURVES, selected_epoch)
    training = {
        "epochs_trained": config.epochs,
        "train_seconds": round(seconds, 1),
        "resumed_at_epoch": first,
        "select": config.select,
        "precision": device_features.policy(config),
        "features_in": config.features_in,
        "selected_epoch": selected_epoch,
        "init_from": config.init_from or None,
    }
    network = _kept_network(model, saved, keep, workdir)
    predictor = Predictor.from_network(network, run, workdir=str(workdir))
    return evaluation.evaluate_predictor(predictor, workdir, training=training)
