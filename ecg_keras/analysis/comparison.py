"""Train several configs over several seeds and compare them on the same test records.

The library behind ``python -m ecg_keras.compare``.

Every ``--flagfile`` here is a config to compare (absl would otherwise merge them into one).
Run (config A, seed N) is exactly ``python -m ecg_keras.train --flagfile=A.cfg [training
flags given here] --seed=N --workdir=OUTPUT_DIR/A/seedN``: it is that command, run in a
child process, one run at a time. A run whose ``flags.cfg`` is that command's and whose
``metrics.json`` holds test results is reused; a killed one resumes (``train``'s ``backup/``).
Then ``summary.md``, ``summary.csv`` (one row per config), ``pairs.csv`` (one row per pair
of configs), ``runs.csv`` (one row per run), ``comparison.png`` (see ``compare_summary``) and
``report.html`` (``analysis/report.py``).

With ``splits`` (``--splits=standard,cross``) every named split of the ten folds (``SPLITS``)
is one such comparison in ``OUTPUT_DIR/SPLIT/`` (its runs ``OUTPUT_DIR/SPLIT/CONFIG/seedN``),
and ``OUTPUT_DIR`` gets the splits side by side: ``summary.md``, and ``summary.csv``,
``pairs.csv`` and ``runs.csv`` with a ``split`` column (``compare_summary.write_splits``), and
its ``report.html``. A config's choices are then judged on two validation folds, not one.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from ecg_keras import config_flags, filenames
from ecg_keras.config import TrainConfig, config_from_dict, run_identity

# Settings every config must share for a paired comparison on the same test records.
SHARED = ("task", "classes", "test_folds")
# Named splits of PTB-XL's ten folds: (train, validation, test). "standard" is the PTB-XL
# benchmark's; "cross" trains on 1-7, chooses on 8 and tests on 9, so that a design chosen on
# fold 9 is checked where it was not chosen.
SPLITS = {
    "standard": (tuple(range(1, 9)), (9,), (10,)),
    "cross": (tuple(range(1, 8)), (8,), (9,)),
}
FOLD_FLAGS = ("train_folds", "val_folds", "test_folds")


class RunError(RuntimeError):
    """A training run failed or did not leave its results."""


@dataclasses.dataclass(frozen=True)
class CompareOptions:
    """``flagfiles``: the configs; ``overrides``: training flags (``--name=value``) applied
    to every config after its flagfile; ``overwrite``: passed on to ``train``."""

    flagfiles: tuple[str, ...]
    seeds: tuple[int, ...]
    output_dir: str
    overrides: tuple[str, ...] = ()
    overwrite: bool = False
    splits: tuple[str, ...] = ()

    def __post_init__(self):
        unknown = [s for s in self.splits if s not in SPLITS]
        if unknown or len(set(self.splits)) != len(self.splits):
            raise ValueError(
                f"--splits={','.join(self.splits)}: distinct names among {', '.join(SPLITS)}"
            )
        folds = [o for o in self.overrides if o.lstrip("-").partition("=")[0] in FOLD_FLAGS]
        if self.splits and folds:
            raise ValueError(
                f"--splits sets each split's folds; drop {' '.join(folds)} or --splits"
            )
        if not self.output_dir:
            raise ValueError("--output_dir is required (e.g. runs/compare_NAME)")
        if not self.flagfiles:
            raise ValueError("give the configs to compare: --flagfile=A.cfg --flagfile=B.cfg")
        for path in self.flagfiles:
            if not Path(path).is_file():
                raise FileNotFoundError(f"--flagfile={path}: file not found")
        names = [config_name(p) for p in self.flagfiles]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(
                f"--flagfile: two configs are named {twice[0]} (the file name without .cfg "
                "names each config's folder); rename one"
            )
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"--seeds={','.join(map(str, self.seeds))}: distinct integers >= 0")


@dataclasses.dataclass(frozen=True)
class Run:
    """One (config, seed): ``args`` are train's flags for it; ``flags_text`` is the
    ``flags.cfg`` that train writes for them (a finished run with it is reused)."""

    name: str
    flagfile: str
    seed: int
    workdir: str
    args: tuple[str, ...]
    config: TrainConfig
    flags_text: str


def config_name(flagfile: str) -> str:
    """``configs/vgg.cfg`` -> ``vgg``: the config's folder under the output dir."""
    path = Path(flagfile)
    return path.stem if path.suffix == ".cfg" else path.name


