"""What a training run is, from its TrainConfig: data, classes, model, loss and optimizer.

``train`` (one run), ``tune`` (a trial per config), ``evaluate`` and ``export`` (a saved run)
all go through these functions, so a config means the same thing everywhere:

    config, manifest, classes = prepare_data(config)       # checks the data first
    model = compile_model(build_model(config, classes), config, manifest, classes)
    ds = make_split(config, config.train_folds, True, stats)  # (x, labels) batches
    config, (mean, std) = load_run("runs/NAME")             # a saved run's config and stats

The model preset decides what the network sees (``models.representation``): ``prepare_data``
records it in ``config.features.representation``, and the one input pipeline, its statistics,
``build_model``'s input shape and the exported endpoint all follow from there.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

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


def make_split(config: TrainConfig, folds, training: bool, stats, **kwargs):
    """``make_dataset`` for one split of a run, labels narrowed to the run's classes.

    ``kwargs`` go to ``make_dataset`` (``input_context`` under a distribution strategy). The
    element order is deterministic: the same config trains to the same weights (measured: two
    runs gave identical histories, against a 0.02 spread of validation AUC without it), which
    is what lets ``tune``'s ``best_flags.cfg`` reproduce a trial's score.

    Returns:
      training: (x, labels float32 [batch, classes]); otherwise (x, labels, ecg_id), x as
      ``make_dataset`` yields it for ``config.features.representation``.
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
        deterministic=True,
        **kwargs,
    )
    return ds.map(lambda x, y, *rest: (x, tf.gather(y, index, axis=-1), *rest))


def config_from_json(obj: dict) -> TrainConfig:
    obj = dict(obj)
    obj["features"] = FeatureConfig(**obj["features"])
    for key in ("classes", "train_folds", "val_folds", "test_folds"):
        obj[key] = tuple(obj[key])
    return TrainConfig(**obj)


def load_run(workdir) -> tuple[TrainConfig, tuple[np.ndarray, np.ndarray]]:
    """The config and normalization statistics of a run: mean, std float32 [bins, channels]
    for a spectrogram model (channels 12, or 36 with ``--input=complex``), float32 [] (one
    number each) for a model on the signal."""
    path = Path(workdir) / RUN
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {workdir} is not a training workdir")
    run = json.loads(path.read_text())
    stats = (
        np.asarray(run["stats"]["mean"], np.float32),
        np.asarray(run["stats"]["std"], np.float32),
    )
    return config_from_json(run["config"]), stats


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
    return keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=config.weight_decay, beta_2=config.adam_beta2
    )


def prepare_data(config: TrainConfig) -> tuple[TrainConfig, dict, list[str]]:
    """Checks (and, with ``ptbxl_dir``, first prepares) the run's data, before any training.

    Returns:
      (config with the data's sampling rate and the model's representation, the manifest,
      the run's classes).

    Raises:
      ValueError / FileNotFoundError naming the flag, folder or shard that is wrong.
    """
    from ecg_keras import input_pipeline, models, prepare

    if config.model not in models.PRESETS:
        raise ValueError(f"unknown --model={config.model}; known: {sorted(models.PRESETS)}")
    config = dataclasses.replace(
        config,
        features=dataclasses.replace(
            config.features, representation=models.representation(config.model)
        ),
    )
    _check_overrides(config)
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


def _check_overrides(config: TrainConfig) -> None:
    """ValueError naming the flag when a spectrogram-only flag is set for a 1D preset.

    The 1D presets keep the benchmark's kernels (several per model, one ``--kernel_size``
    cannot say which) and its concat-pool head; they take ``--dropout`` and ``--stages``.
    ``--input`` chooses spectrogram channels, which a model on the raw signal has none of.
    """
    if config.features.representation != "signal":
        return
    default = TrainConfig()
    for name in ("kernel_size", "head"):
        if getattr(config, name) != getattr(default, name):
            raise ValueError(
                f"--{name}={getattr(config, name)} applies to spectrogram models; "
                f"--model={config.model} takes the raw signal and keeps the benchmark's {name}"
            )
    if config.features.input != default.features.input:
        raise ValueError(
            f"--input={config.features.input} applies to spectrogram models; "
            f"--model={config.model} takes the raw signal"
        )


def model_input_shape(config: TrainConfig) -> tuple[int | None, ...]:
    """A spectrogram model's (frames, bins, channels) of a training crop (channels 12, or 36
    with ``--input=complex``), frames None with a pooling head; a signal model's (None, 12).
    With None the model also takes whole 10 s records (``evaluate --windows=0``, export)."""
    from ecg_keras import features, ptbxl

    if config.features.representation == "signal":
        return (None, ptbxl.NUM_LEADS)  # the 1D heads pool globally
    frames, bins, channels = features.spectrogram_shape(
        config.features, config.features.input_samples
    )
    # Pooling heads take any number of frames (e.g. a whole 10 s record); "flatten" does not.
    return (frames if config.head == "flatten" else None, bins, channels)


def build_model(config: TrainConfig, classes: list[str]):
    """``models.get(config.model, ...)`` with the config's overrides (shared with ``tune``).

    Returns:
      keras.Model float32 [batch, frames, bins, channels] (spectrogram) or
      [batch, samples, 12] (signal) -> logits float32 [batch, len(classes)].
    """
    from ecg_keras import models

    wanted = models.representation(config.model)
    if config.features.representation != wanted:
        raise ValueError(
            f"--model={config.model} takes the {wanted}, but the config's features are set "
            f"for the {config.features.representation}: pass the config through prepare_data"
        )
    shape = model_input_shape(config)
    overrides = config.model_overrides()
    if config.features.representation == "signal":
        _check_overrides(config)
        overrides = {k: v for k, v in overrides.items() if k in ("dropout", "stages")}
    return models.get(config.model, shape, len(classes), **overrides)


def steps_per_epoch(config: TrainConfig, manifest: dict) -> int:
    """Global batches per epoch over the training folds (records with no label included)."""
    labelled = sum(manifest["folds"][str(f)] for f in config.train_folds)  # upper bound
    return max(1, labelled // config.batch_size)


def compile_model(model, config: TrainConfig, manifest: dict, classes: list[str], epochs=None):
    """Binary cross-entropy on logits (class-weighted if asked), AdamW with the run's schedule
    spread over ``epochs`` (default ``config.epochs``), and a streaming AUC for the logs."""
    import keras

    steps = steps_per_epoch(config, manifest)
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
