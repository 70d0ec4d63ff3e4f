"""Building blocks of the PTB-XL benchmark's 1D CNNs on the raw signal, and their checks.

The benchmark (Strodthoff et al., IEEE JBHI 2021; helme/ecg_ptbxl_benchmarking) is PyTorch.
These blocks reproduce its layers' arithmetic, not just their shapes:

- Padding: PyTorch pads ``(k - 1) // 2`` zeros on both sides. Keras' "same" does the same
  for an odd kernel at stride 1, but at stride 2 on an even length it puts the extra zero on
  the right, which shifts a strided branch by one sample against its 1 x 1 shortcut. Strided
  convolutions therefore get an explicit ``ZeroPadding1D`` and "valid" padding.
- BatchNorm: PyTorch's momentum 0.1 and epsilon 1e-5 (Keras: 0.99, 1e-3). With a few hundred
  steps per run (PTB-XL subset: ~11 per epoch), 0.99 leaves the moving statistics that
  evaluation uses far from the batch statistics that training used.
- Initialization: the benchmark re-initializes every model with ``weight_init`` before
  training: Kaiming-normal convolutions and linear layers, BatchNorm gamma 1 and beta 0.

Shapes: ``x`` is float32 [batch, samples, channels], channels last (the 12 leads at the
input). Layer names derive from ``name`` as in ``blocks.py``: ``stage2_block1_1_conv``.
"""

from __future__ import annotations

from keras import layers

from ecg_keras.models.blocks import CONV_INITIALIZER, NUM_LEADS, check_rate, is_positive_int

BN_MOMENTUM = 0.9  # PyTorch's momentum=0.1: new = 0.9 * old + 0.1 * batch
BN_EPSILON = 1e-5


def conv(x, filters, kernel_size, name, strides=1):
    """Conv1D ``name`` without bias, padded like PyTorch's ``padding=(k - 1) // 2``.

    Returns:
      float32 [batch, (samples + 2 * ((k - 1) // 2) - k) // strides + 1, filters]: for an odd
      ``kernel_size``, ceil(samples / strides).
    """
    if strides == 1 and kernel_size % 2:
        padding = "same"  # the same zeros on both sides as PyTorch
    else:
        x = layers.ZeroPadding1D((kernel_size - 1) // 2, name=f"{name}_pad")(x)
        padding = "valid"
    return layers.Conv1D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer=CONV_INITIALIZER,
        name=name,
    )(x)


def batch_norm(x, name, zero_gamma=False):
    """BatchNormalization ``name`` with PyTorch's momentum and epsilon; ``zero_gamma`` starts
    its scale at 0, so that a residual block ending in it starts as its shortcut alone."""
    return layers.BatchNormalization(
        momentum=BN_MOMENTUM,
        epsilon=BN_EPSILON,
        gamma_initializer="zeros" if zero_gamma else "ones",
        name=name,
    )(x)


def conv_bn(x, filters, kernel_size, name, strides=1, relu=True, zero_gamma=False):
    """``{name}_conv`` -> ``{name}_bn`` -> ``{name}_relu`` (unless ``relu`` is False).

    Returns:
      float32 [batch, ceil(samples / strides), filters] for an odd ``kernel_size``.
    """
    x = conv(x, filters, kernel_size, f"{name}_conv", strides)
    x = batch_norm(x, f"{name}_bn", zero_gamma)
    if relu:
        x = layers.Activation("relu", name=f"{name}_relu")(x)
    return x


def concat_pool_head(x, num_classes, dropout, units, name="head"):
    """The benchmark's head (fastai ``create_head1d`` with ``lin_ftrs=[units]``).

    Global max and average pooling concatenated (``{name}_max``, ``{name}_avg``,
    ``{name}_concat``), then ``dense_head``.

    Args:
      x: float32 [batch, samples, channels].
      num_classes, dropout, units, name: as ``dense_head``.

    Returns:
      float32 [batch, num_classes] logits, no activation (the loss takes ``from_logits``).
    """
    return dense_head(concat_pool(x, name), num_classes, dropout, units, name)


def concat_pool(x, name="head"):
    """Global max and average pooling concatenated: float32 [batch, samples, channels] ->
    [batch, 2 * channels] (``{name}_max``, ``{name}_avg``, ``{name}_concat``)."""
    pooled = [
        layers.GlobalMaxPooling1D(name=f"{name}_max")(x),
        layers.GlobalAveragePooling1D(name=f"{name}_avg")(x),
    ]
    return layers.Concatenate(name=f"{name}_concat")(pooled)


def dense_head(x, num_classes, dropout, units, name="head", logits_name="logits"):
    """The benchmark's MLP on pooled features: BN ``{name}_bn1`` -> dropout ``dropout / 2`` ->
    Dense(units) ``{name}_dense`` -> ReLU -> BN ``{name}_bn2`` -> dropout ``dropout`` ->
    Dense(num_classes) ``logits`` (fastai halves the rate of every dropout but the last).

    Args:
      x: float32 [batch, features].
      num_classes: outputs.
      dropout: rate of the last dropout, in [0, 1); 0 adds no dropout layers.
      units: hidden width (the benchmark's 128).
      name: prefix of the layer names.
      logits_name: the name of the last Dense (``logits``; a model with several heads names
        the others differently).

    Returns:
      float32 [batch, num_classes] logits, no activation.
    """
    x = batch_norm(x, f"{name}_bn1")
    if dropout:
        x = layers.Dropout(dropout / 2, name=f"{name}_dropout1")(x)
    x = layers.Dense(units, kernel_initializer=CONV_INITIALIZER, name=f"{name}_dense")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)  # [batch, units]
    x = batch_norm(x, f"{name}_bn2")
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout2")(x)
    # float32 logits even under a mixed_float16 policy: the loss needs full precision.
    return layers.Dense(
        num_classes, kernel_initializer=CONV_INITIALIZER, dtype="float32", name=logits_name
    )(x)


def check_args(input_shape, num_classes, dropout, head_units) -> tuple:
    """Validates what every 1D builder shares; returns ``input_shape`` as a tuple.

    Raises:
      ValueError: naming the argument and the value received.
    """
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else None
    if (
        shape is None
        or len(shape) != 2
        or shape[1] != NUM_LEADS
        or not (shape[0] is None or is_positive_int(shape[0]))
    ):
        raise ValueError(
            f"input_shape must be (samples, {NUM_LEADS}) with samples None or >= 1, "
            f"got {input_shape!r}"
        )
    if not is_positive_int(num_classes):
        raise ValueError(f"num_classes must be an integer >= 1, got {num_classes!r}")
    check_rate("dropout", dropout)
    if not is_positive_int(head_units):
        raise ValueError(f"head_units must be an integer >= 1, got {head_units!r}")
    return shape


def check_odd_kernels(name, sizes) -> tuple[int, ...]:
    """``sizes`` (an int or a sequence) as a tuple of odd ints >= 1, or ValueError: an even
    kernel has no centre, so PyTorch's symmetric padding would shift it by half a sample."""
    sizes = tuple(sizes) if isinstance(sizes, (tuple, list)) else (sizes,)
    if not sizes or not all(is_positive_int(k) and k % 2 for k in sizes):
        raise ValueError(f"{name} must be odd integers >= 1, got {sizes!r}")
    return sizes
