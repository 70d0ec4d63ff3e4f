"""What ``export`` publishes: one training run, or an ensemble of runs.

    source = load(workdir, model=None, data_dir=None)
    outputs = source.endpoint(ecg)           # float32 [batch, record_samples, 12] mV
    truth = source.truth(records)            # evaluate's own probabilities on the same records

A workdir with ``ensemble.json`` (written by ``ecg_keras.ensemble``) is an ensemble: its
endpoint runs every member's endpoint (each with its own features, statistics and windows)
and averages their probabilities; its thresholds are the ensemble's own (``metrics.json``,
chosen on the averaged validation probabilities); its reference for the export checks is the
mean of the members' ``evaluate`` predictions, exactly what ``ensemble`` scored.

The calibration in ``metrics.json`` (``training/calibration.py``, fitted on validation by
``evaluate`` or ``ensemble``) is applied after the windows (an ensemble: after the average), in
the signature and in the reference alike; the thresholds were chosen on calibrated
probabilities. A ``metrics.json`` without one (written before calibration existed) exports the
model's own probabilities and says so in ``metadata.json`` (``calibration``: null).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ecg_keras.config import TrainConfig

ENSEMBLE = "ensemble.json"  # ecg_keras.ensemble.ENSEMBLE; not imported to keep this light


@dataclasses.dataclass(frozen=True)
class Member:
    """One trained network with what its predictions need."""

    workdir: Path
    model_path: Path
    run: object  # run.Run: config, classes, normalization statistics
    network: object  # keras.Model: features -> logits

    @property
    def config(self) -> TrainConfig:
        return self.run.config


@dataclasses.dataclass(frozen=True)
class Source:
    """A run or ensemble ready to export.

    ``config`` is the run's (an ensemble's: its first member's): rate, windows, folds and task
    are shared by every member. ``thresholds``: float32 [classes], float16-exact. ``info``
    goes to ``metadata.json`` as ``source``; ``calibration``: ``calibration.fit``'s parameters,
    or None.
    """

    members: tuple[Member, ...]
    classes: list[str]
    thresholds: np.ndarray
    endpoint: Callable
    info: dict
    calibration: dict | None = None

    @property
    def run(self):
        """The (first) member's ``training.run.Run``: data, folds, classes' label columns."""
        return self.members[0].run

    @property
    def config(self) -> TrainConfig:
        return self.members[0].config

    @property
    def model_path(self) -> Path:
        return self.members[0].model_path if len(self.members) == 1 else Path(self.info["ensemble"])

    def truth(self, records) -> np.ndarray:
        """float32 [n, classes]: ``evaluate``'s probabilities, averaged over the members,
        calibrated as ``evaluate`` (``ensemble``) calibrates them."""
        from ecg_keras.deploy.export_check import evaluate_probabilities
        from ecg_keras.training import calibration

        probs = [evaluate_probabilities(m.network, m.run, records) for m in self.members]
        mean = np.mean(probs, axis=0).astype(np.float32)
        return mean if self.calibration is None else calibration.apply(self.calibration, mean)


def run_metrics(workdir: Path) -> dict:
    """A run's (or ensemble's) metrics.json, which must hold its thresholds."""
    path = workdir / "metrics.json"
    saved = json.loads(path.read_text()) if path.is_file() else {}
    if "thresholds" not in saved:
        raise FileNotFoundError(
            f"{path} has no thresholds: run `python -m ecg_keras.evaluate --workdir={workdir}` "
            "(or `ecg_keras.ensemble` for an ensemble) first"
        )
    return saved


def _member(workdir: Path, model_path: Path, data_dir: str | None) -> Member:
    import keras

    from ecg_keras.training import losses  # noqa: F401  registers the loss that model.keras may name
    from ecg_keras.training.run import Run

    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path} not found (--model / --workdir)")
    run = Run.load(workdir, data_dir)
    network = keras.models.load_model(model_path, compile=False)
    return Member(workdir, model_path, run, network)


def _same_windows(members) -> None:
    from ecg_keras.deploy.serving import Windows

    first = Windows.of(members[0].config)
    for m in members[1:]:
        if Windows.of(m.config) != first:
            raise ValueError(
                f"{m.workdir}: its windows {Windows.of(m.config)} differ from "
                f"{members[0].workdir}'s {first}; an exported ensemble needs one input length "
                "and the same evaluation windows (crop_seconds, window_stride_seconds, rate)"
            )


def load(workdir: str | None, model: str | None = None, data_dir: str | None = None) -> Source:
    """The run (``workdir`` or the folder holding ``model``) or ensemble to export.

    Raises:
      FileNotFoundError / ValueError naming the missing file or the member that differs.
    """
    from ecg_keras.data import manifest
    from ecg_keras.deploy import serving
    from ecg_keras.training import recipe

    model_path = Path(model) if model else Path(workdir) / recipe.MODEL
    root = Path(workdir) if workdir else model_path.parent
    saved = run_metrics(root)
    thresholds = serving.exported_thresholds(saved["thresholds"])
    info = {"workdir": str(root), "test_macro_auc": saved.get("test", {}).get("macro_auc")}
    if (root / ENSEMBLE).is_file() and not model:
        workdirs = [
            Path(m["workdir"]) for m in json.loads((root / ENSEMBLE).read_text())["members"]
        ]
        members = tuple(_member(w, w / recipe.MODEL, data_dir) for w in workdirs)
        _same_windows(members)
        info["ensemble"] = str(root / ENSEMBLE)
        info["members"] = [
            {"workdir": str(m.workdir), "model": m.config.model,
             "model_sha256": manifest.sha256_file(m.model_path)}
            for m in members
        ]  # fmt: skip
    else:
        members = (_member(root, model_path, data_dir),)
        info.update(model=str(model_path), model_sha256=manifest.sha256_file(model_path))
    calibration = saved.get("calibration")  # of the run, or of the ensemble's average
    if len(members) == 1:
        endpoint = serving.make_endpoint(
            members[0].network, members[0].run, thresholds, calibration
        )[0]
    else:  # the members' own probabilities, averaged, then calibrated
        endpoints = [serving.make_endpoint(m.network, m.run, thresholds)[0] for m in members]
        endpoint = serving.average_endpoints(endpoints, thresholds, calibration)
    return Source(members, saved["classes"], thresholds, endpoint, info, calibration)
