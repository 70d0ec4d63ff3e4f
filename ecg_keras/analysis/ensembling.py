"""Average several trained runs' probabilities and score the average like one run.

The library behind ``python -m ecg_keras.ensemble``.

Each member predicts the validation and test folds as ``evaluate`` does for it (its own
model, features, normalization statistics and window aggregation); the ensemble's
probability for a record and class is the mean of the members' window-aggregated
probabilities, matched by ecg_id. Members must share the task, the classes and the
train/validation/test folds. The output dir receives what a run's evaluation writes:
``metrics.json`` (``analysis.evaluation.report``: F1 thresholds from validation, test macro
AUC with its bootstrap interval, F1, Fmax, the calibration of the averaged probabilities fitted on
validation with ECE and Brier score before and after; plus ``members``),
``predictions_test.csv``, ``roc_test.png``, ``reliability.png``, ``ensemble.json`` (each
member's workdir, model, seed and own validation/test macro AUC) and ``report.html``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ecg_keras import atomic, filenames
from ecg_keras.inference.by_id import average_members


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
        for name in (filenames.MODEL, filenames.FLAGS):
            if (out / name).exists():
                raise ValueError(
                    f"--output_dir={out} holds a training run ({name}); choose another folder"
                )


def ensemble(config: EnsembleConfig) -> dict:
    """Predicts with every member, averages, writes the run files; returns metrics.json."""
    from ecg_keras.analysis import evaluation, report
    from ecg_keras.inference.predictor import Predictor, load_members
    from ecg_keras.training import metrics

    members = load_members(config.workdirs)  # checked before the networks load
    predictor = Predictor.from_members(members)
    first = predictor.config
    names = list(config.workdirs)
    predictions = {
        split: predictor.member_predictions(folds)
        for split, folds in (("val", first.val_folds), ("test", first.test_folds))
    }
    _, *val = average_members(names, predictions["val"])
    ids, *test = average_members(names, predictions["test"])
    result = evaluation.report(val, test, predictor.classes, first.task)
    result["test_folds"] = list(first.test_folds)
    result["members"] = names
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    own = [
        {
            "workdir": name,
            "model": m.config.model,
            "seed": m.config.seed,
            "aggregate": m.config.aggregate,
            **{
                f"{split}_macro_auc": metrics.macro_auc(*predictions[split][k][1:])
                for split in ("val", "test")
            },
        }
        for k, (name, m) in enumerate(zip(names, members, strict=True))
    ]
    atomic.write_json(
        out / filenames.ENSEMBLE,
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
    evaluation.write_outputs(out, result, val, test, ids, title)
    atomic.write_json(out / filenames.METRICS, result)
    report.write(out)
    return result
