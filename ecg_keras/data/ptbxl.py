"""The PhysioNet PTB-XL layout: metadata, label tasks, folds and WFDB signals.

Dataset facts (lead order, record length, class lists) live here and nowhere else.

Label tasks follow the PTB-XL benchmark (Strodthoff et al. 2021,
helme/ecg_ptbxl_benchmarking ``code/utils/utils.py``): every key of ``scp_codes`` counts,
whatever its likelihood, and diagnostic statements are mapped through the
``diagnostic_class`` / ``diagnostic_subclass`` columns of the rows with ``diagnostic == 1``.
The benchmark takes its class list from the data (``MultiLabelBinarizer``); here it is taken
from ``scp_statements.csv`` so that it does not depend on which records are present. On the
full dataset the two coincide (5, 23, 44, 19, 12 and 71 classes).
"""

from __future__ import annotations

import ast
import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd

LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
NUM_LEADS = len(LEADS)
RECORD_SECONDS = 10
# The PTB-XL benchmark split (Strodthoff et al. 2021): folds 1-8 train, 9 validation, 10 test.
TRAIN_FOLDS, VAL_FOLDS, TEST_FOLDS = tuple(range(1, 9)), (9,), (10,)
SAMPLING_RATES = (100, 500)
TASKS = ("superdiagnostic", "subdiagnostic", "diagnostic", "form", "rhythm", "all")
# The order used by the PTB-XL paper; the other tasks are sorted like the benchmark's
# MultiLabelBinarizer.
SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")
DATABASE_CSV = "ptbxl_database.csv"
STATEMENTS_CSV = "scp_statements.csv"
DOWNLOAD_HINT = (
    "download PTB-XL with `python -m ecg_keras.download --output_dir=DIR` "
    "(or from https://physionet.org/content/ptb-xl/) and pass --ptbxl_dir=DIR"
)

_LEAD_INDEX = {name.upper(): i for i, name in enumerate(LEADS)}


class PtbxlError(ValueError):
    """Bad or missing PTB-XL input; the message names the file, folder or ecg_id."""


def default_dir() -> Path | None:
    """``$PTBXL_DIR``, else ``../shared/data/ptbxl`` next to the repository when it exists."""
    env = os.environ.get("PTBXL_DIR")
    if env:
        return Path(env)
    shared = Path(__file__).resolve().parents[3] / "shared" / "data" / "ptbxl"  # repo/../
    return shared if shared.is_dir() else None


@dataclasses.dataclass(frozen=True)
class LabelTasks:
    """Class lists of the six tasks and the maps from SCP statements to classes."""

    classes: dict[str, tuple[str, ...]]
    _maps: dict[str, dict[str, str]]

    def labels(self, scp_codes: dict[str, float]) -> dict[str, list[str]]:
        """Maps one record's ``scp_codes`` to its sorted class names for every task."""
        out = {}
        for task in TASKS:
            mapping = self._maps[task]
            out[task] = sorted({mapping[code] for code in scp_codes if code in mapping})
        return out

    def multi_hot(self, scp_codes: dict[str, float]) -> dict[str, np.ndarray]:
        """Returns task -> int64 [num_classes] multi-hot vector (all zero: no label)."""
        out = {}
        for task, names in self.labels(scp_codes).items():
            vec = np.zeros(len(self.classes[task]), np.int64)
            vec[[self.classes[task].index(n) for n in names]] = 1
            out[task] = vec
        return out


def _check_file(path: Path) -> Path:
    if not path.is_file():
        raise PtbxlError(f"{path}: file not found; {DOWNLOAD_HINT}")
    return path


