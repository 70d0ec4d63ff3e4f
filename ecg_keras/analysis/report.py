"""``report.html``: one self-contained page per run, ensemble or comparison (images embedded,
no script, no link), written atomically beside the files it summarizes.

    path = write("runs/NAME")            # a training workdir (run.json)
    path = write("runs/ens_NAME")        # an ensemble's output dir (ensemble.json)
    path = write("runs/compare_NAME")    # a comparison's output dir (summary.csv)

A run's page: the config (``flags.cfg`` and the resolved values), the data and split counts,
the metrics with the test bootstrap interval, per-class ROC and precision-recall curves, the
reliability diagram, the confusion counts at the F1 thresholds, the training curves, and
explanations of test records chosen by ``report_explain.RULE``. An ensemble's page has the
same, with its members instead of a config and neither training curves nor explanations; a
comparison's is ``summary.md`` with its figure, the per-run table and each config's flags.
Sections have fixed ids (``SECTIONS``). Whatever a folder lacks (a run evaluated before
calibration existed has no reliability diagram) is said in its section, not fatal.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from ecg_keras import atomic, filenames
from ecg_keras.analysis import html_page, report_data, report_explain

REPORT = filenames.REPORT
SECTIONS = ("config", "data", "metrics", "curves", "reliability", "confusion", "training",
            "explanations")  # fmt: skip
# How many classes get explanations when the caller does not say (the rule's "n"); the
# environment variable lets a test session or a batch of runs turn them off (0).
EXPLAIN_ENV = "ECG_KERAS_REPORT_EXPLAIN_CLASSES"
EXPLAIN_CLASSES = 2
H = html_page


def explain_classes_default() -> int:
    """``$ECG_KERAS_REPORT_EXPLAIN_CLASSES`` if set, else ``EXPLAIN_CLASSES``."""
    value = os.environ.get(EXPLAIN_ENV, "")
    try:
        return int(value) if value.strip() else EXPLAIN_CLASSES
    except ValueError:
        raise ValueError(f"${EXPLAIN_ENV}={value!r}: must be an integer") from None


def write(folder, explain_classes: int | None = None, data_dir: str | None = None) -> Path:
    """Writes ``FOLDER/report.html`` for a run, an ensemble or a comparison; returns its path.

    Args:
      explain_classes: classes with explanations (runs only; default
        ``explain_classes_default()``; 0: none).
      data_dir: the prepared data to read labels from (default: the run's).

    Raises:
      FileNotFoundError: the folder is none of the three, or lacks its metrics.
    """
    from ecg_keras.analysis import report_compare

    folder = Path(folder)
    if (folder / report_compare.SUMMARY_CSV).is_file():
        title, body = report_compare.body(folder)
    elif (folder / filenames.ENSEMBLE).is_file():
        title, body = _ensemble_body(folder)
    elif (folder / filenames.RUN_JSON).is_file():
        n = explain_classes_default() if explain_classes is None else explain_classes
        title, body = _run_body(folder, n, data_dir)
    else:
        raise FileNotFoundError(
            f"{folder}: neither a training workdir (run.json), an ensemble (ensemble.json) nor "
            "a comparison (summary.csv)"
        )
    path = folder / REPORT
    atomic.write_text(path, H.page(title, body))
    return path


def _metrics(folder: Path) -> dict:
    path = folder / filenames.METRICS
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: evaluate the run first")
    return json.loads(path.read_text())


@dataclasses.dataclass
class Scored:
    """What the label-dependent sections need: the data's labelled records (None when the
    data cannot be read, ``note`` says why), the test predictions and their labels."""

    labelled: object
    ids: np.ndarray
    probs: np.ndarray
    y: np.ndarray | None
    note: str = ""


def _scored(folder: Path, config, metrics: dict) -> Scored:
    from ecg_keras.analysis import paired

    ids, probs, _ = paired.read_predictions(folder / filenames.PREDICTIONS_TEST)
    try:
        labelled = report_data.labelled_records(config, metrics.get("test_folds", ()))
        return Scored(labelled, ids, probs, report_data.truth_for(ids, labelled))
    except (FileNotFoundError, ValueError) as e:  # moved or missing data: say so, go on
        return Scored(None, ids, probs, None, f"labels unavailable ({e})")


def _common_sections(folder: Path, config, metrics: dict, scored: Scored) -> str:
    """data, metrics, curves, reliability and confusion: what runs and ensembles share."""
    from ecg_keras.data import manifest as manifest_lib

    classes = metrics["classes"]
    out = ""
    if scored.labelled is not None:
        manifest = manifest_lib.load(config.data_dir)
        data = H.paragraph(
            f"Prepared data {config.data_dir}: {manifest['num_records']} records at "
            f"{manifest['sampling_rate']} Hz; task {config.task}. Records per split (the data's "
            "records in its folds, those labelled for the task, positives per class):"
        ) + H.table(*report_data.split_rows(config, manifest, scored.labelled, classes))
    else:
        data = H.paragraph(scored.note, note=True)
    out += H.section("data", "Data and split counts", data)
    metrics_html = H.table(*report_data.metric_rows(metrics), caption="per split")
    metrics_html += H.table(*report_data.per_class_rows(metrics), caption="per class")
    own = "the model's own probabilities"
    metrics_html += H.paragraph(
        f"AUC and Fmax on {own} (the PTB-XL benchmark's protocol); 90% CI: percentile "
        "bootstrap of the test macro AUC, 100 resamples; F1 at thresholds chosen on validation, "
        f"on {metrics.get('thresholds_on', own)}."
    )
    out += H.section("metrics", "Metrics", metrics_html)
    if scored.y is not None:
        png = report_data.roc_pr_png(
            scored.y, scored.probs, classes, f"{len(scored.y)} test records"
        )
        curves = H.image(png, "ROC and precision-recall curves per class")
    else:
        curves = H.paragraph(scored.note, note=True)
    out += H.section("curves", "ROC and precision-recall curves (test)", curves)
    out += H.section("reliability", "Reliability diagram", _reliability(folder, metrics))
    out += H.section("confusion", "Confusion counts at the thresholds (test)",
                     _confusion(metrics, scored))  # fmt: skip
    external = _external(folder)
    if external:
        out += H.section("external", "Other databases (evaluate --external_dir)", external)
    return out


def _external(folder: Path) -> str:
    """A table of every ``external/NAME/metrics.json`` (``analysis.external``), or ""."""
    found = sorted((folder / filenames.EXTERNAL).glob("*/metrics.json"))
    if not found:
        return ""
    rows, classes = [], []
    for path in found:
        result = json.loads(path.read_text())
        classes = classes or result["classes"]
        aucs = [H.number(result["per_class_auc"].get(c)) if result["per_class_auc"].get(c)
                is not None else "n/a" for c in classes]  # fmt: skip
        ci = result.get("macro_auc_ci")
        rows.append([
            result["name"], result["num_records"], result["num_refused"], result["num_scored"],
            "n/a" if result["macro_auc"] is None else H.number(result["macro_auc"]),
            f"{H.number(ci[0])}-{H.number(ci[1])}" if ci else "n/a", *aucs,
        ])  # fmt: skip
    header = ["database", "records", "refused", "scored", "macro AUC", "90% CI", *classes]
    note = H.paragraph(
        "Superclass labels from each record's SNOMED-CT codes (data/snomed.py); records with "
        "only rhythm, ectopy or form codes are predicted but not scored. Whole records, "
        "calibrated probabilities; per-record rows in external/NAME/predictions.csv."
    )
    return H.table(header, rows) + note


def _reliability(folder: Path, metrics: dict) -> str:
    png = folder / filenames.RELIABILITY
    if png.is_file() and metrics.get("calibration"):
        return H.image(png.read_bytes(), "reliability diagram",
                       "Validation and test, before and after calibration (Platt scaling fitted "
                       "on validation), all classes' probabilities in 15 bins.")  # fmt: skip
    return H.paragraph(
        "No calibration in metrics.json (evaluated before calibration existed): run "
        f"python -m ecg_keras.evaluate --workdir={folder} to add it and the diagram.",
        note=True,
    )


def _confusion(metrics: dict, scored: Scored) -> str:
    if scored.y is None:
        return H.paragraph(scored.note, note=True)
    q, on = report_data.scored_probabilities(metrics, scored.probs)
    header, rows = report_data.confusion_rows(
        scored.y, q, metrics["thresholds"], metrics["classes"]
    )
    text = (f"A record counts as positive for a class when its probability reaches the "
            f"class's threshold (chosen on validation to maximize F1), on {on}.")  # fmt: skip
    return H.paragraph(text) + H.table(header, rows)


def _run_body(workdir: Path, explain_classes: int, data_dir: str | None) -> tuple[str, str]:
    from ecg_keras.training.run import config_from_json

    metrics = _metrics(workdir)
    config = config_from_json(json.loads((workdir / filenames.RUN_JSON).read_text())["config"])
    if data_dir:
        config = dataclasses.replace(config, data_dir=data_dir)
    scored = _scored(workdir, config, metrics)
    flags_file = workdir / filenames.FLAGS
    body = H.paragraph(
        f"Run {workdir}: {config.model} on {config.task}, seed {config.seed}; test macro AUC "
        f"{H.number(metrics['test']['macro_auc'])}."
    )
    cfg = H.preformatted(flags_file.read_text()) if flags_file.is_file() else ""
    rows = [[k, v] for k, v in _flat(dataclasses.asdict(config))]
    cfg += H.details("resolved config (run.json)", H.table(["field", "value"], rows))
    body += H.section("config", "Config", cfg)
    body += _common_sections(workdir, config, metrics, scored)
    body += H.section("training", "Training curves", _training(workdir, metrics))
    body += H.section("explanations", "Explanations",
                      _explanations(workdir, config, metrics, scored, explain_classes))  # fmt: skip
    return f"report: {workdir}", body


def _flat(d: dict, prefix: str = ""):
    for key, value in d.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{key}.")
        else:
            yield (
                f"{prefix}{key}",
                ",".join(map(str, value)) if isinstance(value, list | tuple) else value,
            )


def _training(workdir: Path, metrics: dict) -> str:
    facts = ", ".join(
        f"{key.replace('_', ' ')} {metrics[key]}"
        for key in ("epochs_trained", "selected_epoch", "select", "train_seconds", "precision")
        if key in metrics
    )
    out = H.paragraph(facts + ".") if facts else ""
    png, history = workdir / filenames.CURVES, workdir / filenames.HISTORY
    if png.is_file():
        return out + H.image(png.read_bytes(), "training curves")
    if history.is_file():
        from ecg_keras.analysis import plots

        return out + H.image(
            H.png_bytes(lambda p: plots.training_curves(history, p, metrics.get("selected_epoch"))),
            "training curves",
        )
    return out + H.paragraph("No history.csv in the workdir.", note=True)


def _explanations(workdir, config, metrics, scored: Scored, n: int) -> str:
    if n <= 0:
        return H.paragraph(f"Not computed (explain_classes = 0, ${EXPLAIN_ENV}).", note=True)
    if scored.y is None:
        return H.paragraph(scored.note, note=True)
    from ecg_keras.training.run import Run

    q, on = report_data.scored_probabilities(metrics, scored.probs)
    classes = metrics["classes"]
    choices, rows = report_explain.choose(scored.y, q, metrics["thresholds"], classes, n)
    rule = report_explain.RULE.format(n=n, on=on, steps=report_explain.STEPS)
    folds = metrics.get("test_folds", config.test_folds)
    run = Run.load(workdir, config.data_dir)
    run = run.with_config(dataclasses.replace(run.config, test_folds=tuple(folds)), run.stats)
    figures = report_explain.explain(workdir, run, choices, scored.ids, scored.y)
    rows = [[c, k, r if r == "none" else int(scored.ids[r])] for c, k, r in rows]
    out = H.paragraph(rule) + H.table(["class", "kind", "ecg_id"], rows)
    return out + "".join(H.image(f["png"], f"explanation of ecg_id {f['ecg_id']}", f["caption"])
                         for f in figures)  # fmt: skip


def _ensemble_body(folder: Path) -> tuple[str, str]:
    from ecg_keras.training.run import Run

    metrics = _metrics(folder)
    members = json.loads((folder / filenames.ENSEMBLE).read_text())["members"]
    config = Run.load(members[0]["workdir"]).config  # members share task and folds
    scored = _scored(folder, config, metrics)
    rows = [
        [m["workdir"], m["model"], m["seed"], m.get("aggregate", "-")]
        + [H.number(m[f"{split}_macro_auc"]) for split in ("val", "test")]
        for m in members
    ]
    body = H.paragraph(
        f"Ensemble {folder}: the mean of {len(members)} members' window-aggregated "
        f"probabilities; test macro AUC {H.number(metrics['test']['macro_auc'])}."
    )
    members_html = H.table(["member", "model", "seed", "aggregate", "val macro AUC",
                            "test macro AUC"], rows)  # fmt: skip
    body += H.section("config", "Config: members", members_html)
    body += _common_sections(folder, config, metrics, scored)
    note = "An ensemble is not trained: each member's report.html has its own {}."
    body += H.section("training", "Training curves", H.paragraph(note.format("curves"), True))
    body += H.section("explanations", "Explanations",
                      H.paragraph(note.format("explanations"), True))  # fmt: skip
    return f"report: {folder}", body
