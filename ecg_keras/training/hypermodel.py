"""The KerasTuner search space over the VGG and ResNet families, as training configs.

A trial's hyperparameters become a ``TrainConfig`` (``trial_config``), and the trial is built
and trained with the functions ``train`` uses (``recipe.build_model``, ``compile_model``,
``Run.split``, ``callbacks.ValidationAuc``): the tuner has no layers or training loop of its
own, and a trial's config written as a flagfile (``config_flags.flags_text``) is an ordinary
training run.

    space = SearchSpace(families=("vgg",), base_filters=(16, 32))
    hypermodel = EcgHyperModel(Run.prepare(base_config), space)

Hyperparameters (conditional ones are scoped to their family with ``conditional_scope``):

| name | values | training flag |
| --- | --- | --- |
| family | ``families`` | ``--model`` = vgg_small / resnet_small |
| {family}_num_stages, {family}_base_filters, {family}_depth | ints | ``--stages`` |
| {family}_kernel_size | ints | ``--kernel_size`` |
| head | gap / flatten | ``--head`` |
| dropout, learning_rate, weight_decay | ranges (the last two log-scaled) | same names |
| window_seconds, hop_seconds | seconds | same names (``--fft_seconds`` = window) |
| input | ``input_choices``; empty (default): not searched, the base ``--input`` | ``--input`` |

Stage ``i`` (from 0) has ``base_filters * 2**i`` filters (at most 512) and ``depth``
convolutions (VGG) or basic residual blocks (ResNet).
"""

from __future__ import annotations

import dataclasses
import os
import re
import time

import keras_tuner as kt

from ecg_keras.config import HEADS, INPUTS, FeatureConfig, TrainConfig
from ecg_keras.training import recipe
from ecg_keras.training.callbacks import ValidationAuc, weight_averaging

FAMILY_PRESETS = {"vgg": "vgg_small", "resnet": "resnet_small"}
# Training flags that a trial sets: giving one of them to ``tune`` contradicts the search.
SEARCHED_FLAGS = {
    "model": "families",
    "stages": "num_stages, base_filters, stage_depths",
    "kernel_size": "kernel_sizes",
    "head": "heads",
    "dropout": "dropout_range",
    "learning_rate": "learning_rate_range",
    "weight_decay": "weight_decay_range",
    "window_seconds": "window_choices",
    "hop_seconds": "hop_choices",
    "fft_seconds": "window_choices",
}
OBJECTIVE = "val_macro_auc"
MAX_FILTERS = 512


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """What the tuner may choose; each field is a flag of ``tune`` (see SEARCHED_FLAGS)."""

    families: tuple[str, ...] = ("vgg", "resnet")
    num_stages: tuple[int, ...] = (3, 4)
    base_filters: tuple[int, ...] = (16, 32)
    stage_depths: tuple[int, ...] = (1, 2)
    kernel_sizes: tuple[int, ...] = (3, 5)
    heads: tuple[str, ...] = ("gap", "flatten")
    dropout_range: tuple[float, float] = (0.1, 0.5)
    learning_rate_range: tuple[float, float] = (1e-3, 1e-2)
    weight_decay_range: tuple[float, float] = (1e-3, 1e-1)
    window_choices: tuple[float, ...] = (0.32, 0.64, 0.96)
    hop_choices: tuple[float, ...] = (0.06, 0.08, 0.12)
    # Spectrogram inputs (magnitude, complex); () keeps the base config's --input unsearched,
    # so that a search over one input has no extra hyperparameter.
    input_choices: tuple[str, ...] = ()

    def check(self, features: FeatureConfig) -> None:
        """ValueError naming the flag, unless every combination is a valid training config."""
        for name in (
            "families", "num_stages", "base_filters", "stage_depths", "kernel_sizes", "heads",
            "window_choices", "hop_choices",
        ):  # fmt: skip
            if not getattr(self, name):
                raise ValueError(f"--{name} is empty: give at least one value")
        if unknown := set(self.families) - set(FAMILY_PRESETS):
            raise ValueError(f"--families: unknown {sorted(unknown)}; known: vgg, resnet")
        if unknown := set(self.heads) - set(HEADS):
            raise ValueError(f"--heads: unknown {sorted(unknown)}; known: {', '.join(HEADS)}")
        if unknown := set(self.input_choices) - set(INPUTS):
            raise ValueError(f"--input_choices: unknown {sorted(unknown)}; known: {INPUTS}")
        for name in ("num_stages", "base_filters", "stage_depths", "kernel_sizes"):
            if min(getattr(self, name)) < 1:
                raise ValueError(f"--{name}={getattr(self, name)}: values must be >= 1")
        for name in ("dropout_range", "learning_rate_range", "weight_decay_range"):
            low, high = getattr(self, name)
            if not 0 < low <= high or (name == "dropout_range" and high >= 1):
                raise ValueError(f"--{name}={low},{high}: need 0 < low <= high (< 1 for dropout)")
        for window in self.window_choices:
            for hop in self.hop_choices:
                try:
                    trial_features(features, window, hop)
                except ValueError as e:
                    raise ValueError(
                        f"--window_choices/--hop_choices: window {window} s, hop {hop} s with "
                        f"the training flags gives an invalid config: {e}"
                    ) from None