def split_flagfiles(argv: list[str]) -> tuple[list[str], list[str]]:
    """Takes every ``--flagfile=PATH`` (or ``--flagfile PATH``) out of ``argv``.

    absl would read them all into one set of flag values; here each is a config.

    Returns:
      (the flagfile paths in order, the remaining argv for absl).
    """
    flagfiles, rest, k = [], [argv[0]], 1
    while k < len(argv):
        arg = argv[k]
        if arg == "--":
            rest += argv[k:]
            break
        name, eq, value = arg.lstrip("-").partition("=")
        if arg.startswith("-") and name == "flagfile":
            if not eq:
                k += 1
                value = argv[k] if k < len(argv) else ""
            flagfiles.append(value)
        else:
            rest.append(arg)
        k += 1
    return flagfiles, rest


def resolve(args: list[str]) -> TrainConfig:
    """The TrainConfig of ``python -m ecg_keras.train ARGS``, parsed by train's own flags.

    Train's flags must be defined in ``absl.flags.FLAGS`` (``define_flags``); their values
    are restored afterwards, so the caller's own parsed flags survive.
    """
    from absl import flags
    from absl.testing import flagsaver

    if "workdir" not in flags.FLAGS or "train_folds" not in flags.FLAGS:
        raise RuntimeError("call compare.define_flags() (train's flags) before resolve()")
    with flagsaver.flagsaver():
        flags.FLAGS.unparse_flags()
        try:
            flags.FLAGS(["train", *args])
            return config_flags.config_from_flags()
        except (flags.Error, ValueError) as e:
            raise ValueError(f"{args[0]}: {e}") from None
        finally:
            flags.FLAGS.mark_as_parsed()


def plan(options: CompareOptions) -> list[Run]:
    """Every (config, seed) in order, resolved and checked before anything trains."""
    runs = []
    for flagfile in options.flagfiles:
        name = config_name(flagfile)
        for seed in options.seeds:
            workdir = str(Path(options.output_dir) / name / f"seed{seed}")
            args = (f"--flagfile={flagfile}", *options.overrides, f"--seed={seed}")
            args += (f"--workdir={workdir}",)
            config = resolve(list(args))
            text = config_flags.flags_text(config, workdir)
            runs.append(Run(name, flagfile, seed, workdir, args, config, text))
    first = runs[0]
    for run in runs:
        for field in SHARED:
            mine, theirs = _shared(run.config, field), _shared(first.config, field)
            if mine != theirs:
                raise ValueError(
                    f"--flagfile={run.flagfile} and --flagfile={first.flagfile} differ in "
                    f"--{field} ({mine} vs {theirs}): a paired comparison needs the same test "
                    "records and classes; give it here, for every config"
                )
        if _holds_another_run(run) and not options.overwrite:
            # train would refuse it after the runs before it had trained
            raise ValueError(
                f"{run.workdir} holds a different run (its run.json is not what "
                f"--flagfile={run.flagfile} gives now): pass --overwrite to retrain it "
                "or choose another --output_dir"
            )
    return runs


def _shared(config: TrainConfig, field: str):
    value = getattr(config, field)
    return tuple(sorted(value)) if field.endswith("_folds") else value


def _saved_identity(workdir) -> dict | None:
    """``config.run_identity`` of the run a workdir holds (from its run.json), or None."""
    import json

    path = Path(workdir) / filenames.RUN_JSON
    if not path.is_file():
        return None
    return run_identity(config_from_dict(json.loads(path.read_text())["config"]))


