"""PhysioNet/CinC Challenge-layout folders as a prepared dataset: records, labels and folds.

    entries = read_entries("data/cpsc_2018")          # every record's header: codes, age, sex
    folds = assign_folds(label_matrix(entries), 10, seed=0)
    ecg_id, adc, notes = read_job((path, 100, 1))     # in a reader process

The Challenge 2020/2021 databases (CPSC 2018 and CPSC-Extra, Georgia, Chapman-Shaoxing,
Ningbo, PTB, INCART, PTB-XL at 500 Hz) share one layout: a WFDB header naming a MATLAB v4
``.mat`` signal, SNOMED-CT diagnoses in its ``#Dx:`` comment. ``prepare --input_format=challenge``
writes them in the same TFRecord schema as PTB-XL (``data/tfrecord.py``): 12 leads by name, 10 s
at 100 or 500 Hz, int16 samples. Because the schema holds 10 s at one rate, every record is
resampled (``data/resampling``, the reader ``predict`` uses), cropped to its first 10 s or
repeated from its start up to 10 s, and written at ``GAIN`` adu/mV (1 uV steps: the
quantization moves a sample by at most 0.5 uV, half of PTB-XL's own 1 uV resolution).

Two label tasks:
- ``superdiagnostic``: the five PTB-XL superclasses from the codes (``data/snomed``); a record
  whose status is unknown (only rhythm, ectopy or form codes) has ``has_label`` 0 there.
- ``challenge``: the Challenge 2021's 26 scored classes (the header of its ``weights.csv``),
  where the pairs it scores as one class (CLBBB|LBBB, CRBBB|RBBB, PAC|SVPB, PVC|VPB) are one
  class. Every record with a ``#Dx`` line is labelled (no scored code: negative for all 26).

Folds 1..``num_folds`` are drawn by the pipeline, not read: ``assign_folds`` stratifies on
both tasks' labels with iterative stratification (Sechidis et al. 2011; the maintained
``iterative-stratification`` package), seeded. The Challenge headers carry no patient id, so
unlike PTB-XL's ``strat_fold`` the folds cannot keep a patient's ECGs together.

No TensorFlow here: the reader processes import this module.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from ecg_keras.data import adc, ptbxl, resampling, snomed

TASK = "challenge"
# adu per mV of the written int16 samples: 1 uV steps, +-32.767 mV range.
GAIN = 1000.0
_INT16 = np.iinfo(np.int16)

# The Challenge 2021's scored classes, in the order of its weights.csv header; codes joined
# there by "|" are scored as one class. Names: the Challenge's abbreviations (dx_mapping.csv),
# the pairs under their common name.
# fmt: off
SCORED: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("AF", (164889003,)),            # atrial fibrillation
    ("AFL", (164890007,)),           # atrial flutter
    ("BBB", (6374002,)),             # bundle branch block
    ("Brady", (426627000,)),         # bradycardia
    ("LBBB", (733534002, 164909002)),  # complete left bundle branch block | LBBB
    ("RBBB", (713427006, 59118001)),   # complete right bundle branch block | RBBB
    ("IAVB", (270492004,)),          # 1st degree AV block
    ("IRBBB", (713426002,)),         # incomplete right bundle branch block
    ("LAD", (39732003,)),            # left axis deviation
    ("LAnFB", (445118002,)),         # left anterior fascicular block
    ("LPR", (164947007,)),           # prolonged PR interval
    ("LQRSV", (251146004,)),         # low QRS voltages
    ("LQT", (111975006,)),           # prolonged QT interval
    ("NSIVCB", (698252002,)),        # nonspecific intraventricular conduction disorder
    ("NSR", (426783006,)),           # sinus rhythm
    ("PAC", (284470004, 63593006)),  # premature atrial contraction | supraventricular premature
    ("PR", (10370003,)),             # pacing rhythm
    ("PRWP", (365413008,)),          # poor R wave progression
    ("PVC", (427172004, 17338001)),  # premature ventricular contractions | ventricular premature
    ("QAb", (164917005,)),           # Q wave abnormal
    ("RAD", (47665007,)),            # right axis deviation
    ("SA", (427393009,)),            # sinus arrhythmia
    ("SB", (426177001,)),            # sinus bradycardia
    ("STach", (427084000,)),         # sinus tachycardia
    ("TAb", (164934002,)),           # T wave abnormal
    ("TInv", (59931005,)),           # T wave inversion
)
# fmt: on
CLASSES = {"superdiagnostic": ptbxl.SUPERCLASSES, TASK: tuple(name for name, _ in SCORED)}
_SCORED_INDEX = {code: k for k, (_, codes) in enumerate(SCORED) for code in codes}
# PTB-XL's coding of ``sex``; -1 where the header does not say.
_SEX = {"male": 0, "m": 0, "female": 1, "f": 1}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One record's header facts: ``name`` (its path relative to the input folder, without
    extension), ``path`` (without extension), SNOMED-CT ``codes``, ``has_dx`` (a ``#Dx:``
    line was present), ``age`` (NaN: unknown), ``sex`` (0 male, 1 female, -1 unknown)."""

    name: str
    path: str
    codes: tuple[int, ...]
    has_dx: bool
    age: float
    sex: int

    def labels(self) -> dict[str, tuple[np.ndarray, int]]:
        """task -> (int64 multi-hot [classes], has_label 0 or 1)."""
        status = snomed.superclass_status(self.codes)
        superclass = np.array(
            [0 if status is None else status[s] for s in ptbxl.SUPERCLASSES], np.int64
        )
        scored = np.zeros(len(SCORED), np.int64)
        for code in self.codes:
            if code in _SCORED_INDEX:
                scored[_SCORED_INDEX[code]] = 1
        return {
            "superdiagnostic": (superclass, int(status is not None)),
            TASK: (scored, int(self.has_dx)),
        }


