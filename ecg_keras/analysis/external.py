"""External evaluation: a trained model scored on another database's Challenge-layout records.

    result = evaluate_external(predictor, "data/cpsc2018", out_root)   # RUN/external/NAME/

Each record of the folder (its ``RECORDS`` file, else every ``*.hea``) is read as ``predict``
reads one (``ptbxl.read_any_record``: lead names, units, rates, the Challenge's quirks) and
scored over its whole length (``inference.records.score_record``: 10 s spans, the evaluation's
windows and aggregation, calibrated). Its SNOMED-CT ``#Dx:`` codes give its superclass status
(``data.snomed``): records whose status is unknown (only rhythm, ectopy or form codes) are
predicted but not scored. A record that cannot be read keeps its own error row; the rest run.

Written to ``OUT/NAME/``: ``metrics.json`` (``num_records``, ``num_refused``, ``num_scored``,
``per_class_auc`` (class -> AUC, or null where the scored records hold no positive or no
negative), ``macro_auc`` over the classes with an AUC, ``macro_auc_ci`` (90% bootstrap over
records), ``positives`` per class, and the source) and ``predictions.csv`` (one row per record:
codes, status, labels, calibrated probabilities, notes, error).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ecg_keras import atomic

PREDICTIONS = "predictions.csv"


def source_records(source) -> tuple[str, list[str]]:
    """(name, record paths) of ``--external_dir``: a folder (its ``RECORDS`` file, else every
    ``*.hea``), or a ``RECORDS`` file itself; the name is the folder's.

    Raises:
      ValueError: neither, or no records.
    """
    from ecg_keras.inference import records

    path = Path(source)
    folder = path.parent if path.is_file() and path.name == "RECORDS" else path
    if not folder.is_dir():
        raise ValueError(f"--external_dir={source}: not a folder or a RECORDS file")
    return folder.resolve().name, records.dir_records(folder)


def _record_row(predictor, path: str, classes) -> dict:
    """One record's row: codes, status and calibrated probabilities, or its error."""
    from ecg_keras.data import ptbxl, snomed
    from ecg_keras.inference import records

    row = {"record": path}
    try:
        header = (
            Path(path + ".hea").read_text(errors="replace") if Path(path + ".hea").is_file() else ""
        )
        codes = snomed.dx_codes(header)
        status = snomed.superclass_status(codes)
        row["dx"] = ";".join(map(str, codes))
        row["status"] = "unknown" if status is None else "scored"
        for c in classes:
            row[f"label_{c}"] = None if status is None else status.get(c)
        signal, rate, notes = ptbxl.read_any_record(path)
        probabilities, fit_notes = records.score_record(predictor, signal, rate)
        row.update({c: float(p) for c, p in zip(classes, probabilities, strict=True)})
        row["notes"] = "; ".join(notes + fit_notes)
    except Exception as e:  # one record's failure is its row, never the run's
        row["status"] = "refused"
        row["error"] = str(e) if str(e).startswith(path) else f"{path}: {e}"
    return row


def scores(frame, classes) -> dict:
    """The metrics.json figures of a predictions frame (see the module docstring)."""
    from ecg_keras.training import metrics

    scored = frame[frame["status"] == "scored"]
    y = scored[[f"label_{c}" for c in classes]].to_numpy(np.float64)
    p = scored[list(classes)].to_numpy(np.float64)
    per_class, positives = {}, {}
    for k, c in enumerate(classes):
        positives[c] = int(y[:, k].sum()) if len(y) else 0
        both = 0 < positives[c] < len(y)
        per_class[c] = float(metrics.per_class_auc(y[:, [k]], p[:, [k]])[0]) if both else None
    with_auc = [k for k, c in enumerate(classes) if per_class[c] is not None]
    macro = float(np.mean([per_class[classes[k]] for k in with_auc])) if with_auc else None
    interval = None
    if with_auc and len(y) >= 10:
        interval = list(metrics.bootstrap_macro_auc(y[:, with_auc], p[:, with_auc]))
    return {
        "num_records": int(len(frame)),
        "num_refused": int((frame["status"] == "refused").sum()),
        "num_unknown_status": int((frame["status"] == "unknown").sum()),
        "num_scored": int(len(scored)),
        "classes": list(classes),
        "positives": positives,
        "per_class_auc": per_class,
        "macro_auc": macro,
        "macro_auc_ci": interval,
    }


def evaluate_external(predictor, source, out_root, progress=True) -> dict:
    """Scores ``predictor`` (``inference.predictor.load``: a run, an ensemble or an export) on
    the Challenge-layout records of ``source``; writes ``OUT_ROOT/NAME/metrics.json`` and
    ``predictions.csv`` atomically. Returns the metrics.json content.

    Raises:
      ValueError: no records, or a model that predicts none of the PTB-XL superclasses.
    """
    import pandas as pd
    from tqdm import tqdm

    from ecg_keras.data import ptbxl

    name, paths = source_records(source)
    classes = [c for c in predictor.metadata["classes"] if c in ptbxl.SUPERCLASSES]
    if not classes:
        raise ValueError(
            f"the model predicts {predictor.metadata['classes']}; external evaluation scores "
            f"the PTB-XL superclasses {list(ptbxl.SUPERCLASSES)} from SNOMED-CT codes"
        )
    rows = []
    for path in tqdm(paths, unit="record", file=sys.stderr, disable=not progress, desc=name):
        rows.append(_record_row(predictor, path, predictor.metadata["classes"]))
    columns = ["record", "dx", "status", *[f"label_{c}" for c in classes]]
    columns += [*predictor.metadata["classes"], "notes", "error"]
    frame = pd.DataFrame(rows).reindex(columns=columns)
    result = {"name": name, "source": str(Path(source).resolve()), **scores(frame, classes)}
    out = Path(out_root) / name
    out.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(out / PREDICTIONS) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")
    atomic.write_json(out / "metrics.json", result)
    return result