def load_tasks(ptbxl_dir: str | os.PathLike) -> LabelTasks:
    """Reads ``scp_statements.csv`` and builds the six label tasks."""
    path = _check_file(Path(ptbxl_dir) / STATEMENTS_CSV)
    stmts = pd.read_csv(path, index_col=0)
    missing = {"diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass"}
    missing -= set(stmts.columns)
    if missing:
        raise PtbxlError(f"{path}: missing columns {sorted(missing)}")
    diag = stmts[stmts.diagnostic == 1.0]
    maps = {
        "superdiagnostic": diag.diagnostic_class.dropna().to_dict(),
        "subdiagnostic": diag.diagnostic_subclass.dropna().to_dict(),
        "diagnostic": {code: code for code in diag.index},
        "form": {code: code for code in stmts.index[stmts.form == 1.0]},
        "rhythm": {code: code for code in stmts.index[stmts.rhythm == 1.0]},
        "all": {code: code for code in stmts.index},
    }
    classes = {task: tuple(sorted(set(m.values()))) for task, m in maps.items()}
    if set(classes["superdiagnostic"]) != set(SUPERCLASSES):
        raise PtbxlError(f"{path}: unexpected superclasses {classes['superdiagnostic']}")
    classes["superdiagnostic"] = SUPERCLASSES
    return LabelTasks(classes=classes, _maps=maps)


def load_database(ptbxl_dir: str | os.PathLike) -> pd.DataFrame:
    """Reads ``ptbxl_database.csv`` indexed by ``ecg_id``, ``scp_codes`` parsed to dicts."""
    path = _check_file(Path(ptbxl_dir) / DATABASE_CSV)
    db = pd.read_csv(path, index_col="ecg_id")
    needed = {"patient_id", "age", "sex", "scp_codes", "strat_fold", "filename_lr", "filename_hr"}
    missing = needed - set(db.columns)
    if missing:
        raise PtbxlError(f"{path}: missing columns {sorted(missing)}")
    try:
        db["scp_codes"] = db.scp_codes.apply(ast.literal_eval)
    except (ValueError, SyntaxError) as e:
        raise PtbxlError(f"{path}: unreadable scp_codes ({e})") from None
    bad = db.index[~db.strat_fold.between(1, 10)]
    if len(bad):
        raise PtbxlError(f"{path}: strat_fold outside 1-10 for ecg_id {list(bad[:5])}")
    return db.sort_index()


def record_path(ptbxl_dir: str | os.PathLike, row, sampling_rate: int) -> Path:
    """The WFDB record path (without extension) of one database row (Series or namedtuple)."""
    column = {100: "filename_lr", 500: "filename_hr"}[sampling_rate]
    return Path(ptbxl_dir) / getattr(row, column)


def _rdrecord(path: Path, who: str, physical: bool = True):
    """``wfdb.rdrecord`` with errors that name the file: a missing ``.hea`` or signal file
    (whatever the header names: ``.dat``, the Challenge's ``.mat``...), a bad header or signal.
    ``physical=False`` keeps the stored integers (``d_signal``) instead of mV.
    """
    import wfdb  # deferred: wfdb pulls in heavy imports that most callers never need

    if not path.with_name(path.name + ".hea").is_file():
        raise PtbxlError(f"{who}: {path.name}.hea not found")
    try:
        return wfdb.rdrecord(str(path), physical=physical)
    except Exception as e:  # wfdb raises many types for a broken header or signal file
        error = e
    fixed = _record_line_without_extension(path)
    if fixed is not None:  # e.g. Georgia's "E00271.mat 12 500 5000 ...": read it as written
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            for name in {ln.split()[0] for ln in fixed.splitlines()[1:] if ln.strip()[:1] != "#"}:
                if (path.parent / name).is_file():
                    os.symlink((path.parent / name).resolve(), Path(tmp) / name)
            (Path(tmp) / f"{path.name}.hea").write_text(fixed)
            try:
                return wfdb.rdrecord(str(Path(tmp) / path.name), physical=physical)
            except Exception as e:
                error = e
    # Diagnosed only after a failure: parsing the header costs as much as reading the record
    # (about 4 ms), and ``prepare`` reads every PTB-XL record through here.
    try:
        header = wfdb.rdheader(str(path))
    except Exception:
        raise PtbxlError(f"{who}: unreadable header ({error})") from None
    names = dict.fromkeys(getattr(header, "file_name", None) or [])  # None: multi-segment
    missing = [n for n in names if n != "~" and not (path.parent / n).is_file()]
    if missing:
        raise PtbxlError(f"{who}: {', '.join(missing)} not found (named in {path.name}.hea)")
    raise PtbxlError(f"{who}: unreadable signal ({type(error).__name__}: {error})")


