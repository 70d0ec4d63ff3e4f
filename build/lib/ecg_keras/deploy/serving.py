"""The exported model's one endpoint: raw 10 s ECG in mV -> probabilities, as ``evaluate`` does.

    endpoint = make_endpoint(model, run, thresholds)  # run: training.run.Run
    outputs = endpoint(ecg)  # ecg float32 [batch, 1000, 12] at 100 Hz
    write_saved_model(path, endpoint, config)  # signature "serving_default", input "ecg"

The endpoint cuts the record into the evaluation windows (2.5 s at a 1.25 s stride: 7 at
100 Hz; the whole record when ``crop_seconds`` is 0), runs the model's input transform with the
training statistics (``models.raw.SpectrogramLayer``: ``features.spectrogram`` +
``features.normalize``, or for a 1D model on the signal ``models.raw.StandardizeLayer``) and
the trained network on every window, and aggregates the windows' sigmoids by max (or mean),
exactly as ``ecg_keras.evaluate`` scores a record. Every reshape names its static sizes, so the
TFLite converter sees static frames, bins and leads (shared/MEASURED.md); only the batch is
dynamic.
"""

from __future__ import annotations

import dataclasses
import datetime

import numpy as np
import tensorflow as tf

from ecg_keras.config import TrainConfig
from ecg_keras.data import ptbxl
from ecg_keras.data import windows as windows_lib
from ecg_keras.data.windows import Windows
from ecg_keras.deploy.runtime import INPUT, METADATA, SIGNATURE
from ecg_keras.training.calibration import apply_tf as apply_calibration
from ecg_keras.training.calibration import apply_tf_to_logits as calibration_of_logits

__all__ = ["INPUT", "METADATA", "OUTPUTS", "SIGNATURE", "WARMUP", "make_endpoint", "metadata"]
OUTPUTS = {
    "probabilities": "float32 [batch, classes]: sigmoid per class, windows aggregated, "
    "calibrated (metadata: calibration)",
    "labels": "int32 [batch, classes]: 1 where probability >= the class's threshold",
    "window_probabilities": "float32 [batch, windows, classes]: sigmoid per window",
}
WARMUP = "tf_serving_warmup_requests"  # the name TF Serving looks for in assets.extra/


def make_endpoint(model, run, thresholds, calibration=None):
    """The serving function and the Keras model it runs.

    Args:
      model: the trained keras.Model: normalized spectrogram float32
        [batch, frames, bins, channels] (12, or 36 for ``config.features.input == "complex"``),
        or for ``config.features.representation == "signal"`` standardized signal float32
        [batch, samples, 12] -> logits [batch, classes].
      run: the ``training.run.Run``: its config (features, aggregate) and the normalization
        statistics of its training folds, which become constants of the endpoint's model.
      thresholds: float [classes], per-class decision thresholds chosen on validation, as
        float16-exact (``inference.Predictor.thresholds``).
      calibration: ``training.calibration.fit``'s parameters, applied to the aggregated
        probabilities (``window_probabilities`` stay the network's sigmoids), or None.

    Returns:
      (endpoint, raw_model): ``endpoint(ecg)`` maps float32 [batch, record_samples, 12] (mV)
      to the dict of ``OUTPUTS``; ``raw_model`` (ECG window -> logits, from
      ``models.build_raw_model``) holds every variable the endpoint uses.
    """
    from ecg_keras.models import build_raw_model

    config = run.config
    windows = Windows.of(config)
    # The DFT-matmul STFT: a CONV_2D that TFLite's int8 mode can quantize (data/dft.py).
    raw_model = build_raw_model(model, config.features, *run.stats, windows.length, "matmul")
    num_classes = raw_model.output_shape[-1]
    thresholds = tf.constant(np.asarray(thresholds, np.float32).reshape(num_classes))
    reduce = tf.reduce_max if config.aggregate == "max" else tf.reduce_mean

    def endpoint(ecg):
        ecg = tf.convert_to_tensor(ecg, tf.float32)  # [batch, record_samples, 12]
        flat = windows_lib.cut(ecg, windows)  # [batch * windows, length, 12]
        logits = raw_model(flat, training=False)  # [batch * windows, classes]
        per_window = tf.reshape(tf.sigmoid(logits), [-1, windows.count, num_classes])
        probabilities = reduce(per_window, axis=1)  # [batch, classes]
        if calibration is not None and config.aggregate == "max":
            # logit(max of sigmoids) = max of logits, taken from the float logits: the int8
            # TFLite file holds the window sigmoids in 8 bits (training/calibration.py).
            window_logits = tf.reshape(logits, [-1, windows.count, num_classes])
            top = windows_lib.record_logits(window_logits, "max")
            probabilities = calibration_of_logits(calibration, top)
        elif calibration is not None:  # fitted on aggregated probabilities, so applied after
            probabilities = apply_calibration(calibration, probabilities)
        return {
            "probabilities": probabilities,
            "labels": tf.cast(probabilities >= thresholds, tf.int32),
            "window_probabilities": per_window,
        }

    return endpoint, raw_model