def record_names(input_dir: str | os.PathLike) -> list[str]:
    """Record names (paths relative to ``input_dir``, no extension): the entries of its
    ``RECORDS`` file, where an entry naming a folder (PhysioNet's multi-level databases list
    ``training/cpsc_2018/`` and the like) stands for that folder's own records; else every
    ``*.hea`` below it (the Challenge 2021 download keeps each database in its own tree),
    sorted.

    Raises:
      ValueError: not a folder, or no records.
    """
    folder = Path(input_dir)
    if not folder.is_dir():
        raise ValueError(f"--input_dir={input_dir}: not a folder")
    names = _listed(folder, folder)
    if not names:
        raise ValueError(f"--input_dir={input_dir}: no records (no RECORDS entries, no *.hea)")
    return names


def _listed(root: Path, folder: Path) -> list[str]:
    listing = folder / "RECORDS"
    if not listing.is_file():
        return sorted(str(p.relative_to(root).with_suffix("")) for p in folder.rglob("*.hea"))
    names = []
    for line in listing.read_text().splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if entry.endswith("/") or (folder / entry).is_dir():
            names += _listed(root, folder / entry.rstrip("/"))
        else:
            names.append(str((folder / entry).relative_to(root)))
    return names


def _comment(text: str, key: str) -> str | None:
    """The value of a header comment ``#Key: value`` (``# Key:`` too), or None."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            name, sep, value = stripped.lstrip("#").partition(":")
            if sep and name.strip().lower() == key:
                return value.strip()
    return None


def read_entry(input_dir: str | os.PathLike, name: str) -> Entry:
    """One record's header facts.

    Raises:
      ptbxl.PtbxlError: no header, or a ``#Dx:`` that is not a list of codes (names the file).
    """
    path = Path(input_dir) / name
    header = path.with_name(path.name + ".hea")
    if not header.is_file():
        raise ptbxl.PtbxlError(f"{header}: not found (listed in {Path(input_dir) / 'RECORDS'})")
    text = header.read_text(errors="replace")
    try:
        codes = snomed.dx_codes(text)
    except ValueError as e:
        raise ptbxl.PtbxlError(f"{header}: {e}") from None
    try:
        age = float(_comment(text, "age") or "nan")
    except ValueError:
        age = float("nan")
    sex = _SEX.get((_comment(text, "sex") or "").lower(), -1)
    has_dx = _comment(text, "dx") is not None
    return Entry(name, str(path), codes, has_dx, age, sex)


def label_matrix(entries: list[Entry]) -> np.ndarray:
    """int64 [records, 5 + 26]: both tasks' labels side by side, what the folds stratify on."""
    rows = []
    for entry in entries:
        labels = entry.labels()
        rows.append(np.concatenate([labels[t][0] for t in CLASSES]))
    return np.stack(rows) if rows else np.zeros((0, sum(map(len, CLASSES.values()))), np.int64)


def assign_folds(labels: np.ndarray, num_folds: int, seed: int) -> np.ndarray:
    """Folds 1..``num_folds`` (int64 [records]) stratified on the multi-label ``labels``
    [records, classes] by iterative stratification, shuffled with ``seed``.

    Raises:
      ValueError: fewer records than folds.
    """
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    if len(labels) < num_folds:
        raise ValueError(f"{len(labels)} records cannot fill --num_folds={num_folds} folds")
    folds = np.zeros(len(labels), np.int64)
    splitter = MultilabelStratifiedKFold(n_splits=num_folds, shuffle=True, random_state=seed)
    for k, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
        folds[held_out] = k + 1
    return folds


def to_adc(signal: np.ndarray, who: str) -> adc.Adc:
    """float32 mV [samples, 12] -> int16 samples at ``GAIN`` adu/mV, baseline 0.

    Raises:
      ptbxl.PtbxlError: an amplitude beyond what int16 holds at that gain.
    """
    scaled = np.rint(np.asarray(signal, np.float64) * GAIN)
    peak = float(np.abs(scaled).max()) if scaled.size else 0.0
    if peak > _INT16.max:
        raise ptbxl.PtbxlError(
            f"{who}: amplitude {peak / GAIN:.1f} mV beyond the +-{_INT16.max / GAIN:.3f} mV "
            f"that int16 samples hold at {GAIN:g} adu/mV"
        )
    return adc.Adc(
        scaled.astype(np.int16),
        np.full(ptbxl.NUM_LEADS, GAIN, np.float32),
        np.zeros(ptbxl.NUM_LEADS, np.int64),
    )


def read_job(job: tuple[str, int, int]):
    """Reads, resamples and fits one record for a process pool.

    Args:
      job: (record path without extension, target rate in Hz, ecg_id).

    Returns:
      (ecg_id, ``adc.Adc`` of [rate * 10, 12] or the ``ptbxl.PtbxlError`` that refused the
      record, notes: what was changed). Errors are returned, not raised, so that
      ``--skip_missing`` can leave a record out and the pool goes on.
    """
    path, rate, ecg_id = job
    try:
        signal, fs, notes = ptbxl.read_any_record(path)
        fitted, fit_notes = resampling.fit(signal, fs, rate, rate * ptbxl.RECORD_SECONDS)
        return ecg_id, to_adc(fitted, path), notes + fit_notes
    except ptbxl.PtbxlError as e:
        message = str(e) if str(e).startswith(path) else f"{path}: {e}"
        return ecg_id, ptbxl.PtbxlError(message), []
