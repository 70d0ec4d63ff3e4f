"""Train several configs over several seeds and compare them on the same test records.

    python -m ecg_keras.compare --flagfile=A.cfg --flagfile=B.cfg [...] --seeds=0,1,2 \
        --output_dir=runs/compare_NAME [--train_folds=... --val_folds=... --test_folds=...] \
        [--splits=standard,cross] [--ptbxl_dir=DIR] [any training flag, applied to every
        config] [--overwrite]

This module only parses the flags;
``ecg_keras.analysis.comparison.compare`` does the work and says what is written.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ecg_keras import cli_errors, config_flags
from ecg_keras.analysis.comparison import CompareOptions, RunError, compare, split_flagfiles


def define_flags():
    """Train's flags (what every config may override) plus ``--seeds`` and ``--output_dir``."""
    from absl import flags

    from ecg_keras import train

    train.define_flags()
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds: every config trains once per seed.")
    # Not marked required: absl's check would also run when resolve() parses a config.
    flags.DEFINE_string("output_dir", None, "OUTPUT_DIR/<config>/seed<N>/ and the summary.")
    flags.DEFINE_list(
        "splits", [], "Named splits to compare on, side by side (standard: folds 1-8/9/10; "
        "cross: 1-7/8/9); each in OUTPUT_DIR/<split>/. Empty: the folds of the flags.",
    )  # fmt: skip


def options_from_flags(flagfiles: list[str]) -> CompareOptions:
    """CompareOptions from the parsed flags and the configs' flagfiles."""
    from absl import flags

    f = flags.FLAGS
    for name, why in (("seed", "use --seeds"), ("workdir", "each run's is OUTPUT_DIR/NAME/seedN")):
        if f[name].present:
            raise ValueError(f"--{name} is set by compare: {why}")
    try:
        seeds = tuple(int(s) for s in f.seeds)
    except ValueError:
        raise ValueError(f"--seeds={','.join(f.seeds)}: seeds must be integers") from None
    overrides = tuple(f[name].serialize() for name in config_flags.explicit_config_flags())
    splits = tuple(f.splits)
    return CompareOptions(tuple(flagfiles), seeds, f.output_dir, overrides, f.overwrite, splits)


def main(argv, flagfiles=()):
    del argv
    with cli_errors.exit_on(ValueError, FileNotFoundError, RunError):
        options = options_from_flags(list(flagfiles))
        result = compare(options)
    reused = len(result["runs"]) - result["trained"]
    print(f"{result['trained']} runs trained, {reused} reused")
    print(f"summary: {Path(options.output_dir) / 'summary.md'}")


if __name__ == "__main__":
    import functools

    from absl import app

    define_flags()
    configs, rest = split_flagfiles(sys.argv)
    app.run(functools.partial(main, flagfiles=configs), argv=rest)
