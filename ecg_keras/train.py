"""Train a CNN (spectrogram 2D or raw-signal 1D) on prepared PTB-XL and evaluate it with the
benchmark protocol.

    python -m ecg_keras.train --flagfile=configs/quickstart.cfg [--workdir=runs/NAME] ...

This module only parses the flags;
``ecg_keras.training.experiment.train_and_evaluate`` does the work and says what is written.
"""

from __future__ import annotations

from ecg_keras import cli_errors, config_flags
from ecg_keras.training.experiment import train_and_evaluate


def define_flags():
    """The config flags (see ``config_flags``) plus ``--workdir`` and ``--overwrite``."""
    from absl import flags

    config_flags.define_config_flags()
    flags.DEFINE_string("workdir", "runs/default", "Where the run's files go.")
    flags.DEFINE_bool("overwrite", False, "Replace a workdir that holds a different run.")


def main(argv):

    from absl import flags

    del argv
    with cli_errors.exit_on():
        config = config_flags.config_from_flags()
        workdir = flags.FLAGS.workdir
        text = config_flags.flags_text(config, workdir)
        result = train_and_evaluate(config, workdir, text, flags.FLAGS.overwrite)
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
