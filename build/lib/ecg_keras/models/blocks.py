"""Building blocks of the spectrogram CNNs, and the argument checks their builders share.

Each block is a plain tensor -> tensor function that takes a ``name`` and derives every layer
name from it, as in Keras Applications (``keras/src/applications/vgg16.py``, ``resnet.py``):
``block2_conv1`` in VGG, ``stage2_block1_1_conv`` / ``stage2_block1_add`` in ResNet. Stable
names let code find layers (``model.get_layer("logits")``) and load weights by name.

Shapes: ``x`` is float32 [batch, frames, bins, channels], channels last (at the input 12:
one per lead, or 36 for the complex spectrogram, ``features.num_channels``). Every convolution
and pooling uses "same" padding, so a stride or pool of 2 maps a size ``n`` to ``ceil(n / 2)``
and never to 0, even on the 24 x 33 frames of a 2.5 s crop.
"""

from __future__ import annotations

import numbers

from keras import layers

from ecg_keras.config import HEADS
from ecg_keras.data.ptbxl import NUM_LEADS

# He initialization suits ReLU networks (He et al. 2015); Keras' default Glorot assumes
# linear units.
CONV_INITIALIZER = "he_normal"


def conv(x, filters, kernel_size, name, strides=1):
    """Conv2D ``name`` with "same" padding and no bias (a following BatchNorm's beta adds one).

    Returns:
      float32 [batch, ceil(frames / strides), ceil(bins / strides), filters].
    """
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer=CONV_INITIALIZER,
        name=name,
    )(x)


def conv_bn_relu(x, filters, kernel_size, name, strides=1, relu=True, suffix=""):
    """Conv2D (no bias) -> BatchNormalization -> ReLU.

    Args:
      x: float32 [batch, frames, bins, channels].
      filters: output channels.
      kernel_size: int or (int, int); "same" padding.
      name: prefix of the layer names ``{name}_conv{suffix}``, ``{name}_bn{suffix}`` and
        ``{name}_relu{suffix}``: ``name="stage2_block1_1"`` gives ``stage2_block1_1_conv``.
      strides: int; 2 halves frames and bins (rounding up).
      relu: False leaves out the ReLU (last convolution of a residual branch).
      suffix: appended to each layer name: ``name="block2", suffix="1"`` gives ``block2_conv1``.

    Returns:
      float32 [batch, ceil(frames / strides), ceil(bins / strides), filters].
    """
    x = conv(x, filters, kernel_size, f"{name}_conv{suffix}", strides)
    x = layers.BatchNormalization(name=f"{name}_bn{suffix}")(x)
    if relu:
        x = layers.Activation("relu", name=f"{name}_relu{suffix}")(x)
    return x


def vgg_block(x, filters, num_convs, kernel_size, name):
    """``num_convs`` x conv_bn_relu, then a 2 x 2 max pool ``{name}_pool``.

    Args:
      x: float32 [batch, frames, bins, channels].
      filters, num_convs, kernel_size: ``num_convs`` convolutions of ``filters`` channels.
      name: e.g. ``"block2"``: layers ``block2_conv1``, ``block2_bn1``, ``block2_relu1``, ...

    Returns:
      float32 [batch, ceil(frames / 2), ceil(bins / 2), filters].
    """
    for i in range(1, num_convs + 1):
        x = conv_bn_relu(x, filters, kernel_size, name, suffix=str(i))
    return layers.MaxPooling2D(2, padding="same", name=f"{name}_pool")(x)


def _shortcut(x, channels, stride, name):
    """Identity, or a 1 x 1 projection ``{name}_0_conv`` + BN when the shape changes."""
    if stride == 1 and x.shape[-1] == channels:
        return x
    shortcut = conv(x, channels, 1, f"{name}_0_conv", stride)
    return layers.BatchNormalization(name=f"{name}_0_bn")(shortcut)


def basic_block(x, filters, stride, name, kernel_size=3):
    """ResNet-18/34 block (v1: conv-BN-ReLU, ReLU after the add): two kernel_size
    convolutions plus a shortcut.

    Args:
      x: float32 [batch, frames, bins, channels].
      filters: output channels.
      stride: 1, or 2 to halve frames and bins (on the first convolution and the shortcut).
      name: e.g. ``"stage2_block1"``: ``stage2_block1_1_conv``, ``_2_conv``, ``_0_conv`` (the
        projection, only when stride or channels change), ``stage2_block1_add``, ``_out``.
      kernel_size: of the two convolutions.

    Returns:
      float32 [batch, ceil(frames / stride), ceil(bins / stride), filters].
    """
    shortcut = _shortcut(x, filters, stride, name)
    y = conv_bn_relu(x, filters, kernel_size, f"{name}_1", strides=stride)
    y = conv_bn_relu(y, filters, kernel_size, f"{name}_2", relu=False)
    y = layers.Add(name=f"{name}_add")([shortcut, y])
    return layers.Activation("relu", name=f"{name}_out")(y)