def _record_line_without_extension(path: Path) -> str | None:
    """The header text with its record line's name made bare, when that line names the record
    with a file extension (``E00271.mat 12 500 5000 ...``: some Georgia releases of the
    PhysioNet/CinC Challenge data; ``wfdb.rdheader`` rejects it, the Challenge's loader reads
    it), else None."""
    text = path.with_name(path.name + ".hea").read_text(errors="replace")
    lines = text.splitlines(keepends=True)
    for k, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, rest = line.strip().partition(" ")
        stem = name.split("/")[0]
        if stem != path.name and Path(stem).stem == path.name and Path(stem).suffix:
            lines[k] = f"{path.name} {rest}\n"
            return "".join(lines)
        return None
    return None


def checked_record(path, sampling_rate: int, ecg_id: int | None = None, physical: bool = True):
    """Reads one PTB-XL WFDB record and checks its rate, lead names and length.

    Returns:
      (wfdb Record, ``order``: the record's column of each lead of ``LEADS``, ``who``: the
      record's name for error messages).

    Raises:
      PtbxlError: missing or unreadable files, wrong leads, length or rate.
    """
    path = Path(path)
    who = f"ecg_id {ecg_id} ({path})" if ecg_id is not None else str(path)
    record = _rdrecord(path, who, physical)
    expected = sampling_rate * RECORD_SECONDS
    if record.fs != sampling_rate:
        raise PtbxlError(f"{who}: sampling rate {record.fs} Hz, expected {sampling_rate}")
    if record.n_sig != NUM_LEADS:
        raise PtbxlError(f"{who}: {record.n_sig} leads in header, expected {NUM_LEADS}")
    if record.sig_len != expected:
        raise PtbxlError(f"{who}: {record.sig_len} samples in header, expected {expected}")
    names = [n.upper() for n in record.sig_name]
    if sorted(names) != sorted(_LEAD_INDEX):
        raise PtbxlError(f"{who}: lead names {record.sig_name}, expected {list(LEADS)}")
    signal = record.p_signal if physical else record.d_signal
    if signal is None or signal.shape != (expected, NUM_LEADS):
        shape = None if signal is None else signal.shape
        raise PtbxlError(f"{who}: signal shape {shape}, expected ({expected}, 12)")
    return record, [names.index(lead.upper()) for lead in LEADS], who


def read_signal(
    path: str | os.PathLike, sampling_rate: int, ecg_id: int | None = None
) -> np.ndarray:
    """Reads one PTB-XL WFDB record in mV, leads in the standard order.

    Args:
      path: record path without extension (``.../00001_lr``).
      sampling_rate: expected sampling rate in Hz (100 or 500).
      ecg_id: only used in error messages.

    Returns:
      float32 [sampling_rate * 10, 12], leads in ``LEADS`` order.

    Raises:
      PtbxlError: missing or unreadable files, wrong leads, length or rate, non-finite values.
    """
    record, order, who = checked_record(path, sampling_rate, ecg_id)
    if not np.isfinite(record.p_signal).all():
        raise PtbxlError(f"{who}: signal has NaN or infinite values")
    return np.ascontiguousarray(record.p_signal[:, order], dtype=np.float32)


# Physical units a WFDB header may give, as a factor to mV (upper-cased: "\u00b5V" and the
# Greek "\u03bcV" both become "\u039cV").
_TO_MV = {"MV": 1.0, "UV": 1e-3, "\u00b5V".upper(): 1e-3, "V": 1e3}
# PTB-XL's lower rate and the models' input rate; below it the QRS complex (energy up to
# about 40 Hz) is not captured.
MIN_RATE = 100


