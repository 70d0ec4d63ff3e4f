"""Training beyond PTB-XL: ``prepare --input_format=challenge`` on the real Challenge-layout
records in ../shared/data/cinc, and ``train --data_dir=... --init_from=RUN`` (fine-tuning)."""

import csv
import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from ecg_keras.data import challenge, ptbxl, resampling, snomed, tfrecord
from ecg_keras.data import preparation as prepare

from conftest import run_cli

SPLIT = {"train_folds": (1, 2, 3, 4, 5, 6, 7), "val_folds": (8, 9), "test_folds": (10,)}


@pytest.fixture(scope="module")
def cinc_tfrecords(real_cinc_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cinc") / "tfr"
    config = prepare.PrepareConfig(
        None, str(out), input_format="challenge", input_dir=str(real_cinc_dir), num_workers=1
    )
    return out, prepare.prepare(config)


def _examples(data_dir, manifest):
    fields = tfrecord.schema(
        manifest["sampling_rate"], {t: len(v["classes"]) for t, v in manifest["tasks"].items()}
    )
    files = [str(data_dir / s["file"]) for s in manifest["shards"]]
    for raw in tf.data.TFRecordDataset(files):
        yield {k: v.numpy() for k, v in tfrecord.parse_example(raw, fields).items()}


def test_prepare_challenge_writes_every_record_with_labels_folds_and_signals(
    cinc_tfrecords, real_cinc_dir
):
    out, manifest = cinc_tfrecords
    names = challenge.record_names(real_cinc_dir)
    assert manifest["num_records"] == len(names) == 57 and not manifest["skipped_records"]
    assert manifest["sampling_rate"] == 100 and manifest["num_samples"] == 1000
    assert sorted(manifest["folds"]) == sorted(str(f) for f in range(1, 11))
    rows = {int(r["ecg_id"]): r for r in csv.DictReader(open(out / "records.csv"))}
    seen = 0
    for example in _examples(out, manifest):
        row = rows[int(example["ecg_id"])]
        assert int(row["fold"]) == example["strat_fold"] and row["written"] == "1"
        header = (real_cinc_dir / f"{row['record']}.hea").read_text()
        codes = snomed.dx_codes(header)
        status = snomed.superclass_status(codes)
        # superdiagnostic from the SNOMED table; unknown status -> no label, not negatives
        assert example["has_label/superdiagnostic"] == int(status is not None)
        if status is not None:
            assert list(example["labels/superdiagnostic"]) == [
                status[s] for s in ptbxl.SUPERCLASSES
            ]
        scored = {name for name, cs in challenge.SCORED if set(cs) & set(codes)}
        vec = example["labels/challenge"]
        got = {c for c, v in zip(challenge.CLASSES["challenge"], vec, strict=True) if v}
        assert got == scored and example["has_label/challenge"] == 1
        # The signal: the record read as predict reads it, at 100 Hz, its first 10 s, within
        # the 0.5 uV of the 1 uV quantization (plus float32 rounding of values up to ~10 mV).
        signal, fs, _ = ptbxl.read_any_record(real_cinc_dir / row["record"])
        expected, notes = resampling.fit(signal, fs, 100, 1000)
        assert np.abs(example["signal"] - expected).max() <= 0.5e-3 + 1e-5
        assert ("cropped" in row["notes"]) == (len(signal) / fs > 10)
        seen += 1
    assert seen == 57
    counts = manifest["tasks"]["superdiagnostic"]
    assert counts["unlabeled"] == 57 - 42  # 42 records have a superclass status (test_external)
    # Stratified: a class with at least as many positives as folds reaches every fold.
    folds = np.array([int(rows[i]["fold"]) for i in sorted(rows)])
    entries = [challenge.read_entry(real_cinc_dir, rows[i]["record"]) for i in sorted(rows)]
    labels = challenge.label_matrix(entries)
    for k in np.flatnonzero(labels.sum(0) >= 10):
        assert len(set(folds[labels[:, k] == 1])) >= 8, k


def test_folds_are_seeded_and_a_rerun_is_a_noop(cinc_tfrecords, real_cinc_dir):
    out, manifest = cinc_tfrecords
    names = challenge.record_names(real_cinc_dir)
    entries = [challenge.read_entry(real_cinc_dir, n) for n in names]
    labels = challenge.label_matrix(entries)
    a, b = challenge.assign_folds(labels, 10, 0), challenge.assign_folds(labels, 10, 0)
    assert (a == b).all() and not (a == challenge.assign_folds(labels, 10, 1)).all()
    config = prepare.PrepareConfig(
        None, str(out), input_format="challenge", input_dir=str(real_cinc_dir), num_workers=1
    )
    assert prepare.prepare(config)["shards"] == manifest["shards"]  # complete: nothing redone
    other = prepare.PrepareConfig(
        None, str(out), input_format="challenge", input_dir=str(real_cinc_dir), fold_seed=1
    )
    with pytest.raises(ValueError, match="other settings"):
        prepare.prepare(other)
    with pytest.raises(ValueError, match="--input_dir is required"):
        prepare.PrepareConfig(None, str(out), input_format="challenge")


def test_prepare_challenge_cli_quirks_bad_records_and_no_half_written_output(
    real_cinc_dir, tmp_path
):
    src = tmp_path / "src" / "georgia"  # nested: the Challenge download keeps databases apart
    src.mkdir(parents=True)
    for name in ("E00001", "E00002", "Q0001", "S0001", "JS00001", "JS00002"):
        for suffix in (".hea", ".mat"):
            shutil.copy(real_cinc_dir / f"{name}{suffix}", src / f"{name}{suffix}")
    header = (src / "E00001.hea").read_text()  # Georgia's quirk: the record line names .mat
    (src / "E00001.hea").write_text(header.replace("E00001 ", "E00001.mat ", 1))
    (src / "BAD1.hea").write_text("BAD1 12 500 5000\n#Dx: 426783006\n")  # no signal lines
    out = tmp_path / "tfr"
    failed = run_cli(
        "prepare", "--input_format=challenge", f"--input_dir={tmp_path / 'src'}",
        f"--output_dir={out}", "--num_folds=2", "--num_workers=2",
    )  # fmt: skip
    assert failed.returncode != 0
    assert "BAD1" in failed.stderr and "--skip_missing" in failed.stderr
    assert not (out / "manifest.json").exists()  # nothing that looks complete
    done = run_cli(
        "prepare", "--input_format=challenge", f"--input_dir={tmp_path / 'src'}",
        f"--output_dir={out}", "--num_folds=2", "--skip_missing",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_records"] == 6
    assert [s["record"] for s in manifest["skipped_records"]] == ["georgia/BAD1"]
    rows = {r["record"]: r for r in csv.DictReader(open(out / "records.csv"))}
    assert rows["georgia/E00001"]["written"] == "1"  # the quirk is read, not refused
    assert "resampled from 1000 Hz" in rows["georgia/S0001"]["notes"]  # PTB, 15 -> 12 leads
    assert "cropped" in rows["georgia/S0001"]["notes"]


@pytest.mark.slow
def test_fine_tuning_from_a_ptbxl_run_starts_from_its_weights(
    trained_run, cinc_tfrecords, tmp_path
):
    import keras

    from ecg_keras.config import TrainConfig
    from ecg_keras.training import experiment, recipe, warm_start
    from ecg_keras.training.run import Run

    source_dir, _ = trained_run
    data_dir, _ = cinc_tfrecords
    folds = [f"--{k}={','.join(map(str, v))}" for k, v in SPLIT.items()]
    common = ["--model=vgg_small", "--epochs=1", "--batch_size=16", "--features_in=model"]
    tuned = tmp_path / "tuned"
    done = run_cli(
        "train", f"--data_dir={data_dir}", f"--init_from={source_dir}", f"--workdir={tuned}",
        *common, *folds,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "head copied" in done.stdout  # same five superclasses: the PTB-XL head is kept
    metrics = json.loads((tuned / "metrics.json").read_text())
    assert metrics["init_from"] == str(source_dir)
    config = TrainConfig(
        data_dir=str(data_dir), model="vgg_small", epochs=1, batch_size=16,
        features_in="model", **SPLIT,
    )  # fmt: skip
    experiment.train_and_evaluate(config, tmp_path / "scratch")
    first = {}
    for name in ("tuned", "scratch"):
        with open(tmp_path / name / "history.csv") as f:
            first[name] = float(next(csv.DictReader(f))["val_loss"])
    print("first-epoch validation loss", first)
    assert first["tuned"] < first["scratch"], first

    # The Challenge's 26 classes: the trunk is the PTB-XL run's, the head is new.
    import dataclasses

    run = Run.prepare(dataclasses.replace(config, task="challenge", init_from=str(source_dir)))
    source = warm_start.Source.load(source_dir)
    assert all(np.array_equal(a, b) for a, b in zip(run.stats, source.stats, strict=True))
    network = recipe.build_model(run)
    old = keras.models.load_model(source_dir / "model.keras", compile=False)
    report = source.copy_into(network, run.classes)
    assert report["head"] == "new" and report["new"] == ["logits"]
    assert network.get_layer("logits").output.shape[-1] == 26
    trunk = report["copied"]
    assert len(trunk) >= 5
    for name in trunk:
        new, kept = network.get_layer(name).get_weights(), old.get_layer(name).get_weights()
        for a, b in zip(new, kept, strict=True):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="reads other inputs"):
        Run.prepare(
            dataclasses.replace(
                config, init_from=str(source_dir),
                features=dataclasses.replace(config.features, hop_seconds=0.16),
            )
        )  # fmt: skip
    with pytest.raises(ValueError, match="run.json not found"):
        Run.prepare(dataclasses.replace(config, init_from=str(tmp_path / "nowhere")))


def test_record_names_follow_physionet_records_files_into_subfolders(tmp_path):
    # PhysioNet's multi-level databases (the Challenge 2021 download) list folders in RECORDS.
    (tmp_path / "training" / "a" / "g1").mkdir(parents=True)
    (tmp_path / "training" / "b").mkdir()
    (tmp_path / "RECORDS").write_text("training/a/\n# comment\ntraining/b/\n")
    (tmp_path / "training" / "a" / "RECORDS").write_text("g1/\n")
    (tmp_path / "training" / "a" / "g1" / "RECORDS").write_text("A2\nA1\n")
    for name in ("training/a/g1/A1", "training/a/g1/A2", "training/b/B1", "training/b/B0"):
        (tmp_path / f"{name}.hea").write_text("")
    assert challenge.record_names(tmp_path) == [
        "training/a/g1/A2", "training/a/g1/A1", "training/b/B0", "training/b/B1",
    ]  # fmt: skip
    (tmp_path / "RECORDS").write_text("\n")
    with pytest.raises(ValueError, match="no records"):
        challenge.record_names(tmp_path)