def head(x, num_classes, head, dropout, dense_units, name):
    """Feature map -> logits.

    Args:
      x: float32 [batch, frames, bins, channels].
      num_classes: outputs.
      head: "gap" (global average pooling ``{name}_gap``), "concat" (global max and average
        pooling concatenated, ``{name}_concat``: the PTB-XL benchmark's 1D head, which keeps
        a short strong pattern that averaging dilutes) or "flatten" (``{name}_flatten``,
        Dense(dense_units) ``{name}_dense``, ReLU ``{name}_relu``).
      dropout: rate before the logits (``{name}_dropout``); 0 adds no layer.
      dense_units: width of the hidden Dense of the "flatten" head; unused by "gap".
      name: prefix of the head's layer names, e.g. ``"head"``.

    Returns:
      float32 [batch, num_classes] logits from a Dense named ``logits`` (the same name whatever
      the head, so training and export code can find it) with no activation: the loss takes
      ``from_logits=True`` and the activation lives in training and inference.
    """
    if head == "gap":
        x = layers.GlobalAveragePooling2D(name=f"{name}_gap")(x)  # [batch, channels]
    elif head == "concat":
        pooled = [
            layers.GlobalMaxPooling2D(name=f"{name}_gmp")(x),
            layers.GlobalAveragePooling2D(name=f"{name}_gap")(x),
        ]
        x = layers.Concatenate(name=f"{name}_concat")(pooled)  # [batch, 2 * channels]
    elif head == "flatten":
        x = layers.Flatten(name=f"{name}_flatten")(x)  # [batch, frames * bins * channels]
        x = layers.Dense(dense_units, kernel_initializer=CONV_INITIALIZER, name=f"{name}_dense")(x)
        x = layers.Activation("relu", name=f"{name}_relu")(x)  # [batch, dense_units]
    else:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    # float32 logits even under a mixed_float16 policy: the loss needs full precision.
    return layers.Dense(num_classes, dtype="float32", name="logits")(x)


def is_positive_int(value):
    """True for an int >= 1 (numpy ints too, bools not)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def check_stages(stages, unit: str) -> tuple[tuple[int, int], ...]:
    """``stages`` as a tuple of (filters, ``unit``) pairs of positive ints, or ValueError."""
    pairs = ()
    if isinstance(stages, (tuple, list)):
        pairs = tuple(tuple(s) if isinstance(s, (tuple, list)) else s for s in stages)
    if not pairs or not all(
        isinstance(s, tuple) and len(s) == 2 and all(map(is_positive_int, s)) for s in pairs
    ):
        raise ValueError(
            f"stages must be a non-empty sequence of (filters, {unit}) pairs of positive "
            f"integers, got {stages!r}"
        )
    return pairs


def check_builder_args(
    input_shape, num_classes, stages, kernel_size, dropout, head, dense_units, *, stage_unit
):
    """Validates the arguments every builder shares; raises ValueError naming what it got.

    Args:
      stage_unit: what the second number of a stage counts, for the message ("num_convs").

    Returns:
      (input_shape, stages) as tuples of ints (frames and bins may be None with a pooling head).
    """
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if (
        shape is None
        or len(shape) != 3
        or not all(d is None or is_positive_int(d) for d in shape)
        or shape[2] is None
        or shape[2] % NUM_LEADS  # 12 leads x 1 (magnitude) or 3 (complex) channels each
    ):
        raise ValueError(
            f"input_shape must be (frames, bins, channels) with positive sizes and channels a "
            f"multiple of {NUM_LEADS} (leads), got {input_shape!r}"
        )
    if not is_positive_int(num_classes):
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    pairs = check_stages(stages, stage_unit)
    check_kernel_size("kernel_size", kernel_size)
    check_rate("dropout", dropout)
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if head == "flatten":
        if not is_positive_int(dense_units):
            raise ValueError(f"dense_units must be an integer >= 1, got {dense_units!r}")
        if None in shape:
            raise ValueError(f"head='flatten' needs static frames and bins, got {input_shape!r}")
    return shape, pairs


def check_kernel_size(name, kernel_size):
    """Raises ValueError unless ``kernel_size`` is an int >= 1 or a pair of them."""
    sizes = kernel_size if isinstance(kernel_size, (tuple, list)) else (kernel_size,)
    if not 1 <= len(sizes) <= 2 or not all(is_positive_int(k) for k in sizes):
        raise ValueError(f"{name} must be an int >= 1 or a pair of them, got {kernel_size!r}")


def check_rate(name, rate):
    """Raises ValueError unless ``rate`` is a number in [0, 1)."""
    if not isinstance(rate, numbers.Real) or isinstance(rate, bool) or not 0 <= rate < 1:
        raise ValueError(f"{name} must be in [0, 1), got {rate!r}")
