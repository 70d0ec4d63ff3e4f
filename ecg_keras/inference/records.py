"""Real-world records fitted to a trained model, and the rows ``predict`` writes for them.

    spans, notes = spans_for_model(signal, rate, metadata)   # whole record, 10 s spans
    outputs = predictor(spans)                               # the export signature, per span
    probabilities = combine_spans(outputs, len(spans), metadata)

Any WFDB record with the 12 standard leads is accepted (``ptbxl.read_any_record``): leads are
matched by name and put in the model's order, another sampling rate is resampled to the
model's (``scipy.signal.resample_poly``). A record of the model's 10 s is one input. A longer
one is scored over its whole length with the evaluation's own windows, stride and aggregation:
it is cut into 10 s spans at a stride of ``count x window stride`` (8.75 s for 7 windows of
2.5 s at 1.25 s), so that the spans' windows continue each other's 1.25 s grid exactly (a last
span is aligned to the record's end), every span goes through the signature as any record
does, and ``combine_spans`` aggregates them: for ``max`` the largest of the spans' calibrated
probabilities (the calibration is increasing, so that is the calibration of the max over all
windows, exactly), for ``mean`` the calibrated mean of every distinct window's probability.
A shorter record (at least ``MIN_SECONDS``) is repeated from its start until 10 s, because the
model has only seen ECGs, never a flat pad. The ``predict`` command (``predict.py``) writes
one JSON line or CSV row per record (``predict_all``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import sys
from pathlib import Path

import numpy as np

from ecg_keras import atomic
from ecg_keras.data import ptbxl, resampling
from ecg_keras.data.resampling import resample_to_model

OUTPUT_SUFFIXES = (".csv", ".jsonl")
# Fewer records take seconds; a bar would only clutter stderr.
PROGRESS_MIN_RECORDS = 20


def fit_to_model(signal: np.ndarray, rate: float, metadata: dict) -> tuple[np.ndarray, list[str]]:
    """Resamples and pads or crops one record to exactly one model input (its first 10 s):
    what a fixed-length consumer (``explain``, the robustness pairs) takes; ``predict`` scores
    whole records through ``spans_for_model`` instead.

    Args:
      signal: float32 [samples, 12] mV in the model's lead order, at ``rate`` Hz.
      metadata: the export's metadata (``sampling_rate``, ``input_samples``).

    Returns:
      (float32 [input_samples, 12], notes saying what changed).

    Raises:
      ptbxl.PtbxlError: a record shorter than ``MIN_SECONDS``.
    """
    return resampling.fit(signal, rate, metadata["sampling_rate"], metadata["input_samples"])


def span_starts(samples: int, metadata: dict) -> list[int]:
    """Where the 10 s spans of a record of ``samples`` (at the model's rate) start: every
    ``count x window stride`` samples, so that the spans' windows continue one grid, plus a
    last span aligned to the record's end when the grid does not reach it."""
    size = metadata["input_samples"]
    windows = metadata["windows"]
    rate = metadata["sampling_rate"]
    count = windows["count"]
    step = round(count * windows["stride_seconds"] * rate) if count > 1 else size
    starts = list(range(0, samples - size + 1, step))
    if starts[-1] + size < samples:
        starts.append(samples - size)
    return starts


def spans_for_model(signal: np.ndarray, rate: float, metadata: dict):
    """A whole record as model inputs (see the module docstring).

    Args:
      signal: float32 [samples, 12] mV in the model's lead order, at ``rate`` Hz.
      metadata: the export's metadata (``sampling_rate``, ``input_samples``, ``windows``).

    Returns:
      (float32 [spans, input_samples, 12], span starts in samples at the model's rate, notes).

    Raises:
      ptbxl.PtbxlError: a record shorter than ``MIN_SECONDS``.
    """
    target, size = metadata["sampling_rate"], metadata["input_samples"]
    if len(signal) / rate <= size / target:
        one, notes = fit_to_model(signal, rate, metadata)
        return one[np.newaxis], [0], notes
    notes = [f"resampled from {rate:g} Hz to {target} Hz"] if rate != target else []
    signal = resample_to_model(signal, rate, target)
    starts = span_starts(len(signal), metadata)
    notes.append(
        f"scored over its whole {len(signal) / target:g} s in {len(starts)} spans of "
        f"{size / target:g} s"
    )
    spans = np.stack([signal[s : s + size] for s in starts])
    return np.ascontiguousarray(spans, np.float32), starts, notes


def combine_spans(outputs: dict, starts, metadata: dict) -> np.ndarray:
    """One record's calibrated probabilities float32 [classes] from its spans' signature
    outputs (``probabilities`` [spans, classes], ``window_probabilities`` [spans, windows,
    classes]); one span: its own ``probabilities``.

    ``max``: the largest span probability, which is the calibration of the max over all
    windows (the calibration is increasing). ``mean``: the mean of the distinct windows' own
    probabilities (the end-aligned span's windows lie off the grid, and count once each),
    calibrated. An ensemble's ``max`` takes the largest span probability of the members'
    mean, which for one span is exact and for several an upper bound of the members' mean of
    whole-record maxima.
    """
    from ecg_keras.training import calibration

    probabilities = np.asarray(outputs["probabilities"], np.float32)
    if len(starts) == 1:
        return probabilities[0]
    if metadata["windows"]["aggregate"] == "max":
        return probabilities.max(0)
    rate, w = metadata["sampling_rate"], metadata["windows"]
    stride = round(w["stride_seconds"] * rate)
    windows = np.asarray(outputs["window_probabilities"], np.float64)
    distinct = {}
    for start, span in zip(starts, windows, strict=True):
        for k, window in enumerate(span):
            distinct.setdefault(start + k * stride, window)
    mean = np.mean(list(distinct.values()), axis=0)[np.newaxis]
    params = metadata.get("calibration")
    return (calibration.apply(params, mean) if params else mean)[0].astype(np.float32)


def score_record(predictor, signal: np.ndarray, rate: float):
    """(calibrated probabilities float32 [classes], notes) of one whole record."""
    spans, starts, notes = spans_for_model(signal, rate, predictor.metadata)
    return combine_spans(predictor(spans), starts, predictor.metadata), notes


def predict_record(predictor, path) -> dict:
    """The JSON line of one record (see the module docstring); raises PtbxlError."""
    signal, rate, notes = ptbxl.read_any_record(path)
    try:
        probabilities, fit_notes = score_record(predictor, signal, rate)
    except ptbxl.PtbxlError as e:
        raise ptbxl.PtbxlError(f"{path}: {e}") from None
    classes, thresholds = predictor.metadata["classes"], predictor.metadata["thresholds"]
    thresholds = np.asarray(thresholds, np.float32)
    return {
        "record": str(path),
        "probabilities": {
            c: round(float(p), 6) for c, p in zip(classes, probabilities, strict=True)
        },
        "labels": [c for c, p, t in zip(classes, probabilities, thresholds, strict=True) if p >= t],
        "notes": notes + fit_notes,
    }


def dir_records(folder) -> list[str]:
    """Record paths (no extension) of one ``--record_dir``: the entries of its ``RECORDS``
    file (paths relative to the folder, as in PhysioNet databases), else its ``*.hea`` files,
    sorted by name.

    Raises:
      ValueError: not a folder, or no records in it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"--record_dir={folder}: not a folder")
    listing = folder / "RECORDS"
    if listing.is_file():
        names = [line.strip() for line in listing.read_text().splitlines()]
        names = [n for n in names if n and not n.startswith("#")]
    else:
        names = sorted(p.name.removesuffix(".hea") for p in folder.glob("*.hea"))
    if not names:
        raise ValueError(f"--record_dir={folder}: no records (an empty RECORDS file, or no *.hea)")
    return [str(folder / n) for n in names]


def record_list(records, ptbxl_dir, ecg_ids, sampling_rate: int) -> list[tuple[str, dict]]:
    """(path, extra JSON fields) for record paths and PTB-XL ``--ecg_ids``.

    An ecg_id's record is the one at the model's rate when PTB-XL has it (100 or 500 Hz
    folders), else the other one, which ``fit_to_model`` resamples.
    """
    out = [(str(r), {}) for r in records]
    if ecg_ids:
        if not ptbxl_dir:
            raise ValueError("--ecg_ids needs --ptbxl_dir")
        db = ptbxl.load_database(ptbxl_dir)
        for ecg_id in ecg_ids:
            if ecg_id not in db.index:
                out.append((f"ecg_id {ecg_id}", {"ecg_id": ecg_id, "error": "not in the CSV"}))
                continue
            rates = [sampling_rate] if sampling_rate in ptbxl.SAMPLING_RATES else []
            rates += [r for r in ptbxl.SAMPLING_RATES if r not in rates]
            paths = [ptbxl.record_path(ptbxl_dir, db.loc[ecg_id], r) for r in rates]
            found = [p for p in paths if p.with_suffix(".hea").is_file()]
            out.append((str((found or paths)[0]), {"ecg_id": ecg_id}))
    return out


def check_output(output: str | None) -> Path | None:
    """``--output`` as a Path, checked before any work; raises ValueError naming the flag."""
    if not output:
        return None
    path = Path(output)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(
            f"--output={output}: unknown extension {path.suffix!r}; use .csv or .jsonl"
        )
    if not path.parent.is_dir():
        raise ValueError(f"--output={output}: folder {path.parent} does not exist")
    return path


def output_row(line: dict, classes) -> dict:
    """One record's JSON line flattened to an ``--output`` row (None: empty in a CSV)."""
    failed = "error" in line
    probabilities = line.get("probabilities", {})
    return {
        "record": line["record"],
        "ecg_id": line.get("ecg_id"),
        **{c: probabilities.get(c) for c in classes},
        "labels": None if failed else ";".join(line["labels"]),
        "notes": None if failed else "; ".join(line["notes"]),
        "error": line.get("error"),
    }


@contextlib.contextmanager
def line_writer(output: Path | None, classes):
    """Yields write(line): a JSON line to stdout, or a row of ``output``.

    ``output`` is written under a temporary name in its folder and renamed once every row is
    in, so that an interrupted or crashed run leaves no half-written file behind.
    """
    if output is None:
        yield lambda line: print(json.dumps(line), flush=True)
        return
    with atomic.replacing(output) as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        if output.suffix.lower() == ".csv":
            columns = ["record", "ecg_id", *classes, "labels", "notes", "error"]
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            yield lambda line: writer.writerow(output_row(line, classes))
        else:
            yield lambda line: f.write(json.dumps(output_row(line, classes)) + "\n")


def predict_all(predictor, records: list[tuple[str, dict]], write) -> int:
    """Predicts every record and calls ``write(line)`` for each; returns the number failed."""
    from tqdm import tqdm

    failed = 0
    bar = tqdm(
        records, unit="record", file=sys.stderr, disable=len(records) <= PROGRESS_MIN_RECORDS
    )
    for path, extra in bar:
        line = {"record": path, **extra}
        try:
            if "error" in extra:
                raise ptbxl.PtbxlError(f"{path}: {extra['error']}")
            line.update(predict_record(predictor, path), **extra)
        # Anything one record raises is that record's error: a batch must never stop on it.
        except Exception as e:
            failed += 1
            known = isinstance(e, ptbxl.PtbxlError)
            line["error"] = str(e) if known else f"{path}: {type(e).__name__}: {e}"
            bar.write(f"error: {line['error']}", file=sys.stderr)
        write(line)
    bar.close()
    return failed
