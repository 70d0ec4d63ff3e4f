"""A model to explain, as one differentiable function of the raw ECG, from a run or export.

    model = explainable.load("runs/NAME")  # or saved_models/NAME/VERSION
    logits = record_logits(model, ecg)  # float32 [n, 1000, 12] mV -> [n, classes]
    p = model.probabilities(ecg)  # as predict reports them; model.thresholds apply
    random_model = randomized(model)  # every network weight re-drawn (sanity check)

A training workdir gives the Keras network (spectrogram or standardized signal -> logits)
wrapped by ``models.build_raw_model`` with the run's statistics; an export (SavedModel
version folder) gives its signature, whose ``window_probabilities`` are turned back into
logits. Either way the record's score is computed as ``evaluate`` computes it: windows cut
from the 10 s record, logits per window, max (or mean) over windows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from ecg_keras.data import windows as windows_lib
from ecg_keras.data.windows import Windows


@dataclasses.dataclass(frozen=True)
class Explainable:
    """A model to explain, from a training workdir or an export.

    ``window_logits``: float32 [n, window_samples, 12] mV -> logits [n, classes]
    (differentiable). ``windows``: ``Windows``. ``thresholds``: float32 [classes].
    ``feature_config``: the run's FeatureConfig. ``network``: the Keras network (spectrogram
    or standardized signal -> logits), None for an export; ``input_layer``: the raw model's
    ``SpectrogramLayer`` / ``StandardizeLayer`` (None for an export). ``metadata``: what
    ``inference.records.fit_to_model`` needs (``sampling_rate``, ``input_samples``). ``aggregate``:
    how windows make the record's score ("max" or "mean", the run's ``--aggregate``).
    ``calibration``: the run's or export's calibration parameters (``metrics.json`` /
    ``metadata.json``), applied after the aggregation; None when it has none.
    """

    window_logits: Callable
    windows: object
    classes: tuple[str, ...]
    thresholds: np.ndarray
    feature_config: object
    metadata: dict
    network: object = None
    input_layer: object = None
    aggregate: str = "max"
    calibration: dict | None = None

    def probabilities(self, ecg: np.ndarray) -> np.ndarray:
        """float32 [n, record_samples, 12] -> float64 [n, classes]: the record's probabilities
        as ``predict`` reports them (calibrated when the run or export is), which the
        thresholds apply to."""
        p = tf.sigmoid(record_logits(self, tf.constant(ecg, tf.float32))).numpy()
        if self.calibration:
            from ecg_keras.training import calibration

            p = calibration.apply(self.calibration, p)
        return np.asarray(p, np.float64)

    @property
    def is_spectrogram(self) -> bool:
        return self.feature_config.representation != "signal"


def from_network(network, run, thresholds, source: dict) -> Explainable:
    """An ``Explainable`` of a Keras ``network`` (features -> logits) with ``run``'s stats."""
    from ecg_keras.models import build_raw_model

    windows = Windows.of(run.config)
    raw = build_raw_model(network, run.config.features, *run.stats, windows.length)
    metadata = {
        "sampling_rate": run.config.features.sampling_rate,
        "input_samples": windows.record_samples,
        "source": source,
    }
    return Explainable(
        lambda x: raw(x, training=False), windows, tuple(run.classes),
        np.asarray(thresholds, np.float32), run.config.features, metadata, network, raw.layers[1],
        run.config.aggregate,
    )  # fmt: skip


def randomized(model: Explainable, seed: int = 0) -> Explainable:
    """``model`` with every weight of its network re-drawn from the layers' initializers
    (Adebayo et al. 2018's model randomization, all layers at once); same input transform."""
    import keras

    if model.network is None:
        raise ValueError("an export cannot be randomized; pass its training workdir")
    keras.utils.set_random_seed(seed)
    network = keras.models.clone_model(model.network)  # fresh initializers, BN stats 0 / 1
    layer = model.input_layer

    def window_logits(x):
        return network(layer(x), training=False)

    return dataclasses.replace(model, window_logits=window_logits, network=network)


def _load_export(path: Path) -> Explainable:
    """A SavedModel version folder: logits from its ``window_probabilities``, clipped."""
    import json

    from ecg_keras.config import FeatureConfig
    from ecg_keras.deploy import runtime

    meta = json.loads(runtime.metadata_path(path).read_text())
    loaded = tf.saved_model.load(str(path))
    signature = loaded.signatures[runtime.SIGNATURE]
    windows = Windows.from_metadata(meta)
    length = windows.length

    def window_logits(x, _keep=loaded):  # the signature's variables live as long as loaded
        # The endpoint takes whole records: the window repeated to the record's length makes
        # its first window exactly x (the stride divides neither; only window 0 is read).
        reps = -(-windows.record_samples // length)
        record = tf.tile(x, [1, reps, 1])[:, : windows.record_samples]
        p = signature(**{runtime.INPUT: record})["window_probabilities"][:, 0]
        p = tf.clip_by_value(p, 1e-7, 1 - 1e-7)  # float32 sigmoids saturate at 1
        return tf.math.log(p) - tf.math.log1p(-p)

    return Explainable(
        window_logits, windows, tuple(meta["classes"]), np.asarray(meta["thresholds"], np.float32),
        FeatureConfig(**meta["features"]), meta, aggregate=meta["windows"]["aggregate"],
        calibration=meta.get("calibration"),
    )  # fmt: skip


def _load_workdir(workdir: Path) -> Explainable:
    """A training workdir through ``inference.Predictor``: its network, run statistics,
    calibration and validation thresholds."""
    from ecg_keras.inference.predictor import Predictor

    predictor = Predictor.from_workdir(workdir)
    if predictor.is_ensemble:
        raise ValueError(f"--model={workdir}: explain one run of the ensemble at a time")
    member = predictor.members[0]
    model = from_network(member.network, member.run, predictor.thresholds, predictor.info)
    return dataclasses.replace(model, calibration=predictor.calibration)


def load(path) -> Explainable:
    """A training workdir (``model.keras`` + ``run.json`` + ``metrics.json``) or an export
    version folder (``saved_model.pb`` + ``assets.extra/metadata.json``).

    Raises:
      FileNotFoundError / ValueError naming ``path``.
    """
    from ecg_keras import filenames

    path = Path(path)
    kind = filenames.kind(path)
    if kind in ("run", "ensemble"):
        return _load_workdir(path)
    if kind == "export":
        return _load_export(path)
    raise FileNotFoundError(
        f"--model={path}: neither a training workdir (run.json) nor an export folder "
        "(saved_model.pb)"
    )


def record_logits(model: Explainable, ecg: tf.Tensor) -> tf.Tensor:
    """float32 [n, record_samples, 12] -> [n, classes]: the record's logit, cut and aggregated
    as ``evaluate`` does (``data.windows``: max of the window logits, or the logit of the
    windows' mean sigmoid)."""
    logits = model.window_logits(windows_lib.cut(ecg, model.windows))
    per_window = tf.reshape(logits, [-1, model.windows.count, logits.shape[-1]])
    return windows_lib.record_logits(per_window, model.aggregate)
