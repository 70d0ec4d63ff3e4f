"""KerasTuner search over spectrogram VGG and ResNet configs, scored on validation macro AUC.

The library behind ``python -m ecg_keras.tune``.

Every training flag is accepted and sets what the search does not (data, task, folds, batch
size, seed, augmentation...). Trials train on the training folds and are scored on the
validation folds exactly as ``train`` scores its epochs (see ``hypermodel``). Under
``tuning/NAME/``: the KerasTuner project, ``trials.csv`` (one row per trial, rewritten as each
ends) and ``best_flags.cfg`` (``python -m ecg_keras.train --flagfile=tuning/NAME/best_flags.cfg``
retrains the best trial). Running the same command again continues an interrupted search;
finished trials are kept. With ``KERASTUNER_TUNER_ID=chief`` / ``tuner0``, ``tuner1``... and
``KERASTUNER_ORACLE_IP`` / ``KERASTUNER_ORACLE_PORT``, the same command is the chief (it
holds the oracle and writes the results) or a worker (it runs trials).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from ecg_keras import atomic, config_flags
from ecg_keras.config import TrainConfig
from ecg_keras.filenames import BEST_FLAGS, TRIALS_CSV
from ecg_keras.training import hypermodel
from ecg_keras.training.hypermodel import OBJECTIVE, SearchSpace

TUNERS = ("hyperband", "bayesian", "random")
INT_METRICS = ("epochs", "best_epoch", "worker")


@dataclasses.dataclass(frozen=True)
class TuneOptions:
    tuning_dir: str = "tuning"
    project: str = "superdiagnostic"
    tuner: str = "bayesian"
    max_trials: int = 10  # bayesian and random; Hyperband sizes its own brackets
    max_epochs: int | None = None  # epochs per trial (Hyperband: the most); None: --epochs
    executions_per_trial: int = 1
    overwrite: bool = False
    workdir: str | None = None  # of the retraining run in best_flags.cfg; runs/tune_PROJECT

    def __post_init__(self):
        if self.tuner not in TUNERS:
            raise ValueError(f"unknown --tuner={self.tuner}; known: {', '.join(TUNERS)}")
        for name in ("max_trials", "executions_per_trial"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name}={getattr(self, name)}: must be >= 1")
        if self.max_epochs is not None and self.max_epochs < 1:
            raise ValueError(f"--max_epochs={self.max_epochs}: must be >= 1")


def is_worker() -> bool:
    """A distributed worker: it runs trials, the chief keeps the oracle and the results."""
    return "KERASTUNER_ORACLE_IP" in os.environ and os.environ.get("KERASTUNER_TUNER_ID") != (
        "chief"
    )


def _atomic_tuner_json() -> None:
    """Makes KerasTuner write its state (oracle.json, trial.json) atomically.

    KerasTuner 1.4 writes them in place through its one ``utils.save_json``: a search killed
    mid-write left an empty trial.json, and the resumed search stopped with "Expecting value:
    line 1 column 1 (char 0)". Its callers look the function up on the module at each call,
    so replacing it there reroutes every write through a temporary file and a rename.
    """
    import json

    from keras_tuner.src import utils

    def save_json(path, obj):
        atomic.write_json(path, obj)
        return json.dumps(obj)

    utils.save_json = save_json


def make_tuner(model: hypermodel.EcgHyperModel, options: TuneOptions, epochs: int, seed: int):
    import keras_tuner as kt

    _atomic_tuner_json()
    common = {
        "objective": kt.Objective(OBJECTIVE, direction="max"),
        "executions_per_trial": options.executions_per_trial,
        "directory": options.tuning_dir,
        "project_name": options.project,
        "overwrite": options.overwrite,
        "seed": seed,
    }
    if options.tuner == "hyperband":
        return kt.Hyperband(model, max_epochs=epochs, factor=3, **common)
    tuner = kt.BayesianOptimization if options.tuner == "bayesian" else kt.RandomSearch
    return tuner(model, max_trials=options.max_trials, **common)


def trials_table(oracle) -> list[dict]:
    """One dict per trial: trial_id, status, every hyperparameter, objective, epochs..."""
    names = [hp.name for hp in oracle.get_space().space]
    rows = []
    for trial_id, trial in sorted(oracle.trials.items()):
        values = trial.hyperparameters.values
        row = {"trial_id": trial_id, "status": trial.status}
        row.update({name: values.get(name, "") for name in names})
        for metric in (OBJECTIVE, "epochs", "best_epoch", "seconds", "worker"):
            exists = trial.metrics.exists(metric)
            value = trial.metrics.get_last_value(metric) if exists else ""
            row[metric] = int(value) if exists and metric in INT_METRICS else value
        rows.append(row)
    return rows


def requeue_interrupted(oracle) -> list[str]:
    """Queues for a rerun the trials a killed search left RUNNING outside the oracle's state.

    KerasTuner 1.4's ``Oracle.create_trial`` writes the new trial's ``trial.json`` (status
    RUNNING) before ``oracle.json``, which lists it as ongoing. A search killed between the two
    writes reloads that trial as RUNNING but neither ongoing nor queued for retry (``reload``
    retries only the ongoing ones): it is never run, yet it counts toward ``max_trials``, so
    the resumed search stopped one trial short with a RUNNING row in ``trials.csv``. Call it on
    the chief's freshly reloaded oracle, before ``search``: every RUNNING trial there belongs to
    a process that is gone.

    Returns:
      the trial ids queued.
    """
    from keras_tuner.src.engine.trial import TrialStatus

    # _retry_queue is private: the queue ``reload`` fills and ``create_trial`` pops first.
    waiting = set(oracle._retry_queue) | {t.trial_id for t in oracle.ongoing_trials.values()}
    lost = [
        trial_id
        for trial_id, trial in sorted(oracle.trials.items())
        if trial.status == TrialStatus.RUNNING and trial_id not in waiting
    ]
    oracle._retry_queue.extend(lost)
    return lost


def write_trials(oracle, path: Path) -> list[dict]:
    """``trials.csv`` from the oracle's trials, written atomically."""
    import pandas as pd

    rows = trials_table(oracle)
    with atomic.replacing(path) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)
    return rows


