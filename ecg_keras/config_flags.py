"""Command-line flags for every TrainConfig and FeatureConfig field, and back to flagfiles.

``train`` and ``tune`` define the same flags, so a search runs on top of any training config
and its result is a flagfile that ``train`` accepts as is:

    define_config_flags()                        # one flag per field, same defaults
    config = config_from_flags()                 # after absl parsed argv
    text = flags_text(config, workdir="runs/x")  # "--batch_size=64\\n--dropout=0.3\\n..."
"""

from __future__ import annotations

import dataclasses

from ecg_keras.config import FEATURES_IN, HEADS, INPUTS, PRECISIONS, FeatureConfig, TrainConfig

# Not flags: the sampling rate comes from the prepared data, the representation from the model.
DERIVED = ("sampling_rate", "representation")
FEATURE_FLAGS = [f.name for f in dataclasses.fields(FeatureConfig) if f.name not in DERIVED]
TRAIN_FLAGS = [f.name for f in dataclasses.fields(TrainConfig) if f.name != "features"]
CONFIG_FLAGS = TRAIN_FLAGS + FEATURE_FLAGS
ENUMS = {
    "schedule": ["onecycle", "cosine"],
    "aggregate": ["max", "mean"],
    "strategy": ["default", "mirrored", "multi_worker"],
    "head": list(HEADS),
    "select": ["best", "last"],
    "input": list(INPUTS),
    "features_in": list(FEATURES_IN),
    "precision": list(PRECISIONS),
}
FOLD_FLAGS = ("train_folds", "val_folds", "test_folds")
# Left out of a magnitude run's flagfile when at their defaults: its flags.cfg then stays
# byte-identical to one written before these flags existed, which is how train (resuming) and
# compare (reusing) recognize a run. A complex-input run writes both.
PHASE_FLAGS = ("input", "complex_scale")
# Flags added after runs existed, left out at their defaults for the same reason.
LATER_FLAGS = (
    "features_in",
    "jit_compile",
    "precision",
    "delay_seconds",
    "init_from",
    "validation_freq",
    "stream_dropout",
    "stream_heads",
    "ema_momentum",
)


def define_config_flags() -> None:
    """Defines one absl flag per TrainConfig and FeatureConfig field, with the same defaults."""
    from absl import flags

    defaults, feature_defaults = TrainConfig(), FeatureConfig()
    for name in CONFIG_FLAGS:
        default = getattr(defaults if name in TRAIN_FLAGS else feature_defaults, name)
        help_text = f"TrainConfig/FeatureConfig.{name} (see ecg_keras/config.py)."
        if name in ENUMS:
            flags.DEFINE_enum(name, default, ENUMS[name], help_text)
        elif isinstance(default, bool):
            flags.DEFINE_bool(name, default, help_text)
        elif isinstance(default, int):
            flags.DEFINE_integer(name, default, help_text)
        elif isinstance(default, float):
            flags.DEFINE_float(name, default, help_text)
        elif isinstance(default, tuple):
            flags.DEFINE_list(name, [str(v) for v in default], help_text)
        else:
            flags.DEFINE_string(name, default, help_text)


def config_from_flags() -> TrainConfig:
    """TrainConfig from the parsed flags; ValueError names a malformed flag."""
    from absl import flags

    values = {}
    for name in CONFIG_FLAGS:
        value = flags.FLAGS[name].value
        if name in FOLD_FLAGS:
            try:
                value = tuple(int(v) for v in value)
            except ValueError:
                raise ValueError(f"--{name}={','.join(value)}: folds must be integers") from None
        elif isinstance(value, list):
            value = tuple(value)
        values[name] = value
    features = FeatureConfig(**{n: values.pop(n) for n in FEATURE_FLAGS})
    return TrainConfig(**values, features=features)


def explicit_config_flags() -> list[str]:
    """Config flags given on the command line or in a flagfile (not left at their default)."""
    from absl import flags

    return [name for name in CONFIG_FLAGS if flags.FLAGS[name].present]


def flags_text(config: TrainConfig, workdir: str, header: str = "") -> str:
    """A flagfile that reproduces ``config``: ``--name=value`` lines, sorted by name.

    ``python -m ecg_keras.train --flagfile=FILE`` gives back ``config`` (the sampling rate
    always comes from the prepared data, the representation from the model preset).
    ``--input`` and ``--complex_scale`` (PHASE_FLAGS) and LATER_FLAGS are left out at their
    defaults.
    """
    values = {name: getattr(config, name) for name in TRAIN_FLAGS}
    values.update({name: getattr(config.features, name) for name in FEATURE_FLAGS})
    if config.features.input == FeatureConfig.input:
        for name in PHASE_FLAGS:
            if values[name] == getattr(FeatureConfig, name):
                del values[name]
    defaults, feature_defaults = TrainConfig(), FeatureConfig()
    for name in LATER_FLAGS:
        default = getattr(defaults if name in TRAIN_FLAGS else feature_defaults, name)
        if values[name] == default:
            del values[name]
    values["workdir"] = workdir
    lines = [
        header
        or f"# Resolved flags of this run: python -m ecg_keras.train --flagfile={workdir}/flags.cfg"
    ]
    for name in sorted(values):
        value = values[name]
        if value is None:
            continue
        if isinstance(value, tuple):
            value = ",".join(map(str, value))
        lines.append(f"--{name}={value}")
    return "\n".join(lines) + "\n"
