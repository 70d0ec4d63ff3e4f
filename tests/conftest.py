"""Shared fixtures: a tiny PTB-XL-shaped folder written with wfdb, and the real subset."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Every training and evaluation writes report.html; its explanations (seconds each) are left
# out of the runs the suite trains, child processes included, and tested on their own
# (test_report.py asks for them explicitly).
os.environ.setdefault("ECG_KERAS_REPORT_EXPLAIN_CLASSES", "0")
# Under pytest-xdist (the README's ``-n 2``) two workers share the two cores: one TensorFlow
# thread pool thread each (children inherit it) instead of two each, oversubscribed.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

from ecg_keras.data import ptbxl  # noqa: E402

# A handful of real SCP statements (columns as in PhysioNet's scp_statements.csv) that cover
# every superclass and the form and rhythm tasks.
STATEMENTS = pd.DataFrame(
    [
        ("NORM", 1.0, None, None, "NORM", "NORM"),
        ("IMI", 1.0, None, None, "MI", "IMI"),
        ("NDT", 1.0, 1.0, None, "STTC", "STTC"),
        ("CLBBB", 1.0, None, None, "CD", "CLBBB"),
        ("LVH", 1.0, None, None, "HYP", "LVH"),
        ("LVOLT", None, 1.0, None, None, None),
        ("SR", None, None, 1.0, None, None),
        ("AFIB", None, None, 1.0, None, None),
    ],
    columns=["code", "diagnostic", "form", "rhythm", "diagnostic_class", "diagnostic_subclass"],
).set_index("code")
CODE_SETS = [
    {"NORM": 100.0, "SR": 0.0},
    {"IMI": 50.0, "SR": 0.0},
    {"NDT": 100.0, "LVOLT": 0.0, "AFIB": 0.0},
    {"CLBBB": 100.0, "LVH": 35.0, "SR": 0.0},
    {"SR": 0.0},  # no diagnostic statement: unlabeled for the diagnostic tasks
]


def run_cli(command: str, *args, env=None, timeout=600, **kwargs) -> subprocess.CompletedProcess:
    """``python -m ecg_keras.COMMAND ARGS`` (``command`` may also be the full module name)
    in a child process, output captured as text, TensorFlow's info logs off; ``env`` adds to
    (or overrides) this process's environment."""
    module = command if command.startswith("ecg_keras.") else f"ecg_keras.{command}"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True, text=True, timeout=timeout, env=env, **kwargs,
    )  # fmt: skip


def assert_float_link(got, reference, calibration=None, slack=0.0, err_msg="") -> None:
    """``got`` within the export check's float-link contract of ``reference`` (calibrated
    probabilities, float [n, classes]): |dz| <= FLOAT_LINK (1 + |z|) in logit, mapped through the
    calibration's slope (``deploy/export_check.py`` says why that holds on every x86 CPU and
    kernel order); ``slack`` adds a known rounding (e.g. of a CSV) in probability."""
    from ecg_keras.deploy import export_check

    got, reference = np.asarray(got, np.float64), np.asarray(reference, np.float64)
    bound = export_check.float_link_bound(reference, calibration) + slack
    excess = np.abs(got - reference) - bound
    worst = np.unravel_index(np.argmax(excess), excess.shape)
    assert (excess <= 0).all(), (
        f"{err_msg}: |difference| {abs(got - reference)[worst]:.3g} at {worst} exceeds the "
        f"float-link bound {bound[worst]:.3g}"
    )


def write_record(path: Path, signal: np.ndarray, fs: int, leads=ptbxl.LEADS) -> None:
    """Writes a WFDB record (format 16, 1000 adu/mV like PTB-XL) at ``path`` (no extension)."""
    import wfdb

    path.parent.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(
        path.name,
        fs=fs,
        units=["mV"] * signal.shape[1],
        sig_name=list(leads),
        p_signal=signal.astype(np.float64),
        fmt=["16"] * signal.shape[1],
        adc_gain=[1000.0] * signal.shape[1],
        baseline=[0] * signal.shape[1],
        write_dir=str(path.parent),
    )


