"""ecg_keras.compare: several configs x seeds trained, summarized, paired; finished runs reused."""

import json

import numpy as np
import pandas as pd
import pytest

from ecg_keras.analysis import comparison as compare
from ecg_keras.data import preparation as prepare
from ecg_keras.training import metrics

from conftest import CODE_SETS, make_tiny_ptbxl, run_cli, tiny_benchmark_split_tfrecords
from report_check import parse_report

# TINY_RHYTHM's split (test_train.py): every fold set holds SR and AFIB records.
FOLDS = ["--train_folds=1,2,5,6,7,10", "--val_folds=3,4", "--test_folds=8,9"]
TEST_IDS = [8, 9, 18, 19, 28, 29]  # folds 8 and 9 of the tiny folder: fold = (id - 1) % 10 + 1


@pytest.fixture(scope="module")
def flagfiles(tmp_path_factory):
    """Two tiny configs (1 epoch of vgg_tiny, different dropout and kernel) on tiny data."""
    root = tmp_path_factory.mktemp("compare")
    data = root / "tfr"
    ptbxl_dir = make_tiny_ptbxl(root / "ptbxl")
    prepare.prepare(prepare.PrepareConfig(str(ptbxl_dir), str(data), num_workers=1))
    common = f"--data_dir={data}\n--model=vgg_tiny\n--epochs=1\n--batch_size=8\n--task=rhythm\n"
    a, b = root / "drop1.cfg", root / "drop5k5.cfg"
    a.write_text(f"# config A\n{common}--dropout=0.1\n--workdir=runs/ignored\n")
    b.write_text(f"{common}--dropout=0.5\n--kernel_size=5\n")
    return root, a, b


def test_split_flagfiles_takes_every_config():
    argv = ["compare", "--flagfile=a.cfg", "--seeds=0,1", "--flagfile", "b.cfg", "-flagfile=c"]
    assert compare.split_flagfiles(argv) == (["a.cfg", "b.cfg", "c"], ["compare", "--seeds=0,1"])
    assert compare.split_flagfiles(["x", "--", "--flagfile=a"]) == ([], ["x", "--", "--flagfile=a"])
    assert compare.config_name("configs/vgg.cfg") == "vgg"


@pytest.mark.slow
def test_paired_bootstrap_identical_and_clearly_better():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (60, 3)).astype(float)
    noise = rng.random((60, 3))
    same = metrics.paired_bootstrap_macro_auc(y, noise, noise.copy())
    assert same["difference"] == same["mean"] == same["low"] == same["high"] == 0.0
    assert same["a_wins"] == 0.5 and same["resamples"] == 100  # a tie counts half
    better = metrics.paired_bootstrap_macro_auc(y, 0.6 * y + 0.4 * noise, noise)
    assert better["a_wins"] == 1.0 and 0 < better["low"] <= better["mean"] <= better["high"]
    worse = metrics.paired_bootstrap_macro_auc(y, noise, 0.6 * y + 0.4 * noise)
    assert worse["a_wins"] == 0.0 and worse["mean"] == pytest.approx(-better["mean"])
    # The resamples are bootstrap_macro_auc's: the same draws and redraw rule.
    indices = list(metrics.bootstrap_indices(y, 100, seed=0))
    scores = [metrics.macro_auc(y[i], noise[i]) for i in indices]
    assert metrics.bootstrap_macro_auc(y, noise) == pytest.approx(
        tuple(np.quantile(scores, [0.05, 0.95]))
    )
    assert all(0 < y[i].sum(0).min() and y[i].sum(0).max() < len(y) for i in indices)
    # 30 classes with one positive each: a resample holding all 30 has odds ~1e-12.
    with pytest.raises(ValueError, match="too few"):
        list(metrics.bootstrap_indices(np.eye(30), 2))


def _labels(ids):
    """The tiny folder's rhythm labels [AFIB, SR], straight from its SCP code sets."""
    codes = [CODE_SETS[(i - 1) % len(CODE_SETS)] for i in ids]
    return np.array([[float("AFIB" in c), float("SR" in c)] for c in codes])


