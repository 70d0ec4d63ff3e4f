"""VGG-style 2D CNN on 12-lead spectrograms: a table of (filters, num_convs) stages.

Each stage is ``num_convs`` 3 x 3 conv-BN-ReLU layers and a 2 x 2 max pool, so the frames x bins
map halves per stage: for a 2.5 s crop, 24 x 33 -> 12 x 17 -> 6 x 9 -> 3 x 5 -> 2 x 3. Unlike
ImageNet VGG there is no fifth stage (the input is tiny) and BatchNorm follows each convolution.

    model = build_vgg((118, 33, 12), 5, stages=((32, 2), (64, 2), (128, 2), (256, 2)))
    model.get_layer("block2_conv1")  # Conv2D(64, 3)
"""

from __future__ import annotations

import keras
from keras import layers

from ecg_keras.models import blocks

# VGG-11's convolution layout (Simonyan & Zisserman 2015, configuration A) without its fifth
# stage: 1, 1, 2, 2 convolutions of 64 -> 512 channels.
VGG11_STAGES = ((64, 1), (128, 1), (256, 2), (512, 2))


def build_vgg(
    input_shape,
    num_classes,
    stages=VGG11_STAGES,
    kernel_size=3,
    dropout=0.0,
    head="gap",
    dense_units=256,
    input_norm=True,
    name="vgg",
) -> keras.Model:
    """Builds a VGG-style spectrogram classifier that outputs logits.

    Args:
      input_shape: (frames, bins, channels), e.g. (24, 33, 12) for a 2.5 s crop or
        (118, 33, 12) for 10 s (see ``features.spectrogram_shape``; 36 channels for the complex
        spectrogram). Frames and bins may be None with a pooling head.
      num_classes: number of outputs (labels of a multi-label task).
      stages: sequence of (filters, num_convs); stage ``i`` (from 1) is named ``block{i}``.
      kernel_size: of every convolution, int or (frames, bins).
      dropout: rate before the logits, in [0, 1).
      head: "gap" (global average pooling), "concat" (global max and average pooling) or
        "flatten" (Flatten, Dense(dense_units), ReLU); see ``blocks.head``.
      dense_units: hidden width of the "flatten" head.
      input_norm: a BatchNormalization ``input_bn`` on the input, which learns a per-channel
        scale and shift of the (already mean/std normalized) spectrogram.
      name: the model's name.

    Returns:
      keras.Model: float32 [batch, frames, bins, channels] -> logits float32 [batch, num_classes]
      (no activation: train with ``from_logits=True``).

    Raises:
      ValueError: on a bad argument, with the value received.
    """
    input_shape, stages = blocks.check_builder_args(
        input_shape,
        num_classes,
        stages,
        kernel_size,
        dropout,
        head,
        dense_units,
        stage_unit="num_convs",
    )

    inputs = keras.Input(input_shape, name="spectrogram")  # [batch, frames, bins, channels]
    x = layers.BatchNormalization(name="input_bn")(inputs) if input_norm else inputs
    for i, (filters, num_convs) in enumerate(stages, start=1):
        x = blocks.vgg_block(x, filters, num_convs, kernel_size, name=f"block{i}")
        # [batch, ceil(frames / 2**i), ceil(bins / 2**i), filters]
    logits = blocks.head(x, num_classes, head, dropout, dense_units, name="head")
    return keras.Model(inputs, logits, name=name)  # [batch, num_classes]