def make_tiny_ptbxl(root: Path, num_records: int = 30, rates=(100,), seed: int = 0) -> Path:
    """Writes a PTB-XL-shaped folder: CSVs and records; fold = (ecg_id - 1) % 10 + 1.

    Each record is a sine whose frequency depends on its first SCP code, plus noise.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for ecg_id in range(1, num_records + 1):
        codes = CODE_SETS[(ecg_id - 1) % len(CODE_SETS)]
        folder = f"{(ecg_id // 1000) * 1000:05d}"
        row = {
            "ecg_id": ecg_id,
            "patient_id": 1000.0 + ecg_id,
            "age": np.nan if ecg_id == 3 else 40.0 + ecg_id,
            "sex": ecg_id % 2,
            "scp_codes": repr(codes),
            "strat_fold": (ecg_id - 1) % 10 + 1,
            "filename_lr": f"records100/{folder}/{ecg_id:05d}_lr",
            "filename_hr": f"records500/{folder}/{ecg_id:05d}_hr",
        }
        rows.append(row)
        freq = 2.0 + 3.0 * ((ecg_id - 1) % len(CODE_SETS))
        for fs in rates:
            t = np.arange(fs * 10) / fs
            signal = 0.5 * np.sin(2 * np.pi * freq * t)[:, None] * np.linspace(0.5, 1.5, 12)
            signal = signal + 0.01 * rng.standard_normal(signal.shape)
            suffix = "lr" if fs == 100 else "hr"
            write_record(root / row[f"filename_{suffix}"], signal, fs)
    pd.DataFrame(rows).to_csv(root / ptbxl.DATABASE_CSV, index=False)
    STATEMENTS.to_csv(root / ptbxl.STATEMENTS_CSV)
    return root


@pytest.fixture
def tiny_ptbxl(tmp_path) -> Path:
    return make_tiny_ptbxl(tmp_path / "ptbxl")


@pytest.fixture(scope="session")
def real_ptbxl_dir() -> Path:
    path = ptbxl.default_dir()
    assert path is not None and (path / ptbxl.DATABASE_CSV).is_file(), (
        "the real PTB-XL subset is needed: set PTBXL_DIR or keep ../shared/data/ptbxl"
    )
    return path


@pytest.fixture(scope="session")
def real_cinc_dir() -> Path:
    """The 57 real PhysioNet/CinC Challenge-layout records in ``../shared/data/cinc``."""
    path = Path(
        os.environ.get("CINC_DIR", Path(__file__).resolve().parents[2] / "shared/data/cinc")
    )
    assert (path / "dx_mapping.csv").is_file(), f"the Challenge-layout records are needed: {path}"
    return path


@pytest.fixture(scope="session")
def real_tfrecords(real_ptbxl_dir, tmp_path_factory) -> Path:
    """The real subset prepared once per test session (about 20 s on 2 cores). Under
    pytest-xdist the workers share one copy: the first to take the lock prepares it, the
    others find it complete (``prepare`` is a no-op on a complete folder)."""
    import fcntl

    from ecg_keras.data import preparation as prepare

    if "PYTEST_XDIST_WORKER" not in os.environ:
        out = tmp_path_factory.mktemp("tfrecords") / "ptbxl100"
        prepare.prepare(prepare.PrepareConfig(ptbxl_dir=str(real_ptbxl_dir), output_dir=str(out)))
        return out
    shared = tmp_path_factory.getbasetemp().parent  # this session's, common to its workers
    out = shared / "tfrecords_shared" / "ptbxl100"
    with open(shared / "tfrecords_shared.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        prepare.prepare(prepare.PrepareConfig(ptbxl_dir=str(real_ptbxl_dir), output_dir=str(out)))
    return out


@pytest.fixture(scope="session")
def trained_run(real_tfrecords, tmp_path_factory):
    """A short real training run: vgg_small, 4 epochs on folds 1-8 (about 2 minutes), with
    the spectrogram computed in the model (``--features_in=model``) and the machine's mixed
    policy (``--precision=auto``: bfloat16 on CPUs with AVX512_BF16 but no AMX, else float32), so
    that the learned-signal and export tests cover both (other runs use the defaults).

    Returns (workdir, metrics.json content).
    """
    from ecg_keras.config import TrainConfig
    from ecg_keras.training import experiment as train

    workdir = tmp_path_factory.mktemp("run") / "vgg"
    config = TrainConfig(
        data_dir=str(real_tfrecords),
        model="vgg_small",
        epochs=4,
        features_in="model",
        # ECG_KERAS_TEST_PRECISION=float32 reruns the export, predict and calibration tests on
        # a float32-trained run (the contract must hold for both; docs/results.md).
        precision=os.environ.get("ECG_KERAS_TEST_PRECISION", "auto"),
    )
    result = train.train_and_evaluate(config, workdir, flags_text="--epochs=4\n")
    return workdir, result


@pytest.fixture(scope="session")
def exported(trained_run, tmp_path_factory):
    """``trained_run`` exported once, with every TFLite mode (about a minute).

    The run is copied first, so that tests which re-evaluate ``trained_run`` cannot change
    the thresholds under the export. Returns (export.json content, version folder, workdir).
    """
    import shutil

    from ecg_keras.deploy import exporting as export

    root = tmp_path_factory.mktemp("export")
    workdir = root / "run"
    shutil.copytree(trained_run[0], workdir, ignore=shutil.ignore_patterns("logs", "backup"))
    config = export.ExportConfig(
        output_dir=str(root / "saved_models" / "ecg"), workdir=str(workdir), calibration_records=100
    )
    result = export.export(config)
    return result, root / "saved_models" / "ecg" / str(result["version"]), workdir


def tiny_benchmark_split_tfrecords(root: Path) -> Path:
    """50 tiny records prepared into ``root/tfr``, folds rewritten to ``(ecg_id - 1) // 5 + 1``:
    every fold then holds one record of each code set, so that the benchmark split (1-8 / 9 /
    10) has positives and negatives of every superclass (``make_tiny_ptbxl``'s own folds put
    each code set in two folds only)."""
    from ecg_keras.data import preparation as prepare

    make_tiny_ptbxl(root / "ptbxl", num_records=50)
    database = pd.read_csv(root / "ptbxl" / ptbxl.DATABASE_CSV)
    database["strat_fold"] = (database["ecg_id"] - 1) // 5 + 1
    database.to_csv(root / "ptbxl" / ptbxl.DATABASE_CSV, index=False)
    prepare.prepare(prepare.PrepareConfig(str(root / "ptbxl"), str(root / "tfr"), num_workers=1))
    return root / "tfr"


@pytest.fixture(scope="session")
def tiny_signal_run(tmp_path_factory):
    """``resnet1d_tiny`` (a 1D model on the raw signal) trained 6 epochs with ``--select=last``
    and validation after epochs 4 and 6 only (``--validation_freq=4``) on tiny records (about
    20 s).

    50 records whose folds are rewritten to ``(ecg_id - 1) // 5 + 1``: every fold then holds
    one record of each code set, so that the benchmark split (1-8 / 9 / 10) has positives and
    negatives of every superclass in validation and test (``make_tiny_ptbxl``'s own folds put
    each code set in two folds only). Returns (workdir, metrics.json content).
    """
    from ecg_keras import config_flags
    from ecg_keras.config import TrainConfig
    from ecg_keras.training import experiment as train

    root = tmp_path_factory.mktemp("signal")
    config = TrainConfig(
        data_dir=str(tiny_benchmark_split_tfrecords(root)),
        model="resnet1d_tiny",
        epochs=6,
        batch_size=8,
        learning_rate=1e-2,
        adam_beta2=0.99,
        dropout=0.5,
        select="last",
        validation_freq=4,
    )
    workdir = root / "run"
    text = config_flags.flags_text(config, str(workdir))
    return workdir, train.train_and_evaluate(config, workdir, flags_text=text)


@pytest.fixture
def parsed_flags():
    """The tune flags (a superset of train's) defined once per process; yields a parser of
    flag lines into the global ``absl.flags.FLAGS``, cleared afterwards."""
    from absl import flags

    from ecg_keras import tune

    if "input_choices" not in flags.FLAGS:
        tune.define_flags()

    def parse(*args):
        flags.FLAGS.unparse_flags()
        flags.FLAGS(["tune", *args])
        return flags.FLAGS

    yield parse
    flags.FLAGS.unparse_flags()


# Fixtures that train, prepare the real subset or export: a test that uses one is slow.
SLOW_FIXTURES = {
    "real_tfrecords", "trained_run", "exported", "tiny_signal_run", "members", "complex_run",
}  # fmt: skip


# Session fixtures that are expensive to build: with ``-n 2`` (pytest-xdist, ``--dist
# loadgroup``), every test that uses one runs on the same worker, so each is built once; the
# first match names the group (``exported`` builds on ``trained_run``, so they share one).
SHARED_BUILDS = (
    ("trained_run", "trained_run"), ("exported", "trained_run"),
    ("tiny_signal_run", "tiny_signal_run"), ("members", "members"), ("complex_run", "complex_run"),
)  # fmt: skip


def pytest_collection_modifyitems(config, items):
    """Marks ``slow`` every test that uses a SLOW_FIXTURES fixture (directly or through
    another fixture); others are marked by hand with ``@pytest.mark.slow``. Puts the users of
    each SHARED_BUILDS fixture in one xdist group."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if SLOW_FIXTURES & names:
            item.add_marker(pytest.mark.slow)
        group = next((g for fixture, g in SHARED_BUILDS if fixture in names), None)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