def _units(path: Path, record) -> list[str]:
    """``record.units``, with the units that hold non-ASCII characters as the header writes them.

    wfdb decodes headers as ASCII and drops other bytes, so that it reads "\u00b5V" as "V",
    10^6 times too large. Only such units are replaced, so that a header parsed differently
    here cannot change anything else.
    """
    raw = path.with_name(path.name + ".hea").read_bytes()
    if raw.isascii():
        return list(record.units)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    lines = [ln.split() for ln in text.splitlines() if ln.strip() and ln.strip()[0] != "#"]
    # Signal line fields: file, format, gain[(baseline)][/units], ...
    written = [f[2].partition("/")[2] if len(f) > 2 else "" for f in lines[1 : 1 + record.n_sig]]
    if len(written) != record.n_sig:
        return list(record.units)
    return [
        w if not w.isascii() and w.encode("ascii", "ignore").decode() == u else u
        for w, u in zip(written, record.units, strict=True)
    ]


def read_any_record(path: str | os.PathLike) -> tuple[np.ndarray, float, list[str]]:
    """Reads any WFDB ECG record with the 12 standard leads: any rate of at least ``MIN_RATE``
    Hz, any length and lead order, lead names in any case, any signal file wfdb reads (``.dat``,
    the PhysioNet/CinC Challenge's MATLAB v4 ``.mat``).

    Args:
      path: record path without extension.

    Returns:
      (signal float32 [samples, 12] in mV with leads in ``LEADS`` order, sampling rate in Hz,
      notes: what was changed, e.g. extra leads dropped or units converted).

    Raises:
      PtbxlError: missing or unreadable files, a standard lead missing or repeated, a rate
        below ``MIN_RATE``, unknown units, no samples, non-finite values.
    """
    path = Path(path)
    who = str(path)
    record = _rdrecord(path, who)
    if record.fs < MIN_RATE:
        raise PtbxlError(f"{who}: sampling rate {record.fs:g} Hz; at least {MIN_RATE} Hz needed")
    names = [str(n).upper() for n in record.sig_name]
    missing = [lead for lead in LEADS if lead.upper() not in names]
    if missing:
        raise PtbxlError(
            f"{who}: {record.n_sig} leads {record.sig_name}; missing {missing} of the 12 "
            f"standard leads {list(LEADS)}"
        )
    if len(set(names)) != len(names):
        raise PtbxlError(f"{who}: repeated lead names {record.sig_name}")
    notes = []
    extra = [n for n in record.sig_name if n.upper() not in _LEAD_INDEX]
    if extra:
        notes.append(f"dropped leads {extra} that are not among the 12 standard leads")
    order = [names.index(lead.upper()) for lead in LEADS]
    if order != list(range(NUM_LEADS)):
        notes.append(f"reordered leads {[record.sig_name[i] for i in order]} to {list(LEADS)}")
    if not record.sig_len or record.p_signal is None:
        raise PtbxlError(f"{who}: the record has no samples")
    written = _units(path, record)
    units = [str(written[i]).strip() for i in order]
    unknown = sorted({u for u in units if u.upper() not in _TO_MV})
    if unknown:
        raise PtbxlError(f"{who}: unknown units {unknown}; expected mV (or \u00b5V, uV, V)")
    scale = np.array([_TO_MV[u.upper()] for u in units])
    signal = record.p_signal[:, order] * scale  # [samples, 12] mV
    if (scale != 1).any():
        notes.append(f"converted units {sorted(set(units))} to mV")
    if not np.isfinite(signal).all():
        raise PtbxlError(f"{who}: signal has NaN or infinite values (missing samples)")
    return np.ascontiguousarray(signal, dtype=np.float32), float(record.fs), notes