def trial_features(features: FeatureConfig, window: float, hop: float) -> FeatureConfig:
    if hop > window:
        raise ValueError(f"hop {hop} s is longer than the window {window} s")
    return dataclasses.replace(features, window_seconds=window, hop_seconds=hop, fft_seconds=window)


def declare(hp: kt.HyperParameters, space: SearchSpace) -> dict:
    """Declares (or reads) the trial's hyperparameters; returns TrainConfig field values."""
    family = hp.Choice("family", list(space.families))
    with hp.conditional_scope("family", family):  # only this family's choices are active
        stages = hp.Choice(f"{family}_num_stages", list(space.num_stages))
        base = hp.Choice(f"{family}_base_filters", list(space.base_filters))
        depth = hp.Choice(f"{family}_depth", list(space.stage_depths))
        kernel = hp.Choice(f"{family}_kernel_size", list(space.kernel_sizes))
    searched_input = {}
    if space.input_choices:
        searched_input["input"] = hp.Choice("input", list(space.input_choices))
    return {
        **searched_input,
        "model": FAMILY_PRESETS[family],
        "stages": tuple(f"{min(base * 2**i, MAX_FILTERS)}x{depth}" for i in range(stages)),
        "kernel_size": kernel,
        "head": hp.Choice("head", list(space.heads)),
        "dropout": hp.Float("dropout", *space.dropout_range, step=0.1),
        "learning_rate": hp.Float("learning_rate", *space.learning_rate_range, sampling="log"),
        "weight_decay": hp.Float("weight_decay", *space.weight_decay_range, sampling="log"),
        "window_seconds": hp.Choice("window_seconds", list(space.window_choices)),
        "hop_seconds": hp.Choice("hop_seconds", list(space.hop_choices)),
    }


def trial_config(base: TrainConfig, space: SearchSpace, hp, epochs: int | None = None):
    """The TrainConfig of a trial: ``base`` with the trial's hyperparameters (and epochs).

    Trials compute features in the pipeline and train in float32 whatever ``base`` says:
    KerasTuner checkpoints and restores the network ``build`` returns, not a training model
    around it. ``best_flags.cfg`` says so, so its retrain reproduces the trial's score."""
    values = declare(hp, space)
    values.update(features_in="pipeline", precision="float32", mixed_precision=False)
    features = trial_features(
        base.features, values.pop("window_seconds"), values.pop("hop_seconds")
    )
    if "input" in values:
        features = dataclasses.replace(features, input=values.pop("input"))
    return dataclasses.replace(base, **values, features=features, epochs=epochs or base.epochs)


def worker_index() -> int:
    """This process's KerasTuner worker number (``tunerN`` -> N), or 0 when not distributed."""
    match = re.fullmatch(r"\D*(\d+)", os.environ.get("KERASTUNER_TUNER_ID", "tuner0"))
    return int(match.group(1)) if match else 0


class EcgHyperModel(kt.HyperModel):
    """Builds and trains one trial like ``ecg_keras.train`` does, scored on validation.

    ``fit`` returns {val_macro_auc, epochs, best_epoch, seconds, worker}: the objective
    (validation macro AUC of the best epoch, windows aggregated as in evaluation) and what
    ``trials.csv`` reports.
    """

    def __init__(self, base, space: SearchSpace):
        """``base``: the ``run.Run`` of the base config (data, classes, statistics)."""
        super().__init__(name="ecg_keras")
        self.base, self.space = base, space
        # Normalization statistics per FeatureConfig (STFT setting, input): trials share them.
        self._stats = {base.config.features: base.stats}

    def trial_run(self, hp, epochs=None, with_stats=True):
        """The ``run.Run`` of the trial that ``hp`` describes (``stats`` None without
        ``with_stats``: building a model does not need them)."""
        from ecg_keras.data import input_pipeline

        config = trial_config(self.base.config, self.space, hp, epochs)
        if config.init_from:  # a fine-tuning search keeps the source run's inputs
            return self.base.with_config(config, self.base.stats)
        if with_stats and config.features not in self._stats:  # frozen dataclass: hashable
            self._stats[config.features] = input_pipeline.feature_stats(
                config.data_dir, config.train_folds, config.features
            )
        return self.base.with_config(config, self._stats.get(config.features))

    def build(self, hp):
        import keras

        run = self.trial_run(hp, with_stats=False)
        keras.utils.set_random_seed(run.config.seed)  # as train does: best_flags.cfg reproduces
        return recipe.build_model(run)

    def fit(self, hp, model, *args, epochs=None, initial_epoch=0, callbacks=(), **kwargs):

        start = time.perf_counter()
        run = self.trial_run(hp, epochs)
        config = run.config
        # A Hyperband continuation trains epochs initial_epoch..epochs with a fresh schedule.
        recipe.compile_model(model, run, config.epochs - initial_epoch)
        train_ds = run.split(config.train_folds, True)
        val_ds = run.split(config.val_folds, False)
        score = ValidationAuc(val_ds, config.aggregate)
        model.fit(
            train_ds,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            # score before the tuner's callbacks, which read val_macro_auc
            callbacks=[*weight_averaging(config.ema_momentum), score, *callbacks],
            verbose=kwargs.get("verbose", 2),
        )
        return {
            OBJECTIVE: score.best,
            "epochs": config.epochs,
            "best_epoch": score.best_epoch,
            "seconds": round(time.perf_counter() - start, 1),
            "worker": worker_index(),
        }
