"""Draw one ECG: each lead in mV beside its spectrogram exactly as the model receives it.

    python -m ecg_keras.visualize --data_dir=tfrecords/ptbxl100 --ecg_id=1 --output=ecg1.png \
        [--task=superdiagnostic] [--ptbxl_dir=DIR] [--window_seconds=0.64 ...]

This module only parses the flags;
``ecg_keras.analysis.ecg_figure.visualize`` does the work and says what is written.
"""

from __future__ import annotations

from ecg_keras import cli_errors
from ecg_keras.analysis.ecg_figure import STFT_FLAGS, visualize
from ecg_keras.config import FeatureConfig
from ecg_keras.data import ptbxl


def define_flags() -> None:
    from absl import flags

    defaults = FeatureConfig()
    flags.DEFINE_string("data_dir", None, "Prepared TFRecords (with manifest.json).")
    flags.DEFINE_string("ptbxl_dir", None, "PTB-XL folder: read the WFDB record and CSV labels.")
    flags.DEFINE_integer("ecg_id", None, "The record to draw.")
    flags.DEFINE_string("output", None, "PNG to write.")
    flags.DEFINE_string("task", "superdiagnostic", f"Label task, one of {list(ptbxl.TASKS)}.")
    flags.DEFINE_enum("sampling_rate", "100", ["100", "500"], "Hz, with --ptbxl_dir only.")
    for name in STFT_FLAGS:
        flags.DEFINE_float(name, getattr(defaults, name), f"FeatureConfig.{name}.")
    flags.mark_flags_as_required(["ecg_id", "output"])


def main(argv):
    from absl import flags

    del argv
    f = flags.FLAGS
    with cli_errors.exit_on():  # PtbxlError and DataError are ValueErrors
        stft = {name: f[name].value for name in STFT_FLAGS}
        config = FeatureConfig(sampling_rate=int(f.sampling_rate), crop_seconds=0.0, **stft)
        path = visualize(f.ecg_id, f.output, config, f.data_dir, f.ptbxl_dir, f.task)
    print(f"wrote {path}")


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
