"""``train --init_from=RUN``: a new run that starts from a trained run's weights (fine-tuning).

    source = Source.load("runs/superdiagnostic")   # its run.json, classes, statistics, model
    report = source.copy_into(network, classes)    # layer by layer, by name and shape

The trunk's weights are copied into every layer of the new network that has a layer of the same
name whose weights have the same shapes; the output layer (``logits``) is copied only when the
new run predicts the same classes in the same order, and is otherwise left as freshly
initialized: a new head. The new run normalizes its inputs with the source run's statistics
(``Run.prepare``), since the copied filters learned on inputs scaled by those, not by the new
data's; and its features must be the source's (rate, STFT, input channels), or the copied
filters would read other inputs. Fine-tuning from PTB-XL onto CPSC 2018 is the PTB-XL
benchmark paper's transfer experiment (Strodthoff et al. 2021, section VI).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ecg_keras import filenames
from ecg_keras.config import TrainConfig, config_from_dict

# The FeatureConfig fields that decide what a model's input means (the rest is augmentation).
FEATURE_FIELDS = (
    "sampling_rate",
    "representation",
    "window_seconds",
    "hop_seconds",
    "fft_seconds",
    "max_frequency_hz",
    "log_offset",
    "input",
    "complex_scale",
)
HEAD = "logits"


@dataclasses.dataclass(frozen=True)
class Source:
    """A trained run to start from: its workdir, config, classes and statistics
    ((mean, std) float32 as in ``run.json``)."""

    workdir: Path
    config: TrainConfig
    classes: tuple[str, ...]
    stats: tuple[np.ndarray, np.ndarray]

    @classmethod
    def load(cls, workdir) -> Source:
        """Reads ``WORKDIR/run.json``; ``model.keras`` is read by ``copy_into``.

        Raises:
          ValueError: not a trained run (names the file that is missing).
        """
        workdir = Path(workdir)
        for name in (filenames.RUN_JSON, filenames.MODEL):
            if not (workdir / name).is_file():
                raise ValueError(
                    f"--init_from={workdir}: {workdir / name} not found; name a trained run's "
                    "workdir (train writes run.json and model.keras there)"
                )
        saved = json.loads((workdir / filenames.RUN_JSON).read_text())
        stats = tuple(np.asarray(saved["stats"][k], np.float32) for k in ("mean", "std"))
        return cls(workdir, config_from_dict(saved["config"]), tuple(saved["classes"]), stats)

    def check_features(self, config: TrainConfig) -> None:
        """Raises ValueError naming each feature setting in which ``config`` differs."""
        differ = [
            f"{name}: {getattr(self.config.features, name)} here, "
            f"{getattr(config.features, name)} in the new run"
            for name in FEATURE_FIELDS
            if getattr(self.config.features, name) != getattr(config.features, name)
        ]
        if differ:
            raise ValueError(
                f"--init_from={self.workdir}: its model reads other inputs ({'; '.join(differ)}); "
                "prepare the new data at the source's rate and keep its feature flags"
            )

    def copy_into(self, network, classes) -> dict:
        """Sets ``network``'s layers to the source model's, by layer name and weight shapes.

        Args:
          network: the new run's freshly built keras.Model.
          classes: the classes the new run predicts.

        Returns:
          {"init_from", "copied": [layer names], "new": [layers left as initialized],
          "head": "copied" or "new"}.

        Raises:
          ValueError: no layer with weights matched (another architecture).
        """

        from ecg_keras import models

        model = models.load(self.workdir / filenames.MODEL)
        old = {layer.name: layer for layer in model.layers if layer.weights}
        same_head = tuple(classes) == self.classes
        copied, new = [], []
        for layer in network.layers:
            if not layer.weights:
                continue
            source = old.get(layer.name)
            shapes = [tuple(w.shape) for w in layer.weights]
            if (
                source is None
                or [tuple(w.shape) for w in source.weights] != shapes
                or (layer.name == HEAD and not same_head)
            ):
                new.append(layer.name)
                continue
            layer.set_weights(source.get_weights())
            copied.append(layer.name)
        trunk = [name for name in copied if name != HEAD]
        if not trunk:
            raise ValueError(
                f"--init_from={self.workdir}: none of its layers matches the new network "
                f"(its model is {self.config.model}); use the same --model and --stages"
            )
        return {
            "init_from": str(self.workdir),
            "copied": copied,
            "new": new,
            "head": "copied" if HEAD in copied else "new",
        }
