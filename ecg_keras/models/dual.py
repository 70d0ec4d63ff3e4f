"""A two-stream model: the spectrogram's VGG trunk and resnet1d_wang's trunk, one head.

Issue 20's hypothesis: the complex-spectrogram VGG and the benchmark's 1D ResNet err on
different records (3 + 3 of them ensembled gave validation 0.935 against 0.922-0.925 for
either alone), so one network that pools both trunks' features into one head may keep that
gain at one model's cost. The network takes what a 1D model takes, the standardized signal,
so the input pipeline, export and inference treat it as a model on the signal
(``models.representation`` is "signal"); it computes its spectrogram itself:

    signal [batch, samples, 12] (standardized) --+--> resnet1d trunk -> max+avg pool [256]
                                                 |    (inference: mean over 4 crops 1 sample apart)
                                                 |
      x std + mean (mV) -> STFT channels (float32, DFT-matmul) -> per (bin, channel) BN
      -> SpecAugment (training only) -> VGG trunk -> global average pool [256] --+
                                                                                  |
    (--stream_dropout, training only: zero one whole stream of a record) -> concat [512]
                         -> the benchmark's MLP head -> logits [batch, classes]
    (--stream_heads: also one MLP head per stream; ``StreamHeads`` trains the three through
     one output and averages their logits in inference)

The spectrogram's normalization is a BatchNormalization per (bin, channel) (``spec_norm``):
its moving mean and variance play the part of ``feature_stats`` for the spectrogram models,
learned from the training batches instead of a pass over the training folds. The STFT is the
DFT-matmul one (``data/dft.py``), which TFLite's int8 mode can quantize; it needs a static
number of samples, so the network takes exactly ``input_samples`` (one crop or window).

The 1D trunk is a nested model ``raw_trunk`` (layer names of ``build_resnet1d``: ``stem_conv``,
``stage2_block1_1_conv``) inside ``PhaseAverage``, which averages it over crops one sample
apart in inference; the VGG layers keep ``build_vgg``'s names (``block1_conv1``).

    model = build_dual((250, 12), 5, feature_config=FeatureConfig(input="relative"))
"""

from __future__ import annotations

import dataclasses

import keras
from keras import layers

from ecg_keras.config import FeatureConfig
from ecg_keras.data import features
from ecg_keras.models import blocks, blocks1d, resnet1d
from ecg_keras.models.blocks import NUM_LEADS, check_stages, is_positive_int
from ecg_keras.models.raw import SpecAugment, SpectrogramLayer

SMALL_VGG_STAGES = ((32, 2), (64, 2), (128, 2), (256, 2))  # vgg_small's


