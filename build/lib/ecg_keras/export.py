"""Export a trained run for TF Serving and TFLite, and check every artifact on real records.

    python -m ecg_keras.export --workdir=runs/NAME (or --model=FILE.keras) \
        --output_dir=saved_models/NAME [--version=N] \
        [--tflite=float32,float16,dynamic_int8,int8] [--data_dir=...] [--calibration_records=200]

Writes ``OUTPUT_DIR/VERSION/`` (TF Serving's layout; without ``--version`` the next number
after the highest existing one, and an existing version is never replaced): the SavedModel
(signature ``serving_default``: ``ecg`` float32 [batch, 10 s x rate, 12] mV -> ``probabilities``,
``labels``, ``window_probabilities``), ``assets.extra/metadata.json`` and
``assets.extra/tf_serving_warmup_requests``, ``tflite/MODE.tflite`` with ``tflite/metadata.json``,
and ``export.json`` (every artifact, its size and its check). Everything is written in a
hidden temporary folder, checked (``export_check``), then renamed into place, so TF Serving
never sees a half-written or failing version. A failing check exits with code 1 and leaves the
artifacts in ``OUTPUT_DIR/.failed-VERSION/`` for inspection. Takes about a minute for
``vgg_small`` on 2 cores.

``--workdir`` may also be an ensemble's output (``python -m ecg_keras.ensemble``): one set of
artifacts whose signature runs every member and averages their probabilities, with the
ensemble's thresholds, checked against the mean of the members' own predictions
(``inference.Predictor``).
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
