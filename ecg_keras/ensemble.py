"""Average several trained runs' probabilities and score the average like one run.

    python -m ecg_keras.ensemble --workdirs=runs/a,runs/b[,...] --output_dir=runs/ens_NAME

This module only parses the flags;
``ecg_keras.analysis.ensembling.ensemble`` does the work and says what is written.
"""

from __future__ import annotations

from ecg_keras import cli_errors
from ecg_keras.analysis.ensembling import EnsembleConfig, ensemble


def define_flags():
    from absl import flags

    flags.DEFINE_list("workdirs", None, "Training workdirs of the members (model.keras, run.json).")
    flags.DEFINE_string("output_dir", None, "Where the ensemble's metrics and predictions go.")
    flags.mark_flag_as_required("workdirs")
    flags.mark_flag_as_required("output_dir")


def main(argv):
    from absl import flags

    del argv
    with cli_errors.exit_on():
        config = EnsembleConfig(tuple(flags.FLAGS.workdirs), flags.FLAGS.output_dir)
        result = ensemble(config)
    test = result["test"]
    print(
        f"{flags.FLAGS.output_dir}: ensemble of {len(result['members'])}: validation macro AUC "
        f"{result['val']['macro_auc']:.4f}; test macro AUC {test['macro_auc']:.4f} (90% CI "
        f"{test['macro_auc_ci'][0]:.4f}-{test['macro_auc_ci'][1]:.4f}), F1 "
        f"{test['f1_macro']:.4f}, Fmax {test['fmax']:.4f}; test ECE {test['ece_uncalibrated']:.4f} "
        f"-> {test['ece']:.4f} calibrated"
    )


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
