"""Export a trained run for TF Serving and TFLite, and check every artifact on real records.

    python -m ecg_keras.export --workdir=runs/NAME (or --model=FILE.keras) \
        --output_dir=saved_models/NAME [--version=N] \
        [--tflite=float32,float16,dynamic_int8,int8] [--data_dir=...] [--calibration_records=200]

This module only parses the flags;
``ecg_keras.deploy.exporting.export`` does the work and says what is written.
"""

from __future__ import annotations

from pathlib import Path

from ecg_keras import cli_errors
from ecg_keras.deploy import export_check, lite
from ecg_keras.deploy.exporting import ExportConfig, export


def define_flags():
    from absl import flags

    flags.DEFINE_string("workdir", None, "Training workdir (run.json, model.keras, metrics.json).")
    flags.DEFINE_string("model", None, "A .keras file to export instead of WORKDIR/model.keras.")
    flags.DEFINE_string("output_dir", None, "saved_models/NAME: versions go in NAME/VERSION/.")
    flags.DEFINE_integer("version", None, "Version number (default: the next free one).")
    flags.DEFINE_list("tflite", list(lite.MODES), f"TFLite modes, any of {','.join(lite.MODES)}.")
    flags.DEFINE_string("data_dir", None, "Prepared TFRecords (default: the run's).")
    flags.DEFINE_integer("calibration_records", 200, "Training records that calibrate int8.")
    flags.mark_flag_as_required("output_dir")


def main(argv):
    from absl import flags, logging

    del argv
    logging.set_verbosity(logging.WARNING)  # SavedModel writing logs every file at INFO
    f = flags.FLAGS
    with cli_errors.exit_on(ValueError, FileNotFoundError, export_check.CheckError):
        config = ExportConfig(
            output_dir=f.output_dir,
            workdir=f.workdir,
            model=f.model,
            version=f.version,
            tflite=tuple(m for m in f.tflite if m),
            data_dir=f.data_dir,
            calibration_records=f.calibration_records,
        )
        result = export(config)
    for artifact in result["artifacts"]:
        check = artifact["check"]
        print(
            f"{artifact['name']:20s} {artifact['size_bytes'] / 1e6:8.2f} MB  max |diff| "
            f"{check['max_abs_diff']:.2e}  macro AUC {check['macro_auc']:.4f}  ok"
        )
    print(f"exported {Path(f.output_dir) / str(result['version'])}")


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
