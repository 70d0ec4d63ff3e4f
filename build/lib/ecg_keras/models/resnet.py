"""ResNet-style 2D CNN on 12-lead spectrograms: a stride-1 stem and a table of stages.

ImageNet ResNets open with a 7 x 7 stride-2 convolution and a stride-2 max pool (a 4x
downsampling). Our input is only 24 x 33 (2.5 s crop) or 118 x 33 (10 s), so the stem here is
one stride-1 convolution, and only the first block of stages 2+ halves frames and bins:
24 x 33 -> 12 x 17 -> 6 x 9 -> 3 x 5 over four stages.

Layer names follow ``keras/src/applications/resnet.py``: ``stem_conv``, ``stage2_block1_1_conv``,
``stage2_block1_0_conv`` (projection shortcut), ``stage2_block1_add``.

    model = build_resnet((24, 33, 12), 5, stages=((32, 2), (64, 2), (128, 2), (256, 2)),
                         stem_filters=32)
"""

from __future__ import annotations

import keras
from keras import layers

from ecg_keras.models import blocks

# ResNet-18 (He et al. 2016): two basic blocks per stage, 64 -> 512 channels.
RESNET18_STAGES = ((64, 2), (128, 2), (256, 2), (512, 2))


def build_resnet(
    input_shape,
    num_classes,
    stages=RESNET18_STAGES,
    stem_filters=64,
    stem_kernel=3,
    kernel_size=3,
    dropout=0.0,
    head="gap",
    dense_units=256,
    input_norm=True,
    name="resnet",
) -> keras.Model:
    """Builds a ResNet-style spectrogram classifier that outputs logits.

    Args:
      input_shape: (frames, bins, channels), e.g. (24, 33, 12) or (118, 33, 12); 36 channels
        for the complex spectrogram. Frames and bins may be None with a pooling head.
      num_classes: number of outputs (labels of a multi-label task).
      stages: sequence of (filters, num_blocks); stage ``i`` (from 1) holds blocks
        ``stage{i}_block{j}`` (``blocks.basic_block``: ResNet-18/34 v1 blocks).
      stem_filters, stem_kernel: the stride-1 stem convolution.
      kernel_size: of the blocks' spatial convolutions.
      dropout: rate before the logits, in [0, 1).
      head: "gap" (global average pooling), "concat" (global max and average pooling) or
        "flatten" (Flatten, Dense(dense_units), ReLU); see ``blocks.head``.
      dense_units: hidden width of the "flatten" head.
      input_norm: a BatchNormalization ``input_bn`` on the input (per-channel scale and shift).
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
        stage_unit="num_blocks",
    )
    if not blocks.is_positive_int(stem_filters):
        raise ValueError(f"stem_filters must be an integer >= 1, got {stem_filters!r}")
    blocks.check_kernel_size("stem_kernel", stem_kernel)

    inputs = keras.Input(input_shape, name="spectrogram")  # [batch, frames, bins, channels]
    x = layers.BatchNormalization(name="input_bn")(inputs) if input_norm else inputs
    x = blocks.conv_bn_relu(x, stem_filters, stem_kernel, "stem")
    # [batch, frames, bins, stem_filters]
    for i, (filters, num_blocks) in enumerate(stages, start=1):
        for j in range(1, num_blocks + 1):
            stride = 2 if i > 1 and j == 1 else 1
            x = blocks.basic_block(x, filters, stride, f"stage{i}_block{j}", kernel_size)
        # [batch, ceil(frames / 2**(i-1)), ceil(bins / 2**(i-1)), filters]
    logits = blocks.head(x, num_classes, head, dropout, dense_units, name="head")
    return keras.Model(inputs, logits, name=name)  # [batch, num_classes]