def build_dual(
    input_shape,
    num_classes,
    feature_config=None,
    signal_mean=0.0,
    signal_std=1.0,
    vgg_stages=SMALL_VGG_STAGES,
    resnet_stages=resnet1d.WANG_STAGES,
    stem_filters=128,
    dropout=0.5,
    head_units=128,
    phases=1,
    stream_dropout=0.0,
    stream_heads=False,
    name="dual",
) -> keras.Model:
    """Builds the two-stream classifier on the standardized signal; it outputs logits.

    Args:
      input_shape: (samples, 12), samples static (the DFT-matmul STFT's output size is fixed).
      num_classes: number of outputs.
      feature_config: FeatureConfig (or its dict) of the spectrogram stream: STFT settings,
        ``input`` (its channels: ``features.num_channels``) and SpecAugment masks; None is
        ``FeatureConfig(input="relative")``.
      signal_mean, signal_std: the training statistics the signal was standardized with
        (``StandardizeLayer``'s), so that the spectrogram stream sees mV again.
      vgg_stages: (filters, num_convs) of the spectrogram trunk.
      resnet_stages, stem_filters: the 1D trunk (``build_resnet1d``'s, kernels 7 / (5, 3)).
      dropout: the head's last dropout (the first is half of it), in [0, 1).
      head_units: hidden width of the head.
      phases: ``PhaseAverage``'s crops: the 1D trunk averaged over this many crops one
        sample apart in inference (training and ``phases=1``: the whole input).
      stream_dropout: ``StreamDropout``'s rate, in [0, 0.5): in training, the chance per
        record that the 1D stream's pooled features are zeroed, and the same for the
        spectrogram's (never both); 0 adds no layer, and inference never drops.
      stream_heads: also give each stream its own MLP head (``raw_head``/``raw_logits``,
        ``spec_head``/``spec_logits``, fed before any stream dropout), joined with the joint
        head by ``StreamHeads``: in training each record's output is one of the three heads,
        drawn uniformly; in inference the mean of their logits.
      name: the model's name.

    Returns:
      keras.Model: float32 [batch, samples, 12] (standardized signal) -> logits float32
      [batch, num_classes].

    Raises:
      ValueError: on a bad argument, with the value received.
    """
    if isinstance(feature_config, dict):
        feature_config = FeatureConfig(**feature_config)
    feature_config = feature_config or FeatureConfig(input="relative")
    feature_config = dataclasses.replace(feature_config, representation="spectrogram")
    samples = tuple(input_shape)[0] if len(tuple(input_shape)) == 2 else None
    if samples is None or tuple(input_shape)[1] != NUM_LEADS:
        raise ValueError(
            f"input_shape must be (samples, {NUM_LEADS}) with static samples, got {input_shape!r}"
        )
    input_shape = blocks1d.check_args(input_shape, num_classes, dropout, head_units)
    vgg_stages = check_stages(vgg_stages, "num_convs")
    resnet_stages = check_stages(resnet_stages, "num_blocks")
    if not float(signal_std) > 0:
        raise ValueError(f"signal_std must be > 0, got {signal_std!r}")
    frames, bins, channels = features.spectrogram_shape(feature_config, samples)

    inputs = keras.Input(input_shape, name="signal")  # [batch, samples, 12]
    crop = keras.Input((None, NUM_LEADS), name="signal_crop")
    pooled = blocks1d.concat_pool(resnet1d.trunk(crop, resnet_stages, stem_filters, 7, (5, 3)))
    trunk = keras.Model(crop, pooled, name="raw_trunk")  # [batch, 2 * resnet filters]
    raw = PhaseAverage(trunk, phases, name="raw_phases")(inputs)

    # float32 whatever the policy: the STFT's phase and the log need its precision.
    mv = layers.Rescaling(signal_std, signal_mean, name="to_mv", dtype="float32")(inputs)
    spec = SpectrogramLayer(feature_config, stft="matmul", name="stft", dtype="float32")(mv)
    flat = layers.Reshape((frames, bins * channels), name="spec_flat", dtype="float32")(spec)
    # PyTorch's momentum, not Keras' 0.99: ~24 steps per epoch here, and until the moving
    # statistics converge the spectrogram reaches the trunk unnormalized in evaluation.
    flat = layers.BatchNormalization(momentum=0.9, name="spec_norm", dtype="float32")(flat)
    spec = layers.Reshape((frames, bins, channels), name="spec_unflat", dtype="float32")(flat)
    if feature_config.time_masks or feature_config.freq_masks:
        spec = SpecAugment(feature_config, name="spec_augment", dtype="float32")(spec)
    x = spec
    for i, (filters, num_convs) in enumerate(vgg_stages, start=1):
        x = blocks.vgg_block(x, filters, num_convs, 3, name=f"block{i}")
    x = layers.GlobalAveragePooling2D(name="spec_gap")(x)  # [batch, vgg filters]

    streams = raw, x
    if stream_dropout:
        raw, x = StreamDropout(stream_dropout, name="stream_dropout")([raw, x])
    joint = layers.Concatenate(name="joint")([raw, x])
    logits = blocks1d.dense_head(joint, num_classes, dropout, head_units)
    if stream_heads:
        heads = [logits] + [
            blocks1d.dense_head(
                stream, num_classes, dropout, head_units, f"{kind}_head", f"{kind}_logits"
            )
            for kind, stream in zip(("raw", "spec"), streams, strict=True)
        ]
        logits = StreamHeads(name="stream_heads")(heads)
    return keras.Model(inputs, logits, name=name)  # [batch, num_classes]