@pytest.mark.slow
def test_compare_trains_summarizes_and_reuses(flagfiles):
    root, a, b = flagfiles
    out = root / "cmp"
    args = [f"--flagfile={a}", f"--flagfile={b}", "--seeds=0,1", f"--output_dir={out}", *FOLDS]
    done = run_cli("compare", *args)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[4/4] drop5k5 seed 1" in done.stdout and "4 runs trained, 0 reused" in done.stdout
    runs = {(n, s): out / n / f"seed{s}" for n in ("drop1", "drop5k5") for s in (0, 1)}
    results = {key: json.loads((w / "metrics.json").read_text()) for key, w in runs.items()}
    # Each run is train's: the flagfile, then the flags given to compare, then seed and workdir.
    flags_cfg = (runs["drop1", 1] / "flags.cfg").read_text()
    for line in ("--seed=1", "--dropout=0.1", "--train_folds=1,2,5,6,7,10", "--epochs=1"):
        assert line in flags_cfg.splitlines(), line
    assert f"--workdir={runs['drop1', 1]}" in flags_cfg
    assert "--kernel_size=5" in (runs["drop5k5", 0] / "flags.cfg").read_text()

    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == [
        "config", "flagfile", "seeds", "runs",
        "val_macro_auc_mean", "val_macro_auc_sd", "test_macro_auc_mean", "test_macro_auc_sd",
        "test_macro_auc_seed_avg", "test_auc_AFIB_mean", "test_auc_SR_mean",
        "seconds_per_epoch_mean", "seconds_per_epoch_sd",
        "train_records_per_s_mean", "train_records_per_s_sd", "train_records",
    ]  # fmt: skip
    assert summary["config"].tolist() == ["drop1", "drop5k5"]
    assert summary["train_records"].tolist() == [18, 18]  # 6 folds x 3 records, all labelled
    mean_probs = {}
    for _, row in summary.iterrows():
        own = [results[row["config"], s] for s in (0, 1)]
        for split in ("val", "test"):
            values = [r[split]["macro_auc"] for r in own]
            assert row[f"{split}_macro_auc_mean"] == pytest.approx(np.mean(values), abs=1e-6)
            assert row[f"{split}_macro_auc_sd"] == pytest.approx(np.std(values, ddof=1), abs=1e-6)
        epochs = [r["epochs_trained"] - r["resumed_at_epoch"] for r in own]
        seconds = np.mean([r["train_seconds"] / e for r, e in zip(own, epochs, strict=True)])
        assert row["seconds_per_epoch_mean"] == pytest.approx(seconds, abs=1e-6)
        frames = [pd.read_csv(runs[row["config"], s] / "predictions_test.csv") for s in (0, 1)]
        assert frames[0]["ecg_id"].tolist() == TEST_IDS
        mean_probs[row["config"]] = (frames[0].iloc[:, 1:] + frames[1].iloc[:, 1:]).to_numpy() / 2
        y = _labels(TEST_IDS)
        auc = metrics.macro_auc(y, mean_probs[row["config"]])
        assert row["test_macro_auc_seed_avg"] == pytest.approx(auc, abs=1e-6)

    pairs = pd.read_csv(out / "pairs.csv")
    assert len(pairs) == 1 and (pairs["a"][0], pairs["b"][0]) == ("drop1", "drop5k5")
    expected = metrics.paired_bootstrap_macro_auc(y, mean_probs["drop1"], mean_probs["drop5k5"])
    for column, key in (("mean_difference", "mean"), ("low", "low"), ("a_wins", "a_wins")):
        assert pairs[column][0] == pytest.approx(expected[key], abs=1e-6)
    assert pairs["records"][0] == 6 and pairs["resamples"][0] == 100
    assert len(pd.read_csv(out / "runs.csv")) == 4
    assert "| drop1 | drop5k5 |" in (out / "summary.md").read_text()
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    page = parse_report(out / "report.html")  # summary.md's tables and figure, per-run table
    assert len(page.sections["metrics"]["images"]) == 1
    assert {"drop1", "drop5k5"} <= set(page.sections["metrics"]["cells"])
    assert page.sections["runs"]["cells"].count("drop5k5") == 2  # one row per seed
    assert "--dropout=0.1" in page.sections["config"]["text"]

    # The same command again trains nothing: every run is reused, its model untouched.
    stamps = {key: (w / "model.keras").stat().st_mtime_ns for key, w in runs.items()}
    again = run_cli("compare", *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("finished before, reused") == 4
    assert "0 runs trained, 4 reused" in again.stdout
    assert {key: (w / "model.keras").stat().st_mtime_ns for key, w in runs.items()} == stamps


@pytest.mark.slow
def test_bad_input_fails_before_training(flagfiles):
    root, a, b = flagfiles
    out = root / "bad"
    missing = run_cli(
        "compare", f"--flagfile={a}", f"--flagfile={root / 'nope.cfg'}", f"--output_dir={out}"
    )
    assert missing.returncode == 1 and f"error: --flagfile={root / 'nope.cfg'}" in missing.stderr
    other = root / "other_task.cfg"
    other.write_text(b.read_text() + "--task=superdiagnostic\n")
    task = run_cli("compare", f"--flagfile={a}", f"--flagfile={other}", f"--output_dir={out}")
    assert task.returncode == 1 and "differ in --task" in task.stderr and str(other) in task.stderr
    unknown = root / "unknown.cfg"
    unknown.write_text("--tuner=random\n")
    bad = run_cli("compare", f"--flagfile={unknown}", f"--output_dir={out}")
    assert bad.returncode == 1 and str(unknown) in bad.stderr and "tuner" in bad.stderr
    seed = run_cli("compare", f"--flagfile={a}", "--seed=3", f"--output_dir={out}")
    assert seed.returncode == 1 and "error: --seed is set by compare" in seed.stderr
    assert run_cli("compare", f"--flagfile={a}").stderr.startswith(
        "error: --output_dir is required"
    )
    assert not out.exists()
    edited = root / "edited"
    (edited / "drop1" / "seed0").mkdir(parents=True)
    (edited / "drop1" / "seed0" / "flags.cfg").write_text("--epochs=99\n")
    changed = run_cli("compare", f"--flagfile={a}", "--seeds=0", f"--output_dir={edited}")
    assert changed.returncode == 1 and "holds a different run" in changed.stderr
    assert "--overwrite" in changed.stderr and str(a) in changed.stderr


def test_splits_options_are_checked(flagfiles):
    root, a, b = flagfiles
    with pytest.raises(ValueError, match="distinct names among standard, cross"):
        compare.CompareOptions((str(a),), (0,), str(root / "x"), splits=("standard", "other"))
    with pytest.raises(ValueError, match="--splits sets each split's folds"):
        compare.CompareOptions(
            (str(a),), (0,), str(root / "x"), overrides=("--val_folds=3",), splits=("cross",)
        )
    options = compare.CompareOptions((str(a), str(b)), (0,), str(root / "x"), splits=("cross",))
    cross = compare.split_options(options)["cross"]
    assert cross.output_dir == str(root / "x" / "cross")
    assert cross.overrides == ("--train_folds=1,2,3,4,5,6,7", "--val_folds=8", "--test_folds=9")


@pytest.mark.slow
def test_compare_runs_both_splits_side_by_side(tmp_path):
    data = tiny_benchmark_split_tfrecords(tmp_path)  # every fold holds every code set
    common = f"--data_dir={data}\n--model=vgg_tiny\n--epochs=1\n--batch_size=8\n"
    a, b = tmp_path / "a.cfg", tmp_path / "b.cfg"
    a.write_text(f"{common}--dropout=0.1\n")
    b.write_text(f"{common}--dropout=0.5\n")
    out = tmp_path / "cmp"
    args = [f"--flagfile={a}", f"--flagfile={b}", "--seeds=0", f"--output_dir={out}"]
    done = run_cli("compare", *args, "--splits=standard,cross")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4 runs trained, 0 reused" in done.stdout
    for split, (val, test) in {"standard": (9, 10), "cross": (8, 9)}.items():
        for config in ("a", "b"):
            run = json.loads((out / split / config / "seed0" / "run.json").read_text())["config"]
            assert (run["val_folds"], run["test_folds"]) == ([val], [test])
        assert (out / split / "summary.md").is_file() and (out / split / "report.html").is_file()
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["split"]) == ["standard", "standard", "cross", "cross"]
    pairs = pd.read_csv(out / "pairs.csv")
    assert list(pairs["split"]) == ["standard", "cross"]
    own = [pd.read_csv(out / s / "pairs.csv")["records"][0] for s in ("standard", "cross")]
    assert list(pairs["records"]) == own and min(own) >= 3  # each split's own test fold
    standard = pd.read_csv(out / "standard" / "summary.csv")
    assert np.allclose(summary["val_macro_auc_mean"][:2], standard["val_macro_auc_mean"])
    md = (out / "summary.md").read_text()
    assert "| config | standard val | standard test | cross val | cross test |" in md
    assert "**cross**: paired bootstrap" in md and "cross/comparison.png" in md
    report = parse_report(out / "report.html")
    assert sum(len(s["images"]) for s in report.sections.values()) >= 2  # both splits' plots
    again = run_cli("compare", *args, "--splits=standard,cross")
    assert again.returncode == 0 and "0 runs trained, 4 reused" in again.stdout
