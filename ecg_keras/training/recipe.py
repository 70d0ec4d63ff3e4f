"""How a run's model is made: the network for its config, loss and optimizer.

    run = Run.prepare(config)              # training.run: data, classes, statistics
    model = compile_model(build_model(run), run)

``train`` (one run), ``tune`` (a trial per config) and ``benchmarks/train_bench.py`` all build
through these functions, so a config means the same network and schedule everywhere.
"""

from __future__ import annotations

import numpy as np

from ecg_keras.config import TrainConfig


def _loss(pos_weight: np.ndarray | None):
    """Binary cross-entropy on logits; with class weighting, positives of class k count
    ``pos_weight[k]`` (negatives / positives) times."""
    import keras

    from ecg_keras.training.losses import WeightedBinaryCrossentropy

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
        learning_rate=schedule,
        weight_decay=config.weight_decay,
        beta_2=config.adam_beta2,
        use_ema=config.ema_momentum > 0,
        ema_momentum=config.ema_momentum or 0.99,  # Keras' default, unused when off
    )


def model_input_shape(config: TrainConfig) -> tuple[int | None, ...]:
    """A spectrogram model's (frames, bins, channels) of a training crop (channels 12, or 36
    with ``--input=complex``), frames None with a pooling head; a signal model's (None, 12).
    With None the model also takes whole 10 s records (``evaluate --windows=0``, export)."""
    from ecg_keras import models
    from ecg_keras.data import features, ptbxl

    if config.features.representation == "signal":
        if models.is_two_stream(config.model):  # its DFT-matmul STFT needs a fixed size
            return (config.features.input_samples, ptbxl.NUM_LEADS)
        return (None, ptbxl.NUM_LEADS)  # the 1D heads pool globally
    frames, bins, channels = features.spectrogram_shape(
        config.features, config.features.input_samples
    )
    # Pooling heads take any number of frames (e.g. a whole 10 s record); "flatten" does not.
    return (frames if config.head == "flatten" else None, bins, channels)


def build_model(run):
    """``models.get(config.model, ...)`` for a ``run.Run``, with the config's overrides; with
    ``init_from``, given the source run's weights (``warm_start``; what was copied is printed).

    Returns:
      keras.Model float32 [batch, frames, bins, channels] (spectrogram) or
      [batch, samples, 12] (signal) -> logits float32 [batch, len(run.classes)].
    """
    from ecg_keras import models

    config = run.config
    wanted = models.representation(config.model)
    if config.features.representation != wanted:
        raise ValueError(
            f"--model={config.model} takes the {wanted}, but the config's features are set "
            f"for the {config.features.representation}: make the run with Run.prepare"
        )
    shape = model_input_shape(config)
    overrides = config.model_overrides()
    if config.features.representation == "signal":
        config.check_signal_overrides()
        if models.is_two_stream(config.model):  # computes the spectrogram itself
            if config.stages:
                raise ValueError(f"--stages does not apply to --model={config.model}")
            mean, std = run.stats
            overrides = {
                "dropout": overrides["dropout"],
                "stream_dropout": config.stream_dropout,
                "stream_heads": config.stream_heads,
                "feature_config": config.features,
                "signal_mean": float(mean),
                "signal_std": float(std),
            }
        else:
            overrides = {k: v for k, v in overrides.items() if k in ("dropout", "stages")}
    network = models.get(config.model, shape, len(run.classes), **overrides)
    if config.init_from:
        from ecg_keras.training import warm_start

        source = warm_start.Source.load(config.init_from)
        source.check_features(config)
        report = source.copy_into(network, run.classes)
        print(
            f"--init_from={config.init_from}: copied {len(report['copied'])} layers, "
            f"{len(report['new'])} left new ({', '.join(report['new']) or 'none'}); "
            f"head {report['head']}"
        )
    return network


def steps_per_epoch(config: TrainConfig, manifest: dict) -> int:
    """Global batches per epoch over the training folds (records with no label included)."""
    labelled = sum(manifest["folds"][str(f)] for f in config.train_folds)  # upper bound
    return max(1, labelled // config.batch_size)


def compile_model(model, run, epochs=None):
    """Binary cross-entropy on logits (class-weighted if asked), AdamW with the run's schedule
    spread over ``epochs`` (default ``run.config.epochs``), a streaming AUC for the logs, and
    XLA with ``--jit_compile`` (else Keras decides). Returns ``model``, compiled."""
    import keras

    config, manifest, classes = run.config, run.manifest, run.classes
    steps = steps_per_epoch(config, manifest)
    task = manifest["tasks"][config.task]
    counts = np.array([task["counts"][c] for c in classes], float)
    total = manifest["num_records"] - task["unlabeled"]
    pos_weight = (total - counts) / np.maximum(counts, 1) if config.class_weighting else None
    model.compile(
        optimizer=_optimizer(config, steps, epochs or config.epochs),
        loss=_loss(pos_weight),
        metrics=[keras.metrics.AUC(multi_label=True, from_logits=True, name="auc")],
        # Keras' "auto" is XLA on GPUs, none on CPUs (measured slower here: docs/benchmarks.md).
        jit_compile=True if config.jit_compile else "auto",
    )
    return model