def average_endpoints(endpoints, thresholds, calibration=None):
    """One endpoint that runs every member endpoint on the same ECG and averages them.

    Args:
      endpoints: ``make_endpoint`` functions whose models share the input length and the
        evaluation windows (``inference.Predictor`` checks it).
      thresholds: float32 [classes], the ensemble's own (chosen on its averaged validation
        probabilities).
      calibration: the ensemble's (fitted on the averaged validation probabilities), applied
        to the mean ``probabilities``, or None; the members' endpoints run uncalibrated.

    Returns:
      endpoint(ecg) -> the dict of ``OUTPUTS``, each the members' mean (labels from the mean).
    """
    thresholds = tf.constant(np.asarray(thresholds, np.float32))

    def endpoint(ecg):
        outputs = [e(ecg) for e in endpoints]
        mean = {
            k: tf.add_n([o[k] for o in outputs]) / len(outputs)
            for k in ("probabilities", "window_probabilities")
        }
        if calibration is not None:
            mean["probabilities"] = apply_calibration(calibration, mean["probabilities"])
        mean["labels"] = tf.cast(mean["probabilities"] >= thresholds, tf.int32)
        return mean

    return endpoint


def write_saved_model(path, endpoint, config: TrainConfig) -> None:
    """Writes a SavedModel whose ``serving_default`` signature is ``endpoint`` on ``ecg``
    float32 [None, record_samples, 12].

    ``keras.export.ExportArchive`` rather than a ``tf.Module``: only the former converts to
    TFLite with its variables resolved (shared/MEASURED.md). The models are deliberately not
    ``track()``-ed: the endpoint's trace captures its variables, and tracking them as well
    stores every weight twice (keras-team/keras#23553: 9.4 MB of variables instead of 4.7 MB
    for vgg_small).
    """
    import keras

    samples = Windows.of(config).record_samples
    archive = keras.export.ExportArchive()
    spec = tf.TensorSpec([None, samples, ptbxl.NUM_LEADS], tf.float32, name=INPUT)
    archive.add_endpoint(SIGNATURE, endpoint, input_signature=[spec])
    archive.write_out(str(path), verbose=False)


def metadata(config: TrainConfig, classes, thresholds, source: dict, calibration=None) -> dict:
    """What a client needs besides the graph: classes, rate, lead order, thresholds, and the
    calibration the signature applies (None: the network's own probabilities)."""
    windows = Windows.of(config)
    f = config.features
    return {
        "task": config.task,
        "classes": list(classes),
        "thresholds": [float(t) for t in thresholds],
        "thresholds_from": f"best F1 per class on validation folds {list(config.val_folds)}"
        + (", calibrated probabilities" if calibration is not None else ""),
        "calibration": calibration,
        "sampling_rate": f.sampling_rate,
        "record_seconds": ptbxl.RECORD_SECONDS,
        "input_samples": windows.record_samples,
        "leads": list(ptbxl.LEADS),
        "units": "mV",
        "signature": SIGNATURE,
        "input": {"name": INPUT, "dtype": "float32", "shape": [None, windows.record_samples, 12]},
        "outputs": OUTPUTS,
        "windows": {
            "seconds": windows.length / f.sampling_rate,
            "stride_seconds": windows.stride / f.sampling_rate,
            "count": windows.count,
            "aggregate": config.aggregate,
        },
        "features": dataclasses.asdict(f),
        "source": source,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited protobuf field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def warmup_request(model_name: str, ecg: np.ndarray) -> bytes:
    """One serialized ``tensorflow.serving.PredictionLog`` holding a predict request.

    Hand-encoded so that export needs no ``tensorflow-serving-api`` (which pins its own
    TensorFlow). Field numbers from tensorflow_serving/apis: PredictionLog.predict_log = 6,
    PredictLog.request = 1, PredictRequest.model_spec = 1 and inputs = 2 (map entry: key = 1,
    value = 2), ModelSpec.name = 1 and signature_name = 3.
    """
    spec = _field(1, model_name.encode()) + _field(3, SIGNATURE.encode())
    tensor = tf.make_tensor_proto(np.asarray(ecg, np.float32)).SerializeToString()
    entry = _field(1, INPUT.encode()) + _field(2, tensor)
    request = _field(1, spec) + _field(2, entry)
    return _field(6, _field(1, request))


def write_warmup(path, model_name: str, record_samples: int) -> None:
    """TF Serving warm-up file: one request of one flat ECG, float32 [1, record_samples, 12]."""
    ecg = np.zeros((1, record_samples, ptbxl.NUM_LEADS), np.float32)
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(warmup_request(model_name, ecg))
