"""ecg_keras.visualize: a readable PNG from TFRecords and from WFDB, and clean CLI errors."""

import os
import subprocess
import sys

import numpy as np
import pytest
from matplotlib import image

from ecg_keras.analysis import ecg_figure as visualize
from ecg_keras.config import FeatureConfig
from ecg_keras.data import ptbxl


def _check_png(path, min_bytes):
    assert path.is_file() and path.stat().st_size > min_bytes, path
    pixels = image.imread(path)[..., :3]  # float RGB in [0, 1]
    assert pixels.std() > 0.05
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 100  # waves, colormap, text
    assert not list(path.parent.glob(".*.tmp"))


def test_renders_real_record_normalized(real_tfrecords, tmp_path):
    record = visualize.load_record(real_tfrecords, 1, "superdiagnostic")
    assert record.signal.shape == (1000, 12) and record.signal.dtype == np.float32
    assert record.sampling_rate == 100 and record.labels == ("NORM",)
    out = visualize.visualize(1, tmp_path / "ecg1.png", FeatureConfig(), data_dir=real_tfrecords)
    assert out == tmp_path / "ecg1.png"
    _check_png(out, 50_000)


@pytest.mark.slow
def test_renders_wfdb_record_unnormalized(tiny_ptbxl, tmp_path):
    out = visualize.visualize(
        3, tmp_path / "png" / "ecg3.png", FeatureConfig(), ptbxl_dir=tiny_ptbxl
    )
    _check_png(out, 50_000)
    record = visualize.load_wfdb_record(tiny_ptbxl, 3, "form", 100)
    assert record.labels == ("LVOLT", "NDT") and record.signal.shape == (1000, 12)
    with pytest.raises(ptbxl.PtbxlError, match="unknown task 'nope'"):
        visualize.visualize(
            3, tmp_path / "x.png", FeatureConfig(), ptbxl_dir=tiny_ptbxl, task="nope"
        )
    with pytest.raises(ptbxl.PtbxlError, match="ecg_id 999"):
        visualize.visualize(999, tmp_path / "x.png", FeatureConfig(), ptbxl_dir=tiny_ptbxl)
    assert not (tmp_path / "x.png").exists()


def test_cli_unknown_ecg_id_fails_cleanly(real_tfrecords, tmp_path):
    out = tmp_path / "missing.png"
    args = [f"--data_dir={real_tfrecords}", "--ecg_id=999999", f"--output={out}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "ecg_keras.visualize", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "ecg_id 999999" in errors[0], proc.stderr
    assert not list(tmp_path.iterdir())
