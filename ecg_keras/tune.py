"""KerasTuner search over spectrogram VGG and ResNet configs, scored on validation macro AUC.

    python -m ecg_keras.tune --flagfile=configs/tune_superdiagnostic.cfg [--data_dir=...] \
        [--tuning_dir=tuning] [--project=NAME] [--tuner=hyperband|bayesian|random] \
        [--max_trials=N] [--max_epochs=N] [--executions_per_trial=N] [--overwrite]

This module only parses the flags;
``ecg_keras.training.tuning.tune`` does the work and says what is written.
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # before TensorFlow is imported; not when tests import the module
    # TF 2.21's oneDNN kernels corrupted the heap in search processes on an AVX-512 FP16/AMX
    # Xeon ("free(): invalid next size", SIGABRT or SIGSEGV inside model.fit): 4 of 20 searches
    # died with them, 0 of 14 without, `train` 0 of 20. Without oneDNN a trial step is ~2x
    # slower (392 vs 179-225 ms). Set TF_ENABLE_ONEDNN_OPTS=1 explicitly to take the risk.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import dataclasses
from pathlib import Path

from ecg_keras import cli_errors, config_flags
from ecg_keras.training import hypermodel
from ecg_keras.training.hypermodel import SearchSpace
from ecg_keras.training.tuning import (
    TRIALS_CSV,
    TUNERS,
    TuneOptions,
    retrain_command,
    top_table,
    tune,
)


def define_flags():
    from absl import flags

    config_flags.define_config_flags()
    options = TuneOptions()
    flags.DEFINE_string("tuning_dir", options.tuning_dir, "Parent of the project folder.")
    flags.DEFINE_string("project", options.project, "Project name: tuning_dir/project/.")
    flags.DEFINE_enum("tuner", options.tuner, list(TUNERS), "Search algorithm.")
    flags.DEFINE_integer("max_trials", options.max_trials, "Trials (bayesian, random).")
    flags.DEFINE_integer("max_epochs", None, "Epochs per trial (Hyperband: most); --epochs.")
    flags.DEFINE_integer("executions_per_trial", 1, "Trainings averaged per trial.")
    flags.DEFINE_bool("overwrite", False, "Start the search over (deletes the project).")
    flags.DEFINE_string(
        "workdir", None, "--workdir written into best_flags.cfg; default runs/tune_PROJECT."
    )
    for field in dataclasses.fields(SearchSpace):
        default = [str(v) for v in field.default]
        flags.DEFINE_list(field.name, default, f"Search space: {field.name} (see hypermodel).")


def space_from_flags() -> SearchSpace:
    from absl import flags

    values = {}
    for field in dataclasses.fields(SearchSpace):
        kind = type(field.default[0]) if field.default else str  # () only for input_choices
        raw = flags.FLAGS[field.name].value
        try:
            values[field.name] = tuple(kind(v) for v in raw)
        except ValueError:
            raise ValueError(
                f"--{field.name}={','.join(raw)}: values must be {kind.__name__}"
            ) from None
        if field.name.endswith("_range") and len(values[field.name]) != 2:
            raise ValueError(f"--{field.name}={','.join(raw)}: give LOW,HIGH")
    return SearchSpace(**values)


def main(argv):
    from absl import flags

    del argv
    f = flags.FLAGS
    with cli_errors.exit_on():
        clash = [n for n in config_flags.explicit_config_flags() if n in hypermodel.SEARCHED_FLAGS]
        if clash:
            name, value = clash[0], f[clash[0]].value
            value = ",".join(value) if isinstance(value, list) else value
            raise ValueError(
                f"--{name}={value} is searched by the tuner (see --"
                f"{hypermodel.SEARCHED_FLAGS[name]}): drop it, or narrow the search space"
            )
        if f.input_choices and f["input"].present:
            raise ValueError(
                f"--input={f.input} is searched by the tuner (--input_choices="
                f"{','.join(f.input_choices)}): drop one of them"
            )
        options = TuneOptions(
            f.tuning_dir, f.project, f.tuner, f.max_trials, f.max_epochs,
            f.executions_per_trial, f.overwrite, f.workdir,
        )  # fmt: skip
        rows = tune(config_flags.config_from_flags(), space_from_flags(), options)
    if rows:
        project = Path(f.tuning_dir) / f.project
        print(f"\nTop trials of {project} (all in {project / TRIALS_CSV}):")
        print(top_table(rows))
        print(f"Retrain the best: {retrain_command(project)}")


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
