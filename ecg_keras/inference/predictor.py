"""``Predictor``: a trained model you can run, however it was obtained.

    predictor = Predictor.from_workdir("runs/NAME")     # a run, or an ensemble folder
    predictor = Predictor.from_network(network, run)    # the network train just fitted
    ids, y_true, y_prob = predictor.predict_split(run.config.test_folds)   # evaluate's path
    outputs = predictor(ecg)       # float32 [n, 1000, 12] mV -> the export signature's dict
    p = predictor.probabilities(ecg)                     # calibrated, float32 [n, classes]

A predictor is one or more members (each a ``training.run.Run`` and its float32 network:
features -> logits) with what turns their logits into an answer: the evaluation windows
(``data.windows``), the aggregation over windows (max or mean, the run's), the average over
members (an ensemble), the per-class calibration and the thresholds (``metrics.json``, chosen
on validation). Two paths run the same model:

- ``predict_split`` reads the prepared TFRecords through ``tf.data`` (FFT STFT) and returns
  the network's own aggregated probabilities, uncalibrated: what ``evaluate``, ``ensemble``,
  ``compare`` and the export checks score.
- ``__call__`` / ``probabilities`` run the export endpoint (``deploy.serving.make_endpoint``:
  windows, DFT-matmul STFT, network, aggregation, calibration, thresholds in one graph) on raw
  ECG in mV: what ``export`` writes, and what ``predict``, ``robustness`` and ``explain`` run
  on a workdir. An export read back (``deploy.runtime.load``) has the same call interface.

``load(path)`` gives a ``Predictor`` for a run or ensemble folder and a ``runtime`` predictor
for an export; every command that runs a trained model goes through it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import numpy as np

from ecg_keras import filenames
from ecg_keras.data import windows as windows_lib
from ecg_keras.inference.by_id import average_members

SHARED = ("task", "train_folds", "val_folds", "test_folds")  # what ensemble members share


@dataclasses.dataclass(frozen=True)
class Member:
    """One trained network: ``run`` (``training.run.Run``: config, classes, statistics) and
    ``network`` (keras.Model, float32: features -> logits [batch, classes]); ``workdir`` and
    ``model_path`` where it was read from (None in memory)."""

    run: object
    network: object
    workdir: Path | None = None
    model_path: Path | None = None

    @property
    def config(self):
        return self.run.config


def run_metrics(folder: Path, required: bool = True) -> dict:
    """A run's (or ensemble's) ``metrics.json``; with ``required``, it must hold thresholds."""
    path = Path(folder) / filenames.METRICS
    saved = json.loads(path.read_text()) if path.is_file() else {}
    if required and "thresholds" not in saved:
        raise FileNotFoundError(
            f"{path} has no thresholds: run `python -m ecg_keras.evaluate --workdir={folder}` "
            "(or `ecg_keras.ensemble` for an ensemble) first"
        )
    return saved


def load_member(workdir, model_path=None, data_dir: str | None = None, run=None) -> Member:
    """A training workdir's run and network (``model_path`` default: WORKDIR/model.keras);
    ``run``: its ``training.run.Run`` when already read (``read_runs``).

    Raises:
      FileNotFoundError naming the workdir or model file that is missing.
    """

    from ecg_keras import models
    from ecg_keras.training import losses  # noqa: F401  registers the loss model.keras may name
    from ecg_keras.training.run import Run

    workdir = Path(workdir)
    model_path = Path(model_path) if model_path else workdir / filenames.MODEL
    run = run or Run.load(workdir, data_dir)  # names the workdir when run.json is missing
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path} not found: {workdir} holds no trained model")
    network = models.load(model_path)  # inference only
    return Member(run, network, workdir, model_path)


def load_members(workdirs, data_dir: str | None = None) -> tuple[Member, ...]:
    """An ensemble's members, checked against each other (task, folds, classes, model files)
    before any network is loaded, so a mismatch fails in a second, not after the loading.

    Raises:
      FileNotFoundError / ValueError naming the member that is missing or differs.
    """
    from ecg_keras.training.run import Run

    light = []
    for workdir in map(Path, workdirs):
        run = Run.load(workdir, data_dir)
        if not (workdir / filenames.MODEL).is_file():
            raise FileNotFoundError(
                f"{workdir / filenames.MODEL} not found: {workdir} holds no trained model"
            )
        light.append(Member(run, None, workdir))
    check_members(light)
    return tuple(load_member(m.workdir, None, data_dir, m.run) for m in light)


def check_members(members) -> None:
    """ValueError naming the member whose task, folds or classes differ from the first's."""
    first = members[0]
    for member in members[1:]:
        for field in SHARED:
            mine, theirs = getattr(member.config, field), getattr(first.config, field)
            if mine != theirs:
                raise ValueError(
                    f"{member.workdir}: --{field}={mine}, but {first.workdir} has "
                    f"--{field}={theirs}; ensemble members must share task, classes and folds"
                )
        if member.run.classes != first.run.classes:
            raise ValueError(
                f"{member.workdir}: classes {list(member.run.classes)}, but {first.workdir} "
                f"has {list(first.run.classes)}; ensemble members must share task, classes "
                "and folds"
            )