def _holds_another_run(run: Run) -> bool:
    """The workdir holds a run whose resolved config differs (or, before training began, a
    flagfile that differs)."""
    saved = _saved_identity(run.workdir)
    if saved is not None:
        return saved != run_identity(run.config)
    flags_file = Path(run.workdir) / filenames.FLAGS
    return flags_file.is_file() and flags_file.read_text() != run.flags_text


def is_finished(run: Run) -> bool:
    """True when the workdir holds this run (the same resolved config: ``run_identity``, so a
    flag added after it was trained does not make it stale) with test results."""
    import json

    metrics_file = Path(run.workdir) / filenames.METRICS
    if not metrics_file.is_file() or _saved_identity(run.workdir) != run_identity(run.config):
        return False
    return "test" in json.loads(metrics_file.read_text())


def train_runs(runs: list[Run], overwrite: bool = False) -> int:
    """Trains the unfinished runs one at a time, each in its own process.

    A child process per run, not ``train_and_evaluate`` in this one: a run is then by
    construction the documented ``train`` command, and no process-wide state (Keras'
    mixed-precision policy, TF's seeds and graphs, memory) carries over into the next run.

    Returns:
      how many runs were trained (the others were reused).

    Raises:
      RunError: a run's ``train`` exited non-zero or left no test results.
    """
    trained = 0
    for k, run in enumerate(runs, 1):
        where = f"[{k}/{len(runs)}] {run.name} seed {run.seed} ({run.workdir})"
        if is_finished(run):
            print(f"{where}: finished before, reused", flush=True)
            continue
        command = [sys.executable, "-m", "ecg_keras.train", *run.args]
        command += ["--overwrite"] if overwrite else []
        print(f"{where}: training: python -m ecg_keras.train {' '.join(run.args)}", flush=True)
        code = subprocess.run(command).returncode
        if code != 0 or not is_finished(run):
            raise RunError(
                f"{run.workdir}: training failed (exit code {code}); its output is above. "
                "Run the same compare command again to resume it."
            )
        trained += 1
    return trained


def split_options(options: CompareOptions) -> dict[str, CompareOptions]:
    """split -> the options of its own comparison in ``OUTPUT_DIR/SPLIT`` (its fold flags)."""
    out = {}
    for name in options.splits:
        folds = tuple(
            f"--{flag}={','.join(map(str, value))}"
            for flag, value in zip(FOLD_FLAGS, SPLITS[name], strict=True)
        )
        out[name] = dataclasses.replace(
            options,
            output_dir=str(Path(options.output_dir) / name),
            overrides=options.overrides + folds,
            splits=(),
        )
    return out


def compare(options: CompareOptions) -> dict:
    """Trains (or reuses) every run, then writes the summary files to ``output_dir``; with
    ``splits``, one comparison per split, then the splits side by side.

    Returns:
      {"trained": runs trained now, "runs": the Runs, "summary": compare_summary's tables},
      with ``splits`` also "splits": split -> that split's result.
    """
    from ecg_keras.analysis import compare_summary, report

    if options.splits:
        per_split = split_options(options)
        for sub in per_split.values():  # every split's runs resolved before any trains
            plan(sub)
        results = {name: compare(sub) for name, sub in per_split.items()}
        summary = compare_summary.write_splits(
            {name: r["summary"] for name, r in results.items()},
            options,
            {name: SPLITS[name] for name in options.splits},
        )
        report.write(options.output_dir)
        return {
            "trained": sum(r["trained"] for r in results.values()),
            "runs": [run for r in results.values() for run in r["runs"]],
            "summary": summary,
            "splits": results,
        }
    runs = plan(options)
    Path(options.output_dir).mkdir(parents=True, exist_ok=True)
    trained = train_runs(runs, options.overwrite)
    summary = compare_summary.summarize(runs)
    compare_summary.write(summary, runs, options)
    report.write(options.output_dir)
    return {"trained": trained, "runs": runs, "summary": summary}
