"""A model on the raw ECG: the model's input transform as its first layer.

Training computes the model's input in ``tf.data``; export and inference want one model that
takes the signal itself, so that the features can never drift from training. For a
spectrogram model, ``SpectrogramLayer`` runs the same pure-TF ``features.spectrogram`` and
``features.normalize`` inside the model; for a 1D model on the signal, ``StandardizeLayer``
runs ``features.normalize`` with the one training mean and std. Both save the training
statistics as non-trainable weights (and ``SpectrogramLayer`` its FeatureConfig in its
config), so ``model.save("m.keras")`` + ``keras.models.load_model`` round-trips.

    raw = build_raw_model(spectrogram_model, FeatureConfig(), mean, std)  # mean, std [26, 12]
    # FeatureConfig(input="complex"): mean, std [26, 36], the network takes 36 channels
    logits = raw(ecg)  # ecg float32 [batch, 250, 12] mV -> [batch, num_classes]
    raw = build_raw_model(signal_model, signal_config, mean, std)  # mean, std float32 []
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from ecg_keras.config import FeatureConfig
from ecg_keras.data import dft, features
from ecg_keras.models.blocks import NUM_LEADS

STFTS = ("fft", "matmul")  # SpectrogramLayer's two ways to the same spectrogram


def _statistic(value, name, shape):
    """``value`` broadcast to float32 ``shape`` = [bins, channels], or ValueError."""
    array = np.asarray(value, np.float32)
    try:
        return np.broadcast_to(array, shape).copy()
    except ValueError:
        raise ValueError(
            f"{name} must broadcast to [bins, channels] = {list(shape)}, got shape {array.shape}"
        ) from None


@keras.saving.register_keras_serializable(package="ecg_keras")
class SpectrogramLayer(keras.layers.Layer):
    """Raw ECG -> normalized log-STFT: ``normalize(spectrogram(x, config), mean, std)``.

    Args:
      feature_config: FeatureConfig (or its fields as a dict); its STFT settings and ``input``
        are used: channels = 12 (magnitude) or 36 (complex), ``features.num_channels``.
      mean, std: training statistics broadcastable to float32 [bins, channels]; None leaves 0
        and 1 (what ``from_config`` does before ``load_model`` restores the saved weights).
      stft: "fft" (``features.spectrogram``: ``tf.signal.stft``, as training computes it) or
        "matmul" (``dft.spectrogram``: the same values to ~1e-5 from a Conv2D with a fixed DFT
        basis, which TFLite can quantize; what ``serving.make_endpoint`` exports). Saved in
        the config; configs saved before the option existed load as "fft".

    Call:
      float32 [batch, samples, 12] mV -> float32 [batch, frames, bins, channels].
    """

    def __init__(self, feature_config, mean=None, std=None, stft="fft", **kwargs):
        super().__init__(**kwargs)
        if stft not in STFTS:
            raise ValueError(f"stft={stft!r}: must be one of {', '.join(STFTS)}")
        self.stft = stft
        if isinstance(feature_config, dict):
            feature_config = FeatureConfig(**feature_config)
        self.feature_config = feature_config
        self.num_bins = features.stft_sizes(feature_config)[3]
        self.num_channels = features.num_channels(feature_config)
        shape = (self.num_bins, self.num_channels)
        self._initial_mean = None if mean is None else _statistic(mean, "mean", shape)
        self._initial_std = None if std is None else _statistic(std, "std", shape)
        if self._initial_std is not None and not (self._initial_std > 0).all():
            raise ValueError(f"std must be > 0 everywhere, got min {self._initial_std.min()}")

    def build(self, input_shape):
        shape = (self.num_bins, self.num_channels)
        self.mean = self.add_weight(shape=shape, initializer="zeros", trainable=False, name="mean")
        self.std = self.add_weight(shape=shape, initializer="ones", trainable=False, name="std")
        if self._initial_mean is not None:
            self.mean.assign(self._initial_mean)
        if self._initial_std is not None:
            self.std.assign(self._initial_std)

    def call(self, signal):
        spectrogram = dft.spectrogram if self.stft == "matmul" else features.spectrogram
        spec = spectrogram(signal, self.feature_config)  # [batch, frames, bins, ch]
        return features.normalize(spec, self.mean.value, self.std.value)

    def compute_output_shape(self, input_shape):
        samples = input_shape[-2]
        if samples is None:
            return (input_shape[0], None, self.num_bins, self.num_channels)
        return (input_shape[0], *features.spectrogram_shape(self.feature_config, samples))

    def get_config(self):
        config = super().get_config()
        config["feature_config"] = dataclasses.asdict(self.feature_config)
        config["stft"] = self.stft
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["feature_config"] = FeatureConfig(**config["feature_config"])
        return cls(**config)


@keras.saving.register_keras_serializable(package="ecg_keras")
class StandardizeLayer(keras.layers.Layer):
    """Raw ECG -> ``(x - mean) / std`` with one mean and std over every sample and lead of the
    training folds (the PTB-XL benchmark's global ``StandardScaler``).

    Args:
      mean, std: float scalars; None leaves 0 and 1 (what ``from_config`` does before
        ``load_model`` restores the saved weights).

    Call:
      float32 [batch, samples, 12] mV -> float32 [batch, samples, 12].
    """

    def __init__(self, mean=None, std=None, **kwargs):
        super().__init__(**kwargs)
        self._initial = {}
        for name, value in (("mean", mean), ("std", std)):
            if value is not None:
                array = np.asarray(value, np.float32)
                if array.size != 1:
                    raise ValueError(f"{name} must be one number, got shape {array.shape}")
                self._initial[name] = array.reshape(())
        if "std" in self._initial and not self._initial["std"] > 0:
            raise ValueError(f"std must be > 0, got {self._initial['std']}")

    def build(self, input_shape):
        self.mean = self.add_weight(shape=(), initializer="zeros", trainable=False, name="mean")
        self.std = self.add_weight(shape=(), initializer="ones", trainable=False, name="std")
        for name, value in self._initial.items():
            getattr(self, name).assign(value)

    def call(self, signal):
        return features.normalize(signal, self.mean.value, self.std.value)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="ecg_keras")
class SpecAugment(keras.layers.Layer):
    """``features.spec_augment`` when training, the identity otherwise.

    Call:
      float32 [batch, frames, bins, channels] -> the same, each example with its own masks
      drawn from the layer's ``keras.random.SeedGenerator`` (seeded by
      ``keras.utils.set_random_seed``, so a run is reproducible).
    """

    def __init__(self, feature_config, seed=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(feature_config, dict):
            feature_config = FeatureConfig(**feature_config)
        self.feature_config = feature_config
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, spec, training=False):
        if not training:
            return spec
        seed = tf.cast(self.generator.next(), tf.int32)  # [2]
        return features.spec_augment(spec, self.feature_config, seed)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "feature_config": dataclasses.asdict(self.feature_config)}


def build_raw_model(model, feature_config, mean, std, num_samples=None, stft="fft"):
    """A model on the raw ECG, whatever the network's input (``feature_config.representation``).

    Args:
      model: keras.Model from ``ecg_keras.models.get``: spectrogram float32
        [batch, frames, bins, channels] or standardized signal float32 [batch, samples, 12] ->
        logits [batch, num_classes].
      feature_config: FeatureConfig of the training inputs; its ``representation`` says which.
      mean, std: training statistics: float32 broadcastable to [bins, channels] for a
        spectrogram, scalars for a signal.
      num_samples: fixed signal length; default ``feature_config.input_samples``.
      stft: ``SpectrogramLayer``'s "fft" or "matmul" (ignored for a model on the signal).

    Returns:
      keras.Model: ``ecg`` float32 [batch, num_samples, 12] (mV) -> logits float32
      [batch, num_classes].
    """
    if feature_config.representation == "signal":
        return build_signal_raw_model(model, feature_config, mean, std, num_samples)
    return build_spectrogram_raw_model(model, feature_config, mean, std, num_samples, stft)


def build_signal_raw_model(signal_model, feature_config, mean, std, num_samples=None):
    """Wraps a 1D model on the standardized signal into a model on the raw ECG.

    Returns:
      keras.Model: ``ecg`` float32 [batch, num_samples, 12] (mV) -> logits float32
      [batch, num_classes], equal to ``signal_model((ecg - mean) / std)``.

    Raises:
      ValueError: the model does not take [samples, 12], or mean/std are not scalars, or
        std <= 0.
    """
    num_samples = num_samples or feature_config.input_samples
    got = tuple(signal_model.input_shape[1:])
    if len(got) != 2 or got[1] != NUM_LEADS or got[0] not in (None, num_samples):
        raise ValueError(
            f"signal_model takes {got}, but the raw model feeds it ({num_samples}, {NUM_LEADS})"
        )
    ecg = keras.Input((num_samples, NUM_LEADS), name="ecg")  # [batch, samples, 12]
    x = StandardizeLayer(mean, std, name="standardize")(ecg)  # [batch, samples, 12]
    logits = signal_model(x)  # [batch, num_classes]
    return keras.Model(ecg, logits, name=f"{signal_model.name}_raw")


def build_spectrogram_raw_model(
    spectrogram_model, feature_config, mean, std, num_samples=None, stft="fft"
):
    """Wraps a spectrogram model into a model on the raw ECG.

    Args:
      spectrogram_model: keras.Model float32 [batch, frames, bins, channels] -> logits
        [batch, num_classes], e.g. from ``ecg_keras.models.get``.
      feature_config: FeatureConfig the spectrograms were computed with in training (its
        ``input`` sets channels: 12 or 36).
      mean, std: training statistics of the spectrogram, float32 broadcastable to
        [bins, channels].
      num_samples: fixed signal length; default ``feature_config.input_samples`` (one crop,
        or 10 s when crops are off).
      stft: "fft" or "matmul", how ``SpectrogramLayer`` computes the STFT.

    Returns:
      keras.Model: ``ecg`` float32 [batch, num_samples, 12] (mV) -> logits float32
      [batch, num_classes], equal to ``spectrogram_model(normalize(spectrogram(ecg)))``.

    Raises:
      ValueError: the model's input shape does not match the spectrogram of ``num_samples``
        samples, or mean/std do not fit [bins, channels], or std <= 0.
    """
    num_samples = num_samples or feature_config.input_samples
    expected = features.spectrogram_shape(feature_config, num_samples)  # (frames, bins, ch)
    got = tuple(spectrogram_model.input_shape[1:])
    if len(got) != 3 or any(g is not None and g != e for g, e in zip(got, expected, strict=True)):
        raise ValueError(
            f"spectrogram_model takes {got}, but {num_samples} samples give a spectrogram of "
            f"{expected} with this feature_config"
        )
    ecg = keras.Input((num_samples, NUM_LEADS), name="ecg")  # [batch, samples, 12]
    layer = SpectrogramLayer(feature_config, mean, std, stft=stft, name="stft")
    spec = layer(ecg)  # [batch, frames, bins, channels]
    logits = spectrogram_model(spec)  # [batch, num_classes]
    return keras.Model(ecg, logits, name=f"{spectrogram_model.name}_raw")
