"""PTB-XL, or a folder of PhysioNet/CinC Challenge-layout records, -> sharded TFRecords grouped
by fold, plus ``manifest.json``.

    python -m ecg_keras.prepare --ptbxl_dir=DIR --output_dir=tfrecords/ptbxl100 \
        [--sampling_rate=100|500] [--records_per_shard=N] [--compression=GZIP|NONE] \
        [--overwrite] [--skip_missing]
    python -m ecg_keras.prepare --input_format=challenge --input_dir=DIR \
        --output_dir=tfrecords/NAME [--num_folds=10] [--fold_seed=0] [--skip_missing] ...

This module only parses the flags;
``ecg_keras.data.preparation.prepare`` does the work and says what is written.
"""

from __future__ import annotations

import os

from ecg_keras import cli_errors
from ecg_keras.data.preparation import PrepareConfig, prepare


def define_flags():
    from absl import flags

    flags.DEFINE_enum(
        "input_format", "ptbxl", ["ptbxl", "challenge"],
        "ptbxl: PTB-XL with its strat_fold; challenge: Challenge-layout records (.hea + .mat, "
        "SNOMED-CT #Dx), labels from their codes, folds drawn by --fold_seed.",
    )  # fmt: skip
    flags.DEFINE_string("ptbxl_dir", None, "PTB-XL folder in PhysioNet's layout.")
    flags.DEFINE_string(
        "input_dir", None, "Input folder (--input_format=challenge: searched for *.hea)."
    )
    flags.DEFINE_integer("num_folds", 10, "Folds to draw for a Challenge folder.", lower_bound=2)
    flags.DEFINE_integer("fold_seed", 0, "Seed of a Challenge folder's stratified folds.")
    flags.DEFINE_string("output_dir", None, "Output folder, e.g. tfrecords/ptbxl100.")
    flags.DEFINE_enum("sampling_rate", "100", ["100", "500"], "Which records to read (Hz).")
    flags.DEFINE_integer("records_per_shard", 256, "Records per TFRecord shard.", lower_bound=1)
    flags.DEFINE_enum("compression", "NONE", ["NONE", "GZIP"], "TFRecord compression.")
    flags.DEFINE_bool("overwrite", False, "Prepare again even if the output is complete.")
    flags.DEFINE_bool(
        "skip_missing", False, "Leave out records missing on disk (Challenge: unreadable ones)."
    )
    flags.DEFINE_integer("num_workers", os.cpu_count() or 1, "Reader processes.", lower_bound=1)
    flags.mark_flags_as_required(["output_dir"])


def main(argv):
    from absl import flags

    del argv
    f = flags.FLAGS
    with cli_errors.exit_on(ValueError):  # PtbxlError is a ValueError
        config = PrepareConfig(
            ptbxl_dir=f.ptbxl_dir,
            output_dir=f.output_dir,
            sampling_rate=int(f.sampling_rate),
            records_per_shard=f.records_per_shard,
            compression=f.compression,
            skip_missing=f.skip_missing,
            overwrite=f.overwrite,
            num_workers=f.num_workers,
            input_format=f.input_format,
            input_dir=f.input_dir,
            num_folds=f.num_folds,
            fold_seed=f.fold_seed,
        )
        prepare(config)


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