@dataclasses.dataclass(frozen=True)
class Predictor:
    """A run (one member) or an ensemble (several, averaged) with its calibration and
    thresholds.

    ``calibration``: ``training.calibration.fit``'s parameters, applied after the windows (an
    ensemble: after the average), or None (the networks' own probabilities).
    ``thresholds``: float32 [classes], float16-exact (as every artifact holds them), or None
    for a model not evaluated yet. ``info``: where it came from (``metadata.json``'s source).
    """

    members: tuple[Member, ...]
    calibration: dict | None = None
    thresholds: np.ndarray | None = None
    info: dict = dataclasses.field(default_factory=dict)

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def from_network(cls, network, run, metrics: dict | None = None, **info) -> Predictor:
        """The network in memory (``train`` scores what it just fitted without reloading it);
        ``metrics``: a metrics.json content whose calibration and thresholds to apply."""
        return cls._with_metrics((Member(run, network),), metrics or {}, info)

    @classmethod
    def from_workdir(
        cls,
        path,
        model=None,
        data_dir: str | None = None,
        metrics_required: bool = True,
        metrics: dict | None = None,
    ) -> Predictor:
        """A training workdir (``run.json``) or an ensemble folder (``ensemble.json``).

        Args:
          model: a .keras file to use instead of WORKDIR/model.keras (a run only).
          data_dir: the prepared TFRecords to read instead of the run's.
          metrics_required: refuse a folder whose metrics.json has no thresholds yet.
          metrics: the folder's metrics.json content when the caller has read it already.

        Raises:
          FileNotFoundError / ValueError naming the folder or member that is wrong.
        """
        from ecg_keras.data import manifest

        path = Path(path)
        saved = run_metrics(path, metrics_required) if metrics is None else metrics
        info = {"workdir": str(path), "test_macro_auc": saved.get("test", {}).get("macro_auc")}
        if (path / filenames.ENSEMBLE).is_file() and not model:
            listed = json.loads((path / filenames.ENSEMBLE).read_text())["members"]
            members = load_members([m["workdir"] for m in listed], data_dir)
            _same_windows(members)
            info["ensemble"] = str(path / filenames.ENSEMBLE)
            info["members"] = [
                {"workdir": str(m.workdir), "model": m.config.model,
                 "model_sha256": manifest.sha256_file(m.model_path)}
                for m in members
            ]  # fmt: skip
        elif (path / filenames.RUN_JSON).is_file() or model:
            members = (load_member(path, model, data_dir),)
            model_path = members[0].model_path
            info.update(model=str(model_path), model_sha256=manifest.sha256_file(model_path))
        else:
            raise FileNotFoundError(
                f"{path}: neither a training workdir ({filenames.RUN_JSON}) nor an ensemble "
                f"({filenames.ENSEMBLE})"
            )
        return cls._with_metrics(members, saved, info)

    @classmethod
    def from_members(cls, members, metrics: dict | None = None, **info) -> Predictor:
        """An ensemble of ``Member``s already loaded (``ensemble`` scores them, then saves)."""
        members = tuple(members)
        check_members(members)
        return cls._with_metrics(members, metrics or {}, info)

    @classmethod
    def _with_metrics(cls, members, saved: dict, info: dict) -> Predictor:
        thresholds = saved.get("thresholds")
        if thresholds is not None:
            thresholds = np.asarray(thresholds, np.float32)
            thresholds = _float16_exact(thresholds)
        return cls(tuple(members), saved.get("calibration"), thresholds, dict(info))

    def with_config(self, config) -> Predictor:
        """A run's predictor scored with another config of the same network (other windows,
        aggregation or test folds: ``evaluate --windows/--aggregate/--folds``)."""
        if self.is_ensemble:
            raise ValueError("an ensemble's members keep their own configs")
        member = self.members[0]
        run = member.run.with_config(config, member.run.stats)
        return dataclasses.replace(self, members=(dataclasses.replace(member, run=run),))

    def with_metrics(self, metrics: dict) -> Predictor:
        """The same networks with the calibration and thresholds of ``metrics``."""
        return self._with_metrics(self.members, metrics, self.info)

    # -- what it is -----------------------------------------------------------------------
    @property
    def run(self):
        """The (first) member's ``training.run.Run``: data, folds, classes' label columns."""
        return self.members[0].run

    @property
    def config(self):
        return self.members[0].config

    @property
    def classes(self) -> list[str]:
        return list(self.run.classes)

    @property
    def windows(self) -> windows_lib.Windows:
        return windows_lib.Windows.of(self.config)

    @property
    def aggregate(self) -> str:
        return self.config.aggregate

    @property
    def model_path(self) -> Path | None:
        """The run's .keras file, or an ensemble's ensemble.json (None in memory)."""
        if self.is_ensemble:
            return Path(self.info["ensemble"]) if "ensemble" in self.info else None
        return self.members[0].model_path

    @property
    def is_ensemble(self) -> bool:
        return len(self.members) > 1

    @functools.cached_property
    def metadata(self) -> dict:
        """What an export of this predictor would carry in ``metadata.json``; built once, as
        ``predict`` reads it for every record: treat it as read-only."""
        from ecg_keras.deploy import serving

        return serving.metadata(
            self.config, self.classes, self._thresholds(), self.info, self.calibration
        )

    # -- evaluate's path: prepared TFRecords through tf.data ------------------------------
    def member_predictions(self, folds) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Each member's (ecg_ids int64 [n], y_true float32 [n, classes], y_prob float32
        [n, classes]) on ``folds``: windows aggregated, uncalibrated, sorted by the data's
        order."""
        from ecg_keras.training.scoring import predict_dataset

        return [
            predict_dataset(m.network, m.run.split(folds, False), m.config.aggregate)
            for m in self.members
        ]

    def predict_split(self, folds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(ecg_ids int64 [n] ascending for an ensemble, y_true float32 [n, classes], y_prob
        float32 [n, classes]): the members' own probabilities on ``folds``, averaged over
        members by ecg_id, not calibrated (``calibrate`` does that)."""
        predictions = self.member_predictions(folds)
        if len(predictions) == 1:
            return predictions[0]
        return average_members([m.workdir for m in self.members], predictions)

    def calibrate(self, probabilities: np.ndarray) -> np.ndarray:
        """float32 [n, classes]: ``calibration`` applied (identity without one)."""
        from ecg_keras.training import calibration

        if self.calibration is None:
            return np.asarray(probabilities, np.float32)
        return calibration.apply(self.calibration, probabilities).astype(np.float32)

    # -- the export's path: raw ECG through the endpoint ----------------------------------
    @functools.cached_property
    def endpoint(self):
        """``endpoint(ecg)``: float32 [batch, record_samples, 12] mV -> ``serving.OUTPUTS``
        (calibrated probabilities, labels, window probabilities), as the export signature."""
        from ecg_keras.deploy import serving

        thresholds = self._thresholds()
        if len(self.members) == 1:
            m = self.members[0]
            return serving.make_endpoint(m.network, m.run, thresholds, self.calibration)[0]
        _same_windows(self.members)
        endpoints = [serving.make_endpoint(m.network, m.run, thresholds)[0] for m in self.members]
        return serving.average_endpoints(endpoints, thresholds, self.calibration)

    def __call__(self, ecg: np.ndarray, batch_size: int = 64) -> dict[str, np.ndarray]:
        """float32 [n, record_samples, 12] mV -> {name: numpy array} of ``serving.OUTPUTS``,
        ``batch_size`` records at a time."""
        parts = [
            self.endpoint(np.asarray(ecg[i : i + batch_size], np.float32))
            for i in range(0, len(ecg), batch_size)
        ]
        return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}

    def probabilities(self, ecg: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """float32 [n, record_samples, 12] mV -> calibrated probabilities float32 [n, classes]."""
        return self(ecg, batch_size)["probabilities"].astype(np.float32)

    def _thresholds(self) -> np.ndarray:
        if self.thresholds is None:  # not evaluated yet: labels are probability >= 0.5
            return np.full(len(self.classes), 0.5, np.float32)
        return self.thresholds


def _float16_exact(thresholds: np.ndarray) -> np.ndarray:
    """float32 [classes]: the thresholds as every artifact holds them, exactly (float16 TFLite
    stores its constants in float16; runs made before thresholds were float16-exact)."""
    from ecg_keras.training import metrics

    return metrics.exact_in_float16(thresholds).astype(np.float32)


def _same_windows(members) -> None:
    first = windows_lib.Windows.of(members[0].config)
    for m in members[1:]:
        mine = windows_lib.Windows.of(m.config)
        if mine != first:
            raise ValueError(
                f"{m.workdir}: its windows {mine} differ from {members[0].workdir}'s {first}; "
                "an ensemble's endpoint needs one input length and the same evaluation windows "
                "(crop_seconds, window_stride_seconds, rate)"
            )


def load(path, data_dir: str | None = None):
    """What ``path`` holds, ready to run: a ``Predictor`` for a training workdir or an
    ensemble folder, a ``deploy.runtime`` predictor for an export version folder or a
    ``.tflite`` file. Both take float32 [n, record_samples, 12] mV and have ``metadata`` and
    ``probabilities(ecg)``.

    Raises:
      FileNotFoundError / ValueError naming ``path``.
    """
    from ecg_keras.deploy import runtime

    if filenames.kind(path) in ("run", "ensemble"):
        return Predictor.from_workdir(path, data_dir=data_dir)
    return runtime.load(path)
