"""The explanations in a run's ``report.html``: test records chosen by a fixed rule, not by
hand, each explained with ``analysis/explanation.py`` (integrated gradients on the raw ECG)
and drawn with ``explain_plots``.

    chosen = choose(y, q, thresholds, classes, num_classes=2)
    figures = explain(workdir, run, chosen, ids)   # [{"choice", "png", "caption"}]

``RULE`` (below, and printed in the report) says which records; ``STEPS`` integration steps
instead of ``explain``'s 32 keep a report within seconds (about 0.8 s a record for vgg_small
on 2 cores, after ~4 s of tracing once per model); each caption gives the attribution sum
against the logit change, so the integration error is visible.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

STEPS = 16
KINDS = ("true positive", "false positive", "false negative")
RULE = (
    "Records chosen by rule from the test folds: the {n} class(es) with the most positive "
    "test records; for each, the true positive with the highest probability, the false "
    "positive with the highest probability and the false negative with the lowest probability "
    "(positive or not at the class's F1 threshold, on {on}). Each record is explained for that "
    "class: integrated gradients of the record's logit (max over the evaluation windows) on the "
    "raw ECG from a flat per-lead-median baseline, {steps} steps."
)


@dataclasses.dataclass(frozen=True)
class Choice:
    """One explained (record, class): ``row`` indexes the predictions file's records."""

    class_index: int
    kind: str
    row: int
    probability: float


def choose(y, q, thresholds, classes, num_classes: int) -> tuple[list[Choice], list[list]]:
    """The records of ``RULE``.

    Args:
      y: 0/1 [records, classes] test labels; q: [records, classes] the probabilities the
        thresholds apply to; thresholds: [classes].
      num_classes: how many classes (the most positive test records first; ties: class order).

    Returns:
      (choices, table rows [class, kind, ecg row or "none"]): a kind without any record (no
      false positive at all, say) is listed as ``none``.
    """
    y, q = np.asarray(y) > 0, np.asarray(q, np.float64)
    order = sorted(range(len(classes)), key=lambda k: (-int(y[:, k].sum()), k))
    choices, rows = [], []
    for k in order[:num_classes]:
        above = q[:, k] >= thresholds[k]
        pools = {
            "true positive": (y[:, k] & above, -1),  # highest probability first
            "false positive": (~y[:, k] & above, -1),
            "false negative": (y[:, k] & ~above, 1),  # lowest probability first
        }
        for kind in KINDS:
            mask, sign = pools[kind]
            if not mask.any():
                rows.append([classes[k], kind, "none"])
                continue
            candidates = np.flatnonzero(mask)
            row = int(candidates[np.argmin(sign * q[candidates, k])])
            choices.append(Choice(k, kind, row, float(q[row, k])))
            rows.append([classes[k], kind, row])
    return choices, rows


def _caption(choice: Choice, name: str, ecg_id: int, block: dict, labels: str) -> str:
    lead, share = max(block["lead_mass"].items(), key=lambda item: item[1])
    start, end = block["window"]["seconds"]
    return (
        f"ecg_id {ecg_id}, {name}: {choice.kind}. Probability {block['probability']:.3f} "
        f"(threshold {block['threshold']:.3f}); labels: {labels or 'none'}. Explained window "
        f"{start:g}-{end:g} s; lead with the most attribution {lead} ({100 * share:.0f}%). "
        f"Attribution sum {block['attribution_sum']:.3f} vs logit change "
        f"{block['logit_change']:.3f} (their gap is the integration error)."
    )


def explain(workdir, run, choices: list[Choice], ids, labels, steps: int = STEPS) -> list[dict]:
    """Explains each chosen (record, class); a record chosen for two classes is explained once.

    Args:
      workdir: the training workdir (its model, thresholds and calibration).
      run: its ``training.run.Run`` (the test records' raw ECGs come from its TFRecords).
      ids: int [records] ecg_ids of the predictions' rows; labels: [records, classes].

    Returns:
      [{"choice", "ecg_id", "png" (bytes), "caption"}] in the order of ``choices``.
    """
    from ecg_keras.analysis import explain_plots, explainable, explanation, html_page
    from ecg_keras.deploy import export_check

    if not choices:
        return []
    model = explainable.load(workdir)
    records = export_check.load_records(run, sorted({int(f) for f in run.config.test_folds}))
    position = {int(i): k for k, i in enumerate(records.ecg_ids)}
    rate = model.metadata["sampling_rate"]
    by_row: dict[int, list[Choice]] = {}
    for choice in choices:
        by_row.setdefault(choice.row, []).append(choice)
    done = {}
    for row, wanted in by_row.items():
        ecg_id = int(ids[row])
        ecg = records.signals[position[ecg_id]]
        names = tuple(dict.fromkeys(model.classes[c.class_index] for c in wanted))
        result, plots = explanation.explain_record(model, ecg, names, steps)
        positive = ", ".join(c for c, v in zip(model.classes, labels[row], strict=True) if v > 0)
        for name, attr, lead_mass, panel in plots:
            block = result["classes"][name]
            title = f"ecg_id {ecg_id}: {name}, p = {block['probability']:.3f}"
            draw = functools.partial(explain_plots.figure, ecg, attr, rate, title, lead_mass, panel)
            png = html_page.png_bytes(draw)  # figure(..., path) writes the PNG
            for choice in (c for c in wanted if model.classes[c.class_index] == name):
                caption = _caption(choice, name, ecg_id, block, positive)
                done[choice] = {"choice": choice, "ecg_id": ecg_id, "png": png, "caption": caption}
    return [done[c] for c in choices]
