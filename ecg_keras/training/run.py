"""``Run``: one training run's facts, loaded once and passed down.

    run = Run.prepare(config)           # checks (or prepares) the data, computes the statistics
    run = Run.load("runs/NAME")         # a saved run: run.json + the data's manifest
    ds = run.split(run.config.train_folds, training=True)   # (x, labels) batches
    model = recipe.compile_model(recipe.build_model(run), run)

A run is its config (with the data's sampling rate and the model's representation filled in),
the prepared data's manifest, the classes it predicts, and the normalization statistics of its
training folds. Every command that trains, scores or exports a run goes through one ``Run``,
so the manifest is read and the statistics are computed once, and a config means the same
thing everywhere. The model preset decides what the network sees (``models.representation``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ecg_keras.config import TrainConfig, config_from_dict
from ecg_keras.data import manifest as manifest_lib
from ecg_keras.filenames import RUN_JSON


@dataclasses.dataclass(frozen=True)
class Run:
    """``stats``: (mean, std) from the training folds: float32 [bins, channels] for a
    spectrogram (channels 12, or 36 with ``--input=complex``), float32 [] for the signal."""

    config: TrainConfig
    manifest: dict = dataclasses.field(repr=False)
    classes: tuple[str, ...]
    stats: tuple[np.ndarray, np.ndarray] = dataclasses.field(repr=False)

    @classmethod
    def prepare(cls, config: TrainConfig, stats=None) -> Run:
        """Checks (and, with ``ptbxl_dir``, first prepares) the data, then computes the
        statistics on the training folds unless ``stats`` are given; with ``init_from`` they
        are the source run's (``warm_start``), whose features the config must share.

        Raises:
          ValueError / FileNotFoundError naming the flag, folder or shard that is wrong.
        """
        from ecg_keras.data import input_pipeline

        config, manifest, classes = _checked_data(config)
        if stats is None and config.init_from:
            from ecg_keras.training import warm_start

            source = warm_start.Source.load(config.init_from)
            source.check_features(config)
            stats = source.stats
        if stats is None:
            stats = input_pipeline.feature_stats(
                config.data_dir, config.train_folds, config.features
            )
        return cls(config, manifest, classes, stats)

    @classmethod
    def load(cls, workdir, data_dir: str | None = None) -> Run:
        """A saved run (``WORKDIR/run.json``), reading from ``data_dir`` if given."""
        path = Path(workdir) / RUN_JSON
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: {workdir} is not a training workdir")
        saved = json.loads(path.read_text())
        config = config_from_json(saved["config"])
        if data_dir:
            config = dataclasses.replace(config, data_dir=data_dir)
        stats = tuple(np.asarray(saved["stats"][k], np.float32) for k in ("mean", "std"))
        manifest = manifest_lib.load(config.data_dir)
        return cls(config, manifest, _classes(config, manifest), stats)

    def with_config(self, config: TrainConfig, stats) -> Run:
        """The same data with another config (a tuner trial) and its statistics."""
        return dataclasses.replace(self, config=config, stats=stats)

    @property
    def class_index(self) -> list[int]:
        """Columns of the task's label vector that this run predicts."""
        known = self.manifest["tasks"][self.config.task]["classes"]
        return [known.index(c) for c in self.classes]

    def split(self, folds, training: bool, **kwargs):
        """``make_dataset`` for one split, normalized with ``stats``, labels narrowed to the
        run's classes. ``kwargs`` go to ``make_dataset`` (``input_context``). The element order
        is deterministic: the same config trains to the same weights (measured: two runs gave
        identical histories, against a 0.02 spread of validation AUC without it), which is
        what lets ``tune``'s ``best_flags.cfg`` reproduce a trial's score.

        Returns:
          training: (x, labels float32 [batch, classes]); otherwise (x, labels, ecg_id), x as
          ``make_dataset`` yields it for ``config.features.representation``.
        """
        import tensorflow as tf

        from ecg_keras.data import input_pipeline

        c, index = self.config, self.class_index
        ds = input_pipeline.make_dataset(
            c.data_dir, folds, c.task, c.features, training=training,
            batch_size=c.batch_size, stats=self.stats, seed=c.seed, cache=c.cache,
            with_ids=not training, deterministic=True, **kwargs,
        )  # fmt: skip
        return ds.map(lambda x, y, *rest: (x, tf.gather(y, index, axis=-1), *rest))


def config_from_json(obj: dict) -> TrainConfig:
    """``run.json``'s config (``config.config_from_dict``: older files read too)."""
    return config_from_dict(obj)


def class_columns(config: TrainConfig) -> list[int]:
    """``Run.class_index`` for a bare config (readers outside a run: export checks, compare)."""
    manifest = manifest_lib.load(config.data_dir)
    known = manifest["tasks"][config.task]["classes"]
    return [known.index(c) for c in _classes(config, manifest)]


def _classes(config: TrainConfig, manifest: dict) -> tuple[str, ...]:
    """The task's classes (from the manifest) or the chosen subset, checked."""
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
    return tuple(config.classes or known)


def _checked_data(config: TrainConfig) -> tuple[TrainConfig, dict, tuple[str, ...]]:
    """(config with the model's representation and the data's rate, manifest, classes), every
    fold of the split checked; prepares ``data_dir`` from ``ptbxl_dir`` first when it is empty."""
    from ecg_keras import models
    from ecg_keras.data import input_pipeline, preparation

    if config.model not in models.PRESETS:
        raise ValueError(f"unknown --model={config.model}; known: {sorted(models.PRESETS)}")
    representation = models.representation(config.model)
    config = dataclasses.replace(
        config, features=dataclasses.replace(config.features, representation=representation)
    )
    config.check_signal_overrides()
    if not (Path(config.data_dir) / manifest_lib.MANIFEST).is_file() and config.ptbxl_dir:
        preparation.prepare(preparation.PrepareConfig(config.ptbxl_dir, config.data_dir))
    manifest = manifest_lib.load(config.data_dir)
    rate = manifest["sampling_rate"]
    config = dataclasses.replace(
        config, features=dataclasses.replace(config.features, sampling_rate=rate)
    )
    classes = _classes(config, manifest)
    for folds in (config.train_folds, config.val_folds, config.test_folds):
        input_pipeline.shard_files(config.data_dir, folds)  # empty or damaged folds fail here
    return config, manifest, classes
