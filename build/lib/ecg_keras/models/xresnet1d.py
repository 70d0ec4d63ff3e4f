"""The PTB-XL benchmark's ``xresnet1d101``: fastai's XResNet (He et al. 2019, "bag of tricks")
in 1D on the raw 12-lead signal.

As the benchmark builds it (``code/models/xresnet1d.py``, called with ``kernel_size=5`` and
``lin_ftrs_head=[128]``):

- Stem: three conv-BN-ReLU of 32, 32 and 64 channels, kernel 5, the first with stride 2, then
  a max pool of 3 at stride 2 (padding 1).
- Stages: bottleneck blocks (1 x 1, kernel 5, 1 x 1 with 4x expansion), [3, 4, 23, 3] of them,
  stride 2 on the middle convolution of the first block of stages 2+. Every stage is 64 wide
  (256 channels out): the benchmark's code fixes ``block_szs`` at 64, its ImageNet-style
  64/128/256/512 line is commented out.
- Shortcut (ResNet-D): a 2-wide average pool when the stride is 2, then a 1 x 1 conv-BN only
  when the channels change, so only the first block has a projection.
- Head: ``blocks1d.concat_pool_head`` on 256 channels.

For a 2.5 s crop at 100 Hz: 250 -> 125 (stem) -> 63 (pool) -> 63, 32, 16, 8 over the stages.

fastai starts each block's last BatchNorm at gamma 0 (``zero_init_last_bn``), but the
benchmark then re-initializes the whole model (``weight_init``: every gamma 1) before training,
so the preset trains from gamma 1, like the benchmark; the option keeps fastai's variant.

Layer names: ``stem1_conv``, ``stem_pool``, ``stage3_block1_2_conv``, ``stage1_block1_0_conv``
(projection), ``stage2_block1_0_pool``, ``stage2_block1_add``.
"""

from __future__ import annotations

import keras
from keras import layers

from ecg_keras.models import blocks1d
from ecg_keras.models.blocks import check_stages, is_positive_int

# (width, blocks) per stage: xresnet1d101's [3, 4, 23, 3] at the benchmark's width of 64.
XRESNET101_STAGES = ((64, 3), (64, 4), (64, 23), (64, 3))
STEM_FILTERS = (32, 32, 64)


def _shortcut(x, channels, stride, name):
    """Average pool (stride 2) then 1 x 1 conv-BN (channels change), or the identity."""
    if stride != 1:
        # "same" averages only real samples, like PyTorch's ceil_mode=True for odd lengths.
        x = layers.AveragePooling1D(2, padding="same", name=f"{name}_0_pool")(x)
    if x.shape[-1] != channels:
        x = blocks1d.conv(x, channels, 1, f"{name}_0_conv")
        x = blocks1d.batch_norm(x, f"{name}_0_bn")
    return x


def xblock(x, width, expansion, stride, kernel_size, zero_init_last_bn, name):
    """One XResNet block: bottleneck (``expansion`` > 1) or basic (``expansion`` == 1).

    Args:
      x: float32 [batch, samples, channels].
      width: channels inside the block; it outputs ``width * expansion``.
      expansion: 4 for xresnet1d50/101/152, 1 for xresnet1d18/34.
      stride: 1, or 2 on the kernel-size convolution and the shortcut's pool.
      kernel_size: odd kernel of the non-1 x 1 convolutions.
      zero_init_last_bn: start the last BatchNorm's gamma at 0.
      name: e.g. ``"stage2_block1"``: ``_1_conv``, ``_2_conv`` (``_3_conv``), ``_add``, ``_out``.

    Returns:
      float32 [batch, ceil(samples / stride), width * expansion].
    """
    channels = width * expansion
    if expansion == 1:
        y = blocks1d.conv_bn(x, width, kernel_size, f"{name}_1", strides=stride)
        last = 2
    else:
        y = blocks1d.conv_bn(x, width, 1, f"{name}_1")
        y = blocks1d.conv_bn(y, width, kernel_size, f"{name}_2", strides=stride)
        last = 3
    last_kernel = 1 if expansion > 1 else kernel_size
    y = blocks1d.conv_bn(
        y, channels, last_kernel, f"{name}_{last}", relu=False, zero_gamma=zero_init_last_bn
    )
    y = layers.Add(name=f"{name}_add")([_shortcut(x, channels, stride, name), y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def build_xresnet1d(
    input_shape,
    num_classes,
    stages=XRESNET101_STAGES,
    expansion=4,
    stem_filters=STEM_FILTERS,
    stem_kernel=5,
    kernel_size=5,
    zero_init_last_bn=False,
    dropout=0.5,
    head_units=128,
    name="xresnet1d",
) -> keras.Model:
    """Builds a 1D XResNet on the raw signal that outputs logits.

    Args:
      input_shape: (samples, 12); samples may be None.
      num_classes: number of outputs.
      stages: sequence of (width, num_blocks); block outputs are ``width * expansion`` wide.
      expansion: 4 (bottleneck blocks) or 1 (basic blocks).
      stem_filters: channels of the stem's convolutions (the first has stride 2).
      stem_kernel, kernel_size: odd kernels of the stem and of the blocks.
      zero_init_last_bn: fastai's zero gamma on each block's last BatchNorm (see above).
      dropout: the head's last dropout (the first is half of it), in [0, 1).
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
    if expansion not in (1, 4):
        raise ValueError(f"expansion must be 1 or 4, got {expansion!r}")
    stem_filters = tuple(stem_filters) if isinstance(stem_filters, (tuple, list)) else ()
    if not stem_filters or not all(map(is_positive_int, stem_filters)):
        raise ValueError(f"stem_filters must be integers >= 1, got {stem_filters!r}")
    (stem_kernel,) = blocks1d.check_odd_kernels("stem_kernel", stem_kernel)
    (kernel_size,) = blocks1d.check_odd_kernels("kernel_size", kernel_size)

    inputs = keras.Input(input_shape, name="signal")  # [batch, samples, 12]
    x = inputs
    for i, filters in enumerate(stem_filters, start=1):
        x = blocks1d.conv_bn(x, filters, stem_kernel, f"stem{i}", strides=2 if i == 1 else 1)
    # After the ReLU every value is >= 0, so zero padding pools like PyTorch's -inf padding.
    x = layers.ZeroPadding1D(1, name="stem_pad")(x)
    x = layers.MaxPooling1D(3, strides=2, name="stem_pool")(x)  # [batch, ceil(samples / 4), 64]
    for i, (width, num_blocks) in enumerate(stages, start=1):
        for j in range(1, num_blocks + 1):
            stride = 2 if i > 1 and j == 1 else 1
            x = xblock(
                x, width, expansion, stride, kernel_size, zero_init_last_bn, f"stage{i}_block{j}"
            )
        # [batch, ceil(samples / 2**(i+1)), width * expansion]
    logits = blocks1d.concat_pool_head(x, num_classes, dropout, head_units)
    return keras.Model(inputs, logits, name=name)  # [batch, num_classes]
