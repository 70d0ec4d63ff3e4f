"""The PTB-XL benchmark's ``inception1d``: InceptionTime (Fawaz et al. 2020) on the raw signal.

As the benchmark builds it (``code/models/inception1d.py``, ``kernel_size=8 * 5 = 40``): six
inception modules of ``nb_filters`` = 32 channels per branch. Each module runs a 1 x 1
bottleneck to 32 channels, then convolutions of kernels 39, 19 and 9 (40, 20, 10 made odd), and
beside them a max pool of 3 followed by a 1 x 1 convolution of its own input; the four
branches are concatenated (128 channels), batch-normalized and ReLU'd. Every third module
adds a residual shortcut from the previous shortcut's output (a 1 x 1 conv-BN, always, even
when the channels already match) and applies a ReLU. No stride anywhere: the time axis keeps
its length up to the concat-pool head (``blocks1d.concat_pool_head``).

Layer names: ``module1_bottleneck``, ``module1_conv39``, ``module1_pool``,
``module1_pool_conv``, ``module1_concat``, ``module1_bn``, ``module1_relu``,
``shortcut1_conv``, ``shortcut1_bn``, ``shortcut1_add``, ``shortcut1_relu``.
"""

from __future__ import annotations

import keras
from keras import layers

from ecg_keras.models import blocks1d
from ecg_keras.models.blocks import check_stages, is_positive_int

# (nb_filters, depth): one "stage", so that ``--stages=FILTERSxDEPTH`` can override it.
INCEPTION_STAGES = ((32, 6),)
KERNEL_SIZES = (39, 19, 9)
RESIDUAL_EVERY = 3  # modules per residual shortcut


def inception_module(x, filters, kernel_sizes, bottleneck, name):
    """One inception module.

    Args:
      x: float32 [batch, samples, channels].
      filters: channels of each of the ``len(kernel_sizes) + 1`` branches.
      kernel_sizes: odd kernels of the convolution branches.
      bottleneck: channels of the 1 x 1 bottleneck before them.
      name: e.g. ``"module2"``.

    Returns:
      float32 [batch, samples, (len(kernel_sizes) + 1) * filters].
    """
    bottled = blocks1d.conv(x, bottleneck, 1, f"{name}_bottleneck")
    branches = [blocks1d.conv(bottled, filters, k, f"{name}_conv{k}") for k in kernel_sizes]
    # Keras pools "same" over real samples only, like PyTorch's -inf padding.
    pooled = layers.MaxPooling1D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    branches.append(blocks1d.conv(pooled, filters, 1, f"{name}_pool_conv"))
    x = layers.Concatenate(name=f"{name}_concat")(branches)
    x = blocks1d.batch_norm(x, f"{name}_bn")
    return layers.Activation("relu", name=f"{name}_relu")(x)


def build_inception1d(
    input_shape,
    num_classes,
    stages=INCEPTION_STAGES,
    kernel_sizes=KERNEL_SIZES,
    bottleneck=32,
    use_residual=True,
    dropout=0.5,
    head_units=128,
    name="inception1d",
) -> keras.Model:
    """Builds a 1D InceptionTime network on the raw signal that outputs logits.

    Args:
      input_shape: (samples, 12); samples may be None.
      num_classes: number of outputs.
      stages: one (filters per branch, depth) pair; with ``use_residual`` the depth must be a
        multiple of 3.
      kernel_sizes: odd kernels of the convolution branches.
      bottleneck: channels of each module's 1 x 1 bottleneck.
      use_residual: a shortcut every 3 modules.
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
    pairs = check_stages(stages, "depth")
    if len(pairs) != 1:
        raise ValueError(f"stages must be one (filters, depth) pair, got {stages!r}")
    (filters, depth) = pairs[0]
    if use_residual and depth % RESIDUAL_EVERY:
        raise ValueError(f"depth must be a multiple of {RESIDUAL_EVERY}, got {depth}")
    kernel_sizes = blocks1d.check_odd_kernels("kernel_sizes", kernel_sizes)
    if not is_positive_int(bottleneck):
        raise ValueError(f"bottleneck must be an integer >= 1, got {bottleneck!r}")

    inputs = keras.Input(input_shape, name="signal")  # [batch, samples, 12]
    x = residual = inputs
    for d in range(1, depth + 1):
        x = inception_module(x, filters, kernel_sizes, bottleneck, f"module{d}")
        # [batch, samples, (len(kernel_sizes) + 1) * filters]
        if use_residual and d % RESIDUAL_EVERY == 0:
            k = d // RESIDUAL_EVERY
            shortcut = blocks1d.conv(residual, x.shape[-1], 1, f"shortcut{k}_conv")
            shortcut = blocks1d.batch_norm(shortcut, f"shortcut{k}_bn")
            x = layers.Add(name=f"shortcut{k}_add")([x, shortcut])
            x = residual = layers.Activation("relu", name=f"shortcut{k}_relu")(x)
    logits = blocks1d.concat_pool_head(x, num_classes, dropout, head_units)
    return keras.Model(inputs, logits, name=name)  # [batch, num_classes]
