"""Predict the classes of WFDB ECG records with an exported model.

    python -m ecg_keras.predict --model=saved_models/NAME/VERSION|FILE.tflite \
        --record=PATH/00001_lr [--record=...] [--ptbxl_dir=DIR --ecg_ids=1,2,3]

Prints one JSON line per record, in the order given: ``record``, ``probabilities`` (class ->
probability), ``labels`` (classes at or above the exported validation thresholds), ``notes``
(what was done to fit the record to the model) and, for ``--ecg_ids``, ``ecg_id``. A record
that cannot be read gives ``{"record": ..., "error": ...}`` and an ``error:`` line on stderr,
and the others still run; the exit code is 1 when any record failed.

Any WFDB record with the 12 standard leads is accepted: leads are matched by name and put in
the model's order, another sampling rate is resampled to the model's
(``scipy.signal.resample_poly``), and the length is fitted to the model's 10 s: a longer record
keeps its first 10 s; a shorter one (at least ``MIN_SECONDS``) is repeated from its start until
10 s, because the model has only seen ECGs, never a flat pad. A .tflite file needs the
``metadata.json`` that ``export`` writes next to it.
"""

from __future__ import annotations

import json
import sys
from fractions import Fraction

import numpy as np

from ecg_keras import ptbxl

# One evaluation window (2.5 s, as in training crops): shorter records hold too few beats.
MIN_SECONDS = 2.5


def fit_to_model(signal: np.ndarray, rate: float, metadata: dict) -> tuple[np.ndarray, list[str]]:
    """Resamples and pads or crops one record to the model's input.

    Args:
      signal: float32 [samples, 12] mV in the model's lead order, at ``rate`` Hz.
      metadata: the export's metadata (``sampling_rate``, ``input_samples``).

    Returns:
      (float32 [input_samples, 12], notes saying what changed).

    Raises:
      ptbxl.PtbxlError: a record shorter than ``MIN_SECONDS``.
    """
    import scipy.signal

    target, samples = metadata["sampling_rate"], metadata["input_samples"]
    notes = []
    if rate != target:
        ratio = Fraction(target / rate).limit_denominator(1000)
        signal = scipy.signal.resample_poly(signal, ratio.numerator, ratio.denominator, axis=0)
        notes.append(f"resampled from {rate:g} Hz to {target} Hz")
    seconds = len(signal) / target
    if seconds < MIN_SECONDS:
        raise ptbxl.PtbxlError(f"{seconds:.2f} s long; the model needs at least {MIN_SECONDS} s")
    if len(signal) > samples:
        signal = signal[:samples]
        notes.append(f"cropped from {seconds:g} s to its first {samples / target:g} s")
    elif len(signal) < samples:
        signal = np.pad(signal, ((0, samples - len(signal)), (0, 0)), mode="wrap")
        notes.append(f"padded from {seconds:g} s to {samples / target:g} s by repeating it")
    return np.ascontiguousarray(signal, np.float32), notes


def predict_record(predictor, path) -> dict:
    """The JSON line of one record (see the module docstring); raises PtbxlError."""
    signal, rate, notes = ptbxl.read_any_record(path)
    signal, fit_notes = fit_to_model(signal, rate, predictor.metadata)
    probabilities = predictor(signal[np.newaxis])["probabilities"][0]
    classes, thresholds = predictor.metadata["classes"], predictor.metadata["thresholds"]
    return {
        "record": str(path),
        "probabilities": {
            c: round(float(p), 6) for c, p in zip(classes, probabilities, strict=True)
        },
        "labels": [c for c, p, t in zip(classes, probabilities, thresholds, strict=True) if p >= t],
        "notes": notes + fit_notes,
    }


def record_list(records, ptbxl_dir, ecg_ids, sampling_rate: int) -> list[tuple[str, dict]]:
    """(path, extra JSON fields) for ``--record`` paths and PTB-XL ``--ecg_ids``.

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


def predict_all(predictor, records: list[tuple[str, dict]], out=sys.stdout) -> int:
    """Writes one JSON line per record to ``out``; returns the number of failed records."""
    failed = 0
    for path, extra in records:
        line = {"record": path, **extra}
        try:
            if "error" in extra:
                raise ptbxl.PtbxlError(f"{path}: {extra['error']}")
            line.update(predict_record(predictor, path), **extra)
        except (ptbxl.PtbxlError, ValueError) as e:
            failed += 1
            line["error"] = str(e)
            print(f"error: {e}", file=sys.stderr)
        print(json.dumps(line), file=out, flush=True)
    return failed


def define_flags():
    from absl import flags

    flags.DEFINE_string("model", None, "saved_models/NAME/VERSION, or a .tflite file.")
    flags.DEFINE_multi_string("record", [], "WFDB record path without extension (repeatable).")
    flags.DEFINE_string("ptbxl_dir", None, "PTB-XL folder, for --ecg_ids.")
    flags.DEFINE_list("ecg_ids", [], "PTB-XL ecg_ids to predict (with --ptbxl_dir).")
    flags.mark_flag_as_required("model")


def main(argv):
    from absl import flags

    from ecg_keras import runtime

    del argv
    f = flags.FLAGS
    try:
        ecg_ids = [int(i) for i in f.ecg_ids]
    except ValueError:
        print(f"error: --ecg_ids={','.join(f.ecg_ids)}: must be integers", file=sys.stderr)
        sys.exit(1)
    try:
        if not f.record and not ecg_ids:
            raise ValueError("nothing to predict: pass --record=PATH or --ptbxl_dir and --ecg_ids")
        predictor = runtime.load(f.model)
        records = record_list(f.record, f.ptbxl_dir, ecg_ids, predictor.metadata["sampling_rate"])
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    failed = predict_all(predictor, records)
    if failed:
        print(f"error: {failed} of {len(records)} records failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    from absl import app

    define_flags()
    app.run(main)