@keras.saving.register_keras_serializable(package="ecg_keras")
class StreamHeads(keras.layers.Layer):
    """Deep supervision of each stream through the model's one output; an ensemble in inference.

    Why: 3 complex VGGs + 3 resnet1d_wang ensembled gained more over either alone than the
    joint head does (issue 20), and a joint head need not make either trunk good alone. With
    a head per stream beside the joint one, each training record's output is one head's
    logits, drawn uniformly, so the expected loss is the mean of the three heads' losses (each
    trunk learns to answer alone, and the joint head as before) while the model keeps one
    output, one loss and one saved graph. Inference returns the mean of the three heads'
    logits: an ensemble of a 1D model, a spectrogram model and the joint model that share
    their trunks.

    Call:
      list of float32 [batch, classes] logits (joint first) -> float32 [batch, classes].
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, heads, training=False):
        stacked = keras.ops.stack(heads, axis=1)  # [batch, heads, classes]
        if not training:
            return keras.ops.mean(stacked, axis=1)
        pick = keras.random.randint(
            (keras.ops.shape(stacked)[0],), 0, len(heads), seed=self.seed_generator
        )
        one_hot = keras.ops.one_hot(pick, len(heads), dtype=stacked.dtype)  # [batch, heads]
        return keras.ops.sum(stacked * one_hot[:, :, None], axis=1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="ecg_keras")
class StreamDropout(keras.layers.Layer):
    """Modality dropout (ModDrop, Neverova et al., IEEE TPAMI 2016) over the two streams.

    Why: 3 complex VGGs and 3 resnet1d_wang ensembled beat the one-head two-stream model
    (issue 20), and a joint head can lean on whichever trunk fits the training folds first.
    Dropping a whole stream per record makes the head answer from either trunk alone too, as
    the members of an ensemble do. Each record draws one uniform u: u < rate zeroes the 1D
    stream, rate <= u < 2 rate the spectrogram's, otherwise both pass. A stream that passes
    is scaled by 1 / (1 - rate), its chance to pass, so that its expected value in training
    is what inference sees (inverted dropout, as ``keras.layers.Dropout``).

    Args:
      rate: the chance of each stream to be dropped, in (0, 0.5).

    Call:
      [float [batch, f1], float [batch, f2]] -> the same two tensors; identity unless
      ``training``.
    """

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 < float(rate) < 0.5:
            raise ValueError(f"stream dropout rate must be in (0, 0.5), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, streams, training=False):
        first, second = streams
        if not training:
            return first, second
        u = keras.random.uniform(
            (keras.ops.shape(first)[0], 1), seed=self.seed_generator, dtype="float32"
        )
        scale = 1.0 / (1.0 - self.rate)
        keep_first = keras.ops.cast(u >= self.rate, first.dtype) * scale
        keep_second = keras.ops.logical_or(u < self.rate, u >= 2 * self.rate)
        keep_second = keras.ops.cast(keep_second, second.dtype) * scale
        return first * keep_first, second * keep_second

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0]), tuple(input_shape[1])

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="ecg_keras")
class PhaseAverage(keras.layers.Layer):
    """The 1D trunk, averaged over ``phases`` crops one sample apart when not training.

    The trunk halves time twice (stride 4), so a 1-sample shift of its input moves its
    feature map by a quarter step, which aliasing turns into other features: measured on
    ``vgg_resnet1d``, the per-record largest |dp| under a 1-sample delay had a 95th percentile
    of 0.062-0.069 with one phase. Averaged over crops ``x[k : samples - phases + 1 + k]``,
    k = 0 .. phases - 1, a 1-sample shift changes one crop of the set, not all of them: 0.016
    with 4 phases (docs/results.md). Training sees the whole input (random crops already move
    it by whole samples), so the trained weights do not depend on ``phases``; only inference
    costs ``phases`` times the trunk. Windows cut at a stride of 1 modulo 4 (the main config's
    25 samples) average the same offsets over the record, so ``vgg_resnet1d`` keeps 1.

    Args:
      trunk: keras.Model float32 [batch, any samples, 12] -> [batch, features].
      phases: crops to average over, >= 1 (1: the trunk on the whole input).

    Call:
      float32 [batch, samples, 12] -> float32 [batch, features].
    """

    def __init__(self, trunk, phases=1, **kwargs):
        super().__init__(**kwargs)
        if not is_positive_int(phases):
            raise ValueError(f"phases must be an integer >= 1, got {phases!r}")
        self.trunk = trunk
        self.phases = int(phases)

    def call(self, signal, training=False):
        if training or self.phases == 1:
            return self.trunk(signal, training=training)
        length = keras.ops.shape(signal)[1] - self.phases + 1
        crops = [signal[:, k : k + length] for k in range(self.phases)]
        return keras.ops.mean(keras.ops.stack([self.trunk(c) for c in crops], 0), 0)

    def compute_output_shape(self, input_shape):
        return self.trunk.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "trunk": keras.saving.serialize_keras_object(self.trunk),
            "phases": self.phases,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["trunk"] = keras.saving.deserialize_keras_object(config["trunk"])
        return cls(**config)
