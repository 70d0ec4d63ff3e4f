"""Average several trained runs' probabilities and score the average like one run.

    python -m ecg_keras.ensemble --workdirs=runs/a,runs/b[,...] --output_dir=runs/ens_NAME

Each member predicts the validation and test folds as ``evaluate`` does for it (its own
model, features, normalization statistics and window aggregation); the ensemble's
probability for a record and class is the mean of the members' window-aggregated
probabilities, matched by ecg_id. Members must share the task, the classes and the
train/validation/test folds. The output dir receives what a run's evaluation writes:
``metrics.json`` (``evaluate.report``: F1 thresholds from validation, test macro AUC with its
bootstrap interval, F1, Fmax, the calibration of the averaged probabilities fitted on
validation with ECE and Brier score before and after; plus ``members``),
``predictions_test.csv``, ``roc_test.png``, ``reliability.png``, ``ensemble.json`` (each
member's workdir, model, seed and own validation/test macro AUC) and ``report.html``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ecg_keras import atomic, cli_errors

ENSEMBLE = "ensemble.json"
SHARED = ("task", "train_folds", "val_folds", "test_folds")


@dataclasses.dataclass(frozen=True)
class EnsembleConfig:
    """``workdirs``: the members (training workdirs); ``output_dir``: where results go."""

    workdirs: tuple[str, ...]
    output_dir: str

    def __post_init__(self):
        if len(self.workdirs) < 2 or len(set(self.workdirs)) != len(self.workdirs):
            raise ValueError(f"--workdirs={','.join(self.workdirs)}: give two or more, distinct")
        out = Path(self.output_dir)
        if out.resolve() in {Path(w).resolve() for w in self.workdirs}:
            raise ValueError(f"--output_dir={out} is one of the members")
        from ecg_keras.training import recipe

        for name in (recipe.MODEL, recipe.FLAGS_FILE):
            if (out / name).exists():
                raise ValueError(
                    f"--output_dir={out} holds a training run ({name}); choose another folder"
                )


def load_members(workdirs) -> list[dict]:
    """Each member's ``run.Run``, checked against the first member.

    Returns:
      [{"workdir", "run"}] in the order given.

    Raises:
      FileNotFoundError / ValueError naming the workdir that is missing or differs.
    """
    from ecg_keras.training import recipe
    from ecg_keras.training.run import Run

    members = []
    for workdir in workdirs:
        run = Run.load(workdir)
        if not (Path(workdir) / recipe.MODEL).is_file():
            raise FileNotFoundError(f"{Path(workdir) / recipe.MODEL} not found: no trained model")
        members.append({"workdir": workdir, "run": run})
    first = members[0]
    for member in members:
        for field in SHARED:
            mine, theirs = getattr(member["run"].config, field), getattr(first["run"].config, field)
            if mine != theirs:
                raise ValueError(
                    f"{member['workdir']}: --{field}={mine}, but {first['workdir']} has "
                    f"--{field}={theirs}; ensemble members must share task, classes and folds"
                )
        if member["run"].classes != first["run"].classes:
            raise ValueError(
                f"{member['workdir']}: classes {list(member['run'].classes)}, but "
                f"{first['workdir']} has {list(first['run'].classes)}; ensemble members must "
                "share task, classes and folds"
            )
    return members


def member_predictions(member: dict) -> dict[str, tuple[np.ndarray, ...]]:
    """A member's window-aggregated predictions, as ``evaluate.evaluate_run`` makes them.

    Returns:
      {"val": ..., "test": ...}, each (ecg_ids int64 [n], y_true float32 [n, classes],
      y_prob float32 [n, classes]).
    """
    import keras

    from ecg_keras import evaluate
    from ecg_keras.training import recipe

    run = member["run"]
    model = keras.models.load_model(Path(member["workdir"]) / recipe.MODEL, compile=False)
    out = {}
    for split, folds in (("val", run.config.val_folds), ("test", run.config.test_folds)):
        out[split] = evaluate.predict(model, run.split(folds, False), run.config.aggregate)
    return out


def combine(members: list[dict], predictions: list[dict], split: str):
    """The members' mean probabilities on ``split`` and the labels, rows matched by ecg_id.

    Returns:
      ecg_ids int64 [n] ascending, y_true float32 [n, classes], y_prob float32 [n, classes].
    """
    from ecg_keras.analysis import paired

    named = {
        m["workdir"]: (p[split][0], p[split][2]) for m, p in zip(members, predictions, strict=True)
    }
    ids, probs = paired.average_by_id(named)
    labels = None
    for member, prediction in zip(members, predictions, strict=True):
        member_ids, y_true, _ = prediction[split]
        y_true = y_true[paired.rows_of(member_ids, ids, member["workdir"])]
        if labels is not None and not np.array_equal(y_true, labels):
            raise ValueError(
                f"{member['workdir']}: its {split} labels differ from {members[0]['workdir']}'s "
                "for the same ecg_ids (prepared from different PTB-XL versions?)"
            )
        labels = y_true
    return ids, labels, probs.astype(np.float32)


def ensemble(config: EnsembleConfig) -> dict:
    """Predicts with every member, averages, writes the run files; returns metrics.json."""
    from ecg_keras import evaluate
    from ecg_keras.training import metrics

    members = load_members(config.workdirs)
    predictions = [member_predictions(m) for m in members]
    _, *val = combine(members, predictions, "val")
    ids, *test = combine(members, predictions, "test")
    first, classes = members[0]["run"].config, list(members[0]["run"].classes)
    result = evaluate.report(val, test, classes, first.task)
    result["test_folds"] = list(first.test_folds)
    result["members"] = [m["workdir"] for m in members]
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    own = [
        {
            "workdir": m["workdir"],
            "model": m["run"].config.model,
            "seed": m["run"].config.seed,
            "aggregate": m["run"].config.aggregate,
            **{f"{split}_macro_auc": metrics.macro_auc(*p[split][1:]) for split in ("val", "test")},
        }
        for m, p in zip(members, predictions, strict=True)
    ]
    atomic.write_json(
        out / ENSEMBLE,
        {
            "members": own,
            "val_macro_auc": result["val"]["macro_auc"],
            "test_macro_auc": result["test"]["macro_auc"],
        },
    )
    title = (
        f"ensemble of {len(members)}, test folds {list(first.test_folds)}: "
        f"macro AUC {result['test']['macro_auc']:.3f}"
    )
    evaluate.write_outputs(out, result, val, test, ids, title)
    atomic.write_json(out / evaluate.METRICS, result)
    from ecg_keras.analysis import report

    report.write(out)
    return result


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