def top_table(rows: list[dict], n: int = 5) -> str:
    """The n best completed trials as a markdown table (what the command prints)."""
    done = [r for r in rows if r[OBJECTIVE] != ""]
    done.sort(key=lambda r: -r[OBJECTIVE])
    lines = [
        "| rank | trial | family | stages x depth (base) | kernel | head | window/hop s "
        "| lr | wd | dropout | val macro AUC | epochs | s |",
        "| --- " * 13 + "|",
    ]
    for rank, r in enumerate(done[:n], start=1):
        f = r["family"]
        family = f"{f}, {r['input']}" if r.get("input") else f  # with --input_choices
        lines.append(
            f"| {rank} | {r['trial_id']} | {family} | {r[f + '_num_stages']} x {r[f + '_depth']} "
            f"({r[f + '_base_filters']}) | {r[f + '_kernel_size']} | {r['head']} | "
            f"{r['window_seconds']}/{r['hop_seconds']} | {r['learning_rate']:.2g} | "
            f"{r['weight_decay']:.2g} | {r['dropout']:.1f} | {r[OBJECTIVE]:.4f} | "
            f"{int(r['epochs'])} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def tune(base: TrainConfig, space: SearchSpace, options: TuneOptions) -> list[dict]:
    """Runs (or continues) the search; the chief or a single process writes the results.

    Returns:
      the ``trials.csv`` rows ([] on a distributed worker).

    Raises:
      ValueError / FileNotFoundError before any trial for bad data, space or options.
    """
    from ecg_keras.training.run import Run

    run = Run.prepare(base)  # a missing data dir fails here, before any trial
    base = run.config
    space.check(base.features)
    epochs = options.max_epochs or base.epochs
    model = hypermodel.EcgHyperModel(run, space)
    tuner = make_tuner(model, options, epochs, base.seed)
    project = Path(options.tuning_dir) / options.project
    if not is_worker():  # the oracle lives here: keep trials.csv current as trials end
        requeue_interrupted(tuner.oracle)
        end_trial = tuner.oracle.end_trial

        def end_and_record(trial):
            end_trial(trial)
            write_trials(tuner.oracle, project / TRIALS_CSV)

        tuner.oracle.end_trial = end_and_record
    tuner.search(epochs=epochs, verbose=2)
    if is_worker():
        return []
    rows = write_trials(tuner.oracle, project / TRIALS_CSV)
    best = tuner.oracle.get_best_trials(1)
    if best:
        trial = best[0]
        config = hypermodel.trial_config(
            base, space, trial.hyperparameters, int(trial.metrics.get_last_value("epochs"))
        )
        workdir = options.workdir or f"runs/tune_{options.project}"
        header = (
            f"# Best trial {trial.trial_id} of {project} (validation macro AUC "
            f"{trial.score:.4f}): {retrain_command(project)}"
        )
        text = config_flags.flags_text(config, workdir, header)
        atomic.write_text(project / BEST_FLAGS, text)
    return rows


SPACE_FLAGS = [f.name for f in dataclasses.fields(SearchSpace)]


def retrain_command(project: Path) -> str:
    """The train command for the best trial, with this process's oneDNN setting: oneDNN and
    Eigen kernels round differently, and the same setting reproduces the trial's score."""
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    env = f"TF_ENABLE_ONEDNN_OPTS={onednn} " if onednn is not None else ""
    return f"{env}python -m ecg_keras.train --flagfile={project / BEST_FLAGS}"
