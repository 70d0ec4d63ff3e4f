"""The PTB-XL benchmark's ``resnet1d_wang``: a small 1D ResNet on the raw 12-lead signal.

After Wang et al. (2017), as the benchmark builds it (``code/models/resnet1d.py``,
``resnet1d_wang`` called with ``kernel_size=5`` and ``lin_ftrs_head=[128]``): a stride-1 stem
convolution of 128 channels (kernel 7), then three basic blocks of 128 channels, each two
convolutions of kernels 5 and 3; blocks 2 and 3 halve the time axis on their first convolution
and a 1 x 1 strided projection shortcut. For a 2.5 s crop at 100 Hz: 250 -> 250 -> 125 -> 63
samples. Then the concat-pool head (``blocks1d.concat_pool_head``).

Layer names follow ``resnet.py``: ``stem_conv``, ``stage2_block1_1_conv``,
``stage2_block1_0_conv`` (projection), ``stage2_block1_add``, ``stage2_block1_out``.

    model = build_resnet1d((250, 12), 5)  # the benchmark's resnet1d_wang, logits [batch, 5]
"""

from __future__ import annotations

import keras
from keras import layers

from ecg_keras.models import blocks1d
from ecg_keras.models.blocks import check_stages, is_positive_int

# (filters, basic blocks) per stage: the benchmark's [1, 1, 1] with fix_feature_dim (128 each).
WANG_STAGES = ((128, 1), (128, 1), (128, 1))


def basic_block(x, filters, stride, kernel_sizes, name):
    """Two convolutions (kernels ``kernel_sizes``) plus a shortcut, ReLU after the sum.

    Args:
      x: float32 [batch, samples, channels].
      filters: output channels.
      stride: 1, or 2 to halve the time axis (first convolution and shortcut).
      kernel_sizes: (first, second) odd kernel sizes.
      name: e.g. ``"stage2_block1"``: ``_1_conv``, ``_2_conv``, ``_0_conv`` (projection, only
        when the stride or the channels change), ``_add``, ``_out``.

    Returns:
      float32 [batch, ceil(samples / stride), filters].
    """
    shortcut = x
    if stride != 1 or x.shape[-1] != filters:
        shortcut = blocks1d.conv(x, filters, 1, f"{name}_0_conv", stride)
        shortcut = blocks1d.batch_norm(shortcut, f"{name}_0_bn")
    y = blocks1d.conv_bn(x, filters, kernel_sizes[0], f"{name}_1", strides=stride)
    y = blocks1d.conv_bn(y, filters, kernel_sizes[1], f"{name}_2", relu=False)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def build_resnet1d(
    input_shape,
    num_classes,
    stages=WANG_STAGES,
    stem_filters=128,
    stem_kernel=7,
    kernel_sizes=(5, 3),
    dropout=0.5,
    head_units=128,
    name="resnet1d",
) -> keras.Model:
    """Builds a 1D ResNet on the raw signal that outputs logits.

    Args:
      input_shape: (samples, 12); samples may be None (global pooling takes any length).
      num_classes: number of outputs (labels of a multi-label task).
      stages: sequence of (filters, num_blocks); stage ``i`` (from 1) holds blocks
        ``stage{i}_block{j}``; the first block of stages 2+ has stride 2.
      stem_filters, stem_kernel: the stride-1 stem convolution (odd kernel).
      kernel_sizes: the two odd kernels of every basic block.
      dropout: the head's last dropout (the first is half of it), in [0, 1); 0.5 in the
        benchmark.
      head_units: hidden width of the head.
      name: the model's name.

    Returns:
      keras.Model: float32 [batch, samples, 12] (standardized signal) -> logits float32
      [batch, num_classes].

    Raises:
      ValueError: on a bad argument, with the value received.
    """
    input_shape = blocks1d.check_args(input_shape, num_classes, dropout, head_units)
    stages = check_stages(stages, "num_blocks")
    if not is_positive_int(stem_filters):
        raise ValueError(f"stem_filters must be an integer >= 1, got {stem_filters!r}")
    blocks1d.check_odd_kernels("stem_kernel", stem_kernel)
    kernel_sizes = blocks1d.check_odd_kernels("kernel_sizes", kernel_sizes)
    if len(kernel_sizes) != 2:
        raise ValueError(f"kernel_sizes must be two odd integers, got {kernel_sizes!r}")

    inputs = keras.Input(input_shape, name="signal")  # [batch, samples, 12]
    x = trunk(inputs, stages, stem_filters, stem_kernel, kernel_sizes)
    logits = blocks1d.concat_pool_head(x, num_classes, dropout, head_units)
    return keras.Model(inputs, logits, name=name)  # [batch, num_classes]


def trunk(x, stages, stem_filters, stem_kernel, kernel_sizes):
    """The stem and the basic blocks (arguments checked by ``build_resnet1d``).

    Returns:
      float32 [batch, ceil(samples / 2**(len(stages) - 1)), stages[-1][0]].
    """
    x = blocks1d.conv_bn(x, stem_filters, stem_kernel, "stem")
    for i, (filters, num_blocks) in enumerate(stages, start=1):
        for j in range(1, num_blocks + 1):
            stride = 2 if i > 1 and j == 1 else 1
            x = basic_block(x, filters, stride, kernel_sizes, f"stage{i}_block{j}")
        # [batch, ceil(samples / 2**(i-1)), filters]
    return x
