"""ecg_keras.prepare: shards, manifest, idempotence, bad input, and surviving a kill."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from ecg_keras.data import preparation as prepare
from ecg_keras.data import ptbxl, tfrecord

from conftest import run_cli


def _prepare(src, out, **kwargs):
    kwargs.setdefault("num_workers", 1)
    return prepare.prepare(prepare.PrepareConfig(ptbxl_dir=str(src), output_dir=str(out), **kwargs))


def _read_all(out, manifest):
    num_classes = {t: len(v["classes"]) for t, v in manifest["tasks"].items()}
    fields = tfrecord.schema(manifest["sampling_rate"], num_classes)
    compression = "GZIP" if manifest["compression"] == "GZIP" else ""
    records = {}
    for shard in manifest["shards"]:
        data = tf.data.TFRecordDataset(str(out / shard["file"]), compression_type=compression)
        parsed = [tfrecord.parse_example(s, fields) for s in data]
        assert len(parsed) == shard["num_records"]
        for p in parsed:
            assert p["strat_fold"].numpy() == shard["fold"]
            records[int(p["ecg_id"])] = {k: v.numpy() for k, v in p.items()}
    return records


def test_tiny_dataset_round_trips_with_labels_and_stats(tiny_ptbxl, tmp_path):
    out = tmp_path / "tfr"
    manifest = _prepare(tiny_ptbxl, out, records_per_shard=2)
    assert manifest["num_records"] == 30 and manifest["sampling_rate"] == 100
    assert manifest["leads"] == list(ptbxl.LEADS)
    assert manifest["folds"] == {str(f): 3 for f in range(1, 11)}
    assert [s["file"] for s in manifest["shards"]][:2] == [
        "fold01-00000-of-00002.tfrecord",
        "fold01-00001-of-00002.tfrecord",
    ]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    super_ = manifest["tasks"]["superdiagnostic"]
    assert super_["classes"] == ["NORM", "MI", "STTC", "CD", "HYP"]
    assert super_["counts"] == {"NORM": 6, "MI": 6, "STTC": 6, "CD": 6, "HYP": 6}
    assert super_["unlabeled"] == 6

    records = _read_all(out, manifest)
    tasks, db = ptbxl.load_tasks(tiny_ptbxl), ptbxl.load_database(tiny_ptbxl)
    for ecg_id, rec in records.items():
        row = db.loc[ecg_id]
        signal = ptbxl.read_signal(ptbxl.record_path(tiny_ptbxl, row, 100), 100)
        np.testing.assert_array_equal(rec["signal"], signal)
        for task, vec in tasks.multi_hot(row.scp_codes).items():
            np.testing.assert_array_equal(rec[f"labels/{task}"], vec)
            assert rec[f"has_label/{task}"] == int(vec.any())
        assert rec["age"] == (-1.0 if ecg_id == 3 else row.age)
        assert rec["patient_id"] == row.patient_id and rec["sex"] == row.sex
    for shard in manifest["shards"]:
        assert prepare.sha256_file(out / shard["file"]) == shard["sha256"]


def test_real_subset_manifest(real_tfrecords):
    manifest = json.loads((real_tfrecords / "manifest.json").read_text())
    assert manifest["num_records"] == 1987
    assert manifest["folds"] == {
        "1": 212,
        "2": 178,
        "3": 177,
        "4": 193,
        "5": 207,
        "6": 156,
        "7": 196,
        "8": 171,
        "9": 242,
        "10": 255,
    }
    assert manifest["tasks"]["superdiagnostic"]["counts"] == {
        "NORM": 1051,
        "MI": 370,
        "STTC": 467,
        "CD": 410,
        "HYP": 215,
    }
    assert manifest["tasks"]["superdiagnostic"]["unlabeled"] == 22
    assert sum(s["num_records"] for s in manifest["shards"]) == 1987


def test_rerun_is_a_noop_and_overwrite_redoes(tiny_ptbxl, tmp_path, capsys):
    out = tmp_path / "tfr"
    first = _prepare(tiny_ptbxl, out, compression="GZIP")
    assert first["shards"][0]["file"].endswith(".tfrecord.gz")
    assert len(_read_all(out, first)) == 30
    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert _prepare(tiny_ptbxl, out, compression="GZIP") == first
    assert "nothing to do" in capsys.readouterr().out
    assert (out / "manifest.json").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="other settings.*--overwrite"):
        _prepare(tiny_ptbxl, out)
    second = _prepare(tiny_ptbxl, out, overwrite=True)
    assert second["shards"][0]["file"].endswith(".tfrecord")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["manifest.json"] + [s["file"] for s in second["shards"]]
    )


def test_missing_record_fails_or_is_skipped(tiny_ptbxl, tmp_path):
    (tiny_ptbxl / "records100/00000/00007_lr.dat").unlink()
    with pytest.raises(ptbxl.PtbxlError, match="ecg_id 7.*--skip_missing"):
        _prepare(tiny_ptbxl, tmp_path / "a")
    assert not (tmp_path / "a/manifest.json").exists()
    manifest = _prepare(tiny_ptbxl, tmp_path / "b", skip_missing=True)
    assert manifest["skipped_ecg_ids"] == [7] and manifest["num_records"] == 29


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncate", "ecg_id 14 .*unreadable signal"),
        ("nan", "ecg_id 14 .*NaN"),
        ("samples", "ecg_id 14 .*900 samples"),
        ("leads", "ecg_id 14 .*11 leads"),
    ],
)
def test_bad_record_stops_without_manifest(tiny_ptbxl, tmp_path, damage, message):
    from conftest import write_record

    path = tiny_ptbxl / "records100/00000/00014_lr"
    signal = np.zeros((1000, 12))
    if damage == "truncate":
        dat = path.with_suffix(".dat")
        dat.write_bytes(dat.read_bytes()[:100])
    elif damage == "nan":
        signal[5, 5] = np.nan
        write_record(path, signal, 100)
    elif damage == "samples":
        write_record(path, signal[:900], 100)
    else:
        write_record(path, signal[:, :11], 100, leads=ptbxl.LEADS[:11])
    with pytest.raises(ptbxl.PtbxlError, match=message):
        _prepare(tiny_ptbxl, tmp_path / "out")
    assert not (tmp_path / "out/manifest.json").exists()
    assert not list((tmp_path / "out").glob("fold04-*"))  # fold of ecg_id 14: never renamed


def test_missing_folder_and_csv(tmp_path, tiny_ptbxl):
    with pytest.raises(ptbxl.PtbxlError, match="nowhere.*ecg_keras.download"):
        _prepare(tmp_path / "nowhere", tmp_path / "out")
    (tiny_ptbxl / "scp_statements.csv").unlink()
    with pytest.raises(ptbxl.PtbxlError, match="scp_statements.csv: file not found"):
        _prepare(tiny_ptbxl, tmp_path / "out")


@pytest.mark.slow
def test_cli_success_noop_and_error(tiny_ptbxl, tmp_path):
    out = tmp_path / "tfr"
    done = run_cli("prepare", f"--ptbxl_dir={tiny_ptbxl}", f"--output_dir={out}", "--num_workers=2")
    assert done.returncode == 0, done.stderr
    assert "wrote 30 records in 10 shards" in done.stdout
    assert "records/s" in done.stderr  # the progress bar
    (tiny_ptbxl / "records100/00000/00009_lr.hea").unlink()
    failed = run_cli("prepare", f"--ptbxl_dir={tiny_ptbxl}", f"--output_dir={tmp_path / 'other'}")
    assert failed.returncode == 1
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ecg_id 9" in errors[0] and "00009_lr" in errors[0]
    bad_flag = run_cli(
        "prepare", f"--ptbxl_dir={tiny_ptbxl}", f"--output_dir={out}", "--sampling_rate=250"
    )
    assert bad_flag.returncode != 0 and "sampling_rate" in bad_flag.stderr


@pytest.mark.slow
def test_killed_run_leaves_no_manifest_and_no_partial_shard(real_ptbxl_dir, tmp_path):
    out = tmp_path / "tfr"
    args = [f"--ptbxl_dir={real_ptbxl_dir}", f"--output_dir={out}", "--records_per_shard=40"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecg_keras.prepare", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while not list(out.glob("fold0*.tfrecord")) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the reader processes die with it
    proc.wait()
    finals = list(out.glob("fold*.tfrecord"))
    assert finals, "no shard was finished before the kill"
    assert not (out / "manifest.json").exists()
    for shard in finals:  # every file under a final name is whole
        count = sum(1 for _ in tf.data.TFRecordDataset(str(shard)))
        assert count == 40 or shard.name.split("-")[1] == shard.name.split("-")[3][:5]
    manifest = _prepare(real_ptbxl_dir, out, records_per_shard=40, num_workers=2)
    assert manifest["num_records"] == 1987
    assert not list(out.glob(".*.tmp"))
