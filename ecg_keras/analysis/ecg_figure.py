"""Draw one ECG: each lead in mV beside its spectrogram exactly as the model receives it.

The library behind ``python -m ecg_keras.visualize``.

With ``--data_dir`` the record comes from the prepared TFRecords and the spectrogram is
normalized with ``input_pipeline.feature_stats`` on training folds 1-8, as in training. With
``--ptbxl_dir`` the WFDB record and its labels are read from PTB-XL; without ``--data_dir``
the log spectrogram is drawn unnormalized, and the title says so.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import tensorflow as tf
from matplotlib.backends.backend_agg import FigureCanvasAgg  # headless: the Agg backend
from matplotlib.figure import Figure

from ecg_keras import atomic
from ecg_keras.config import FeatureConfig
from ecg_keras.data import features, input_pipeline, ptbxl, tfrecord
from ecg_keras.data import manifest as manifest_lib
from ecg_keras.data.ptbxl import TRAIN_FOLDS

PathLike = str | os.PathLike
STFT_FLAGS = ("window_seconds", "hop_seconds", "fft_seconds", "max_frequency_hz", "log_offset")


@dataclasses.dataclass(frozen=True)
class Record:
    """One ECG: ``signal`` float32 [sampling_rate * 10, 12] in mV (``ptbxl.LEADS`` order) and
    the sorted class names of one task in ``labels``."""

    ecg_id: int
    signal: np.ndarray
    sampling_rate: int
    labels: tuple[str, ...]


def load_record(data_dir: PathLike, ecg_id: int, task: str) -> Record:
    """Finds ``ecg_id`` in the prepared TFRecords of ``data_dir`` (scans every shard).

    Raises:
      FileNotFoundError: no manifest. input_pipeline.DataError: unknown task or ecg_id, or a
        missing or corrupt shard.
    """
    manifest = manifest_lib.load(data_dir)
    if task not in manifest["tasks"]:
        raise input_pipeline.DataError(
            f"unknown task {task!r}; {data_dir} has {list(manifest['tasks'])}"
        )
    folds = sorted(int(f) for f, n in manifest["folds"].items() if n)
    shards = input_pipeline.open_shards(data_dir, folds)
    ids = {"ecg_id": tf.io.FixedLenFeature([], tf.int64)}  # parse only the id while scanning
    ds = shards.records().batch(256)
    ds = ds.map(lambda s: s[tf.io.parse_example(s, ids)["ecg_id"] == ecg_id])
    found = list(ds.unbatch().take(1))
    if not found:
        raise input_pipeline.DataError(
            f"ecg_id {ecg_id}: not found in {data_dir} ({manifest['num_records']} records)"
        )
    example = tfrecord.parse_example(found[0], shards.fields)
    hot = example[f"labels/{task}"].numpy()
    names = [c for c, h in zip(manifest["tasks"][task]["classes"], hot, strict=True) if h]
    rate = manifest["sampling_rate"]
    return Record(ecg_id, example["signal"].numpy(), rate, tuple(sorted(names)))


def load_wfdb_record(ptbxl_dir: PathLike, ecg_id: int, task: str, sampling_rate: int) -> Record:
    """Reads ``ecg_id``'s WFDB record from PTB-XL, its labels from the CSVs.

    Raises:
      ptbxl.PtbxlError: unknown task or ecg_id, missing or bad files.
    """
    if task not in ptbxl.TASKS:
        raise ptbxl.PtbxlError(f"unknown task {task!r}; tasks are {list(ptbxl.TASKS)}")
    db = ptbxl.load_database(ptbxl_dir)
    if ecg_id not in db.index:
        raise ptbxl.PtbxlError(f"ecg_id {ecg_id}: not in {Path(ptbxl_dir) / ptbxl.DATABASE_CSV}")
    row = db.loc[ecg_id]
    path = ptbxl.record_path(ptbxl_dir, row, sampling_rate)
    signal = ptbxl.read_signal(path, sampling_rate, ecg_id)
    labels = ptbxl.load_tasks(ptbxl_dir).labels(row.scp_codes)[task]
    return Record(ecg_id, signal, sampling_rate, tuple(labels))


def model_input(signal: np.ndarray, config: FeatureConfig, data_dir: PathLike | None) -> np.ndarray:
    """The full-record spectrogram float32 [frames, bins, channels] of ``signal`` float32
    [samples, 12] (channels 12, or 36 with ``config.input == "complex"``); normalized with the
    training-fold statistics of ``data_dir`` when given."""
    spec = features.spectrogram(signal, config)
    if data_dir is not None:
        mean, std = input_pipeline.feature_stats(data_dir, TRAIN_FOLDS, config)
        spec = features.normalize(spec, mean, std)
    return spec.numpy()


def render(
    signal: np.ndarray,
    spec: np.ndarray,
    config: FeatureConfig,
    title: str,
    output: PathLike,
    colorbar_label: str = "log magnitude, normalized (z)",
) -> Path:
    """Draws 12 rows (leads I..V6): the lead over time, and its spectrogram with a colorbar.

    Args:
      signal: float32 [samples, 12], mV, at ``config.sampling_rate``.
      spec: float32 [frames, bins, channels] from ``features.spectrogram`` with ``config``;
        only its first 12 channels, the leads' log magnitudes, are drawn.
      config: the STFT settings, for the time and frequency axes.
      title: the figure's suptitle.
      output: the PNG path; written to a temporary name in the same folder, then renamed.
      colorbar_label: what the spectrogram values are.

    Returns:
      The path of the PNG.
    """
    _, hop, fft_length, bins = features.stft_sizes(config)
    spec = spec[..., : ptbxl.NUM_LEADS]  # a complex input's log magnitudes (its first 12)
    fs = config.sampling_rate
    seconds = np.arange(signal.shape[0]) / fs
    frames = (np.arange(spec.shape[0]) * hop + config.samples(config.window_seconds) / 2) / fs
    hertz = np.arange(bins) * fs / fft_length
    vmin, vmax = np.percentile(spec, [0.5, 99.5])  # one colour scale for all 12 leads
    # Fixed margins: constrained layout would double the drawing time of 24 axes.
    fig = Figure(figsize=(16, 20), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.06, right=0.9, bottom=0.04, top=0.95, hspace=0.15, wspace=0.12)
    axes = fig.subplots(12, 2, sharex=True, gridspec_kw={"width_ratios": [1.2, 1]})
    # imshow of the bin centres: each pixel spans one hop and one bin around its centre.
    dt, df = hop / fs, fs / fft_length
    extent = (frames[0] - dt / 2, frames[-1] + dt / 2, -df / 2, hertz[-1] + df / 2)
    for lead, (wave_ax, spec_ax) in enumerate(axes):
        wave_ax.plot(seconds, signal[:, lead], color="black", linewidth=0.6)
        wave_ax.grid(True, color="0.85", linewidth=0.5)
        wave_ax.set_ylabel(f"{ptbxl.LEADS[lead]}\nmV", rotation=0, ha="right", va="center")
        image = spec_ax.imshow(
            spec[:, :, lead].T, origin="lower", aspect="auto", extent=extent, vmin=vmin, vmax=vmax
        )
        spec_ax.set(ylabel="Hz", yticks=[0, hertz[-1] / 2, hertz[-1]])
    axes[0, 0].set(title="signal (mV)", xlim=(0, signal.shape[0] / fs))
    axes[0, 1].set_title("model input: spectrogram channel of each lead")
    axes[-1, 0].set_xlabel("time (s)")
    axes[-1, 1].set_xlabel("time (s)")
    fig.colorbar(image, cax=fig.add_axes((0.92, 0.3, 0.015, 0.4)), label=colorbar_label)
    fig.suptitle(title, fontsize=14, y=0.98)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic.replacing(output) as tmp:
        fig.savefig(tmp, format="png")
    return output


def visualize(
    ecg_id: int,
    output: PathLike,
    config: FeatureConfig,
    data_dir: PathLike | None = None,
    ptbxl_dir: PathLike | None = None,
    task: str = "superdiagnostic",
) -> Path:
    """Loads one record (WFDB when ``ptbxl_dir`` is given, else TFRecords), computes the model
    input and renders it. With ``data_dir`` the manifest's sampling rate replaces
    ``config.sampling_rate``. Nothing is written when loading fails. Returns the PNG path."""
    if data_dir is None and ptbxl_dir is None:
        raise ValueError("pass --data_dir, --ptbxl_dir or both")
    if data_dir is not None:
        rate = manifest_lib.load(data_dir)["sampling_rate"]
        config = dataclasses.replace(config, sampling_rate=rate)
    if ptbxl_dir is not None:
        record = load_wfdb_record(ptbxl_dir, ecg_id, task, config.sampling_rate)
    else:
        record = load_record(data_dir, ecg_id, task)
    spec = model_input(record.signal, config, data_dir)
    labels, shape = ", ".join(record.labels) or "(no label)", ", ".join(map(str, spec.shape))
    title = f"ecg_id {ecg_id} · {config.sampling_rate} Hz · {task}: {labels} · input [{shape}] "
    if data_dir is not None:
        title += f"normalized on folds {TRAIN_FOLDS[0]}–{TRAIN_FOLDS[-1]}"
        return render(record.signal, spec, config, title, output)
    title += "log spectrogram, NOT normalized (no --data_dir)"
    return render(record.signal, spec, config, title, output, "log(|STFT| + log_offset)")
