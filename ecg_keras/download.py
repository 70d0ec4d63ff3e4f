"""Downloads PTB-XL from PhysioNet, verified against the release's ``SHA256SUMS.txt``.

    python -m ecg_keras.download --output_dir=DIR [--version=1.0.3] \
        [--sampling_rate=100|500|both] [--max_ecg_id=N] [--base_url=URL]

This module only parses the flags;
``ecg_keras.data.physionet.download`` does the work and says what is written.
"""

from __future__ import annotations

from ecg_keras import cli_errors
from ecg_keras.data.physionet import DEFAULT_BASE_URL, SAMPLING_RATES, DownloadError, download


def define_flags():
    from absl import flags

    flags.DEFINE_string("output_dir", None, "Destination folder (PhysioNet's layout).")
    flags.DEFINE_string("version", "1.0.3", "PTB-XL release.")
    flags.DEFINE_enum("sampling_rate", "100", list(SAMPLING_RATES), "Which records (Hz).")
    flags.DEFINE_integer("max_ecg_id", None, "Only records with ecg_id <= N.", lower_bound=1)
    flags.DEFINE_string("base_url", None, f"Release URL; default {DEFAULT_BASE_URL}.")
    flags.DEFINE_integer("num_threads", 8, "Parallel transfers.", lower_bound=1)
    flags.mark_flags_as_required(["output_dir"])


def main(argv):
    from absl import flags

    del argv
    f = flags.FLAGS
    names = ("version", "sampling_rate", "max_ecg_id", "base_url", "num_threads")
    with cli_errors.exit_on(DownloadError, ValueError):
        summary = download(f.output_dir, **{name: f[name].value for name in names})
    print(
        f"{summary['files']} files in {summary['output_dir']}: {summary['downloaded']} "
        f"downloaded ({summary['bytes'] / 1e6:.1f} MB), {summary['skipped']} already verified, "
        f"{summary['seconds']:.1f} s"
    )
    rate = " --sampling_rate=500" if f.sampling_rate == "500" else ""
    out = "tfrecords/ptbxl" + ("500" if rate else "100")
    print(f"Next: python -m ecg_keras.prepare --ptbxl_dir={f.output_dir} --output_dir={out}{rate}")


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
