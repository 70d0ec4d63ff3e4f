"""Runs an exported artifact: a SavedModel version folder or a .tflite file, one interface.

    predictor = runtime.load("saved_models/NAME/1")  # or .../1/tflite/int8.tflite
    out = predictor(ecg)  # float32 [n, 1000, 12] mV -> {"probabilities": [n, classes], ...}
    predictor.metadata["classes"], predictor.metadata["thresholds"]

A SavedModel carries its metadata in ``assets.extra/metadata.json``; a .tflite file reads the
``metadata.json`` next to it (``export`` writes one into the ``tflite/`` folder). TFLite runs
with ``ai_edge_litert``'s interpreter through the ``serving_default`` signature runner, and
then needs neither TensorFlow nor Keras.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

SIGNATURE = "serving_default"  # the signature TF Serving's REST API uses by default
INPUT = "ecg"  # the signature's one input: float32 [batch, samples, 12] mV
METADATA = "metadata.json"
ASSETS_EXTRA = "assets.extra"  # a SavedModel folder TF Serving copies along, unread


class ArtifactError(ValueError):
    """A path that is not a loadable artifact; the message names it."""


def metadata_path(path) -> Path:
    """Where the metadata of the artifact at ``path`` lives."""
    path = Path(path)
    if path.suffix == ".tflite":
        return path.with_name(METADATA)
    return path / ASSETS_EXTRA / METADATA


def size_bytes(path) -> int:
    """A file's size; for a SavedModel, ``saved_model.pb`` plus ``variables/``."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    files = [path / "saved_model.pb", *(path / "variables").glob("*")]
    return sum(f.stat().st_size for f in files if f.is_file())


class Predictor:
    """A loaded artifact. Call it on float32 [n, samples, 12] (mV) to get the output dict.

    Args:
      path: a SavedModel folder (``saved_model.pb``) or a ``.tflite`` file.
      num_threads: TFLite interpreter threads (None: the interpreter's default). A SavedModel
        uses TensorFlow's process-wide thread settings.
    """

    def __init__(self, path, num_threads: int | None = None):
        self.path = Path(path)
        meta = metadata_path(self.path)
        if self.path.suffix == ".tflite":
            if not self.path.is_file():
                raise ArtifactError(f"{self.path}: file not found")
            self.kind = "tflite"
        elif (self.path / "saved_model.pb").is_file():
            self.kind = "saved_model"
        else:
            raise ArtifactError(
                f"{self.path}: neither a SavedModel folder (saved_model.pb) nor a .tflite file"
            )
        if not meta.is_file():
            raise ArtifactError(f"{meta} not found: {self.path} has no export metadata")
        self.metadata = json.loads(meta.read_text())
        self.size_bytes = size_bytes(self.path)
        if self.kind == "tflite":
            from ai_edge_litert.interpreter import Interpreter

            self._interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
            self._run = self._interpreter.get_signature_runner(SIGNATURE)
        else:
            import tensorflow as tf

            self._loaded = tf.saved_model.load(str(self.path))
            function = self._loaded.signatures[SIGNATURE]
            self._run = lambda ecg: function(ecg=tf.constant(ecg))

    def __call__(self, ecg: np.ndarray) -> dict[str, np.ndarray]:
        """float32 [n, input_samples, 12] -> the output dict (numpy arrays with batch n)."""
        ecg = np.ascontiguousarray(ecg, np.float32)
        expected = (self.metadata["input_samples"], len(self.metadata["leads"]))
        if ecg.ndim != 3 or ecg.shape[1:] != expected:
            raise ValueError(f"{self.path} takes [n, {expected[0]}, 12], got {list(ecg.shape)}")
        if self.kind == "tflite":
            return {k: np.asarray(v) for k, v in self._run(**{INPUT: ecg}).items()}
        return {k: v.numpy() for k, v in self._run(ecg).items()}

    def probabilities(self, ecg: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """float32 [n, classes] for any n, in batches of ``batch_size``."""
        parts = [
            self(ecg[i : i + batch_size])["probabilities"] for i in range(0, len(ecg), batch_size)
        ]
        return np.concatenate(parts).astype(np.float32)


def load(path: str | os.PathLike, num_threads: int | None = None) -> Predictor:
    """``Predictor(path, num_threads)``."""
    return Predictor(path, num_threads)
