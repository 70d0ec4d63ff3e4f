"""CNNs for PTB-XL: named presets, builders, and the raw-ECG wrapper.

Two kinds of presets, told apart by ``representation(name)``: 2D CNNs on the spectrogram
("spectrogram": vgg, resnet) and the PTB-XL benchmark's 1D CNNs on the raw signal ("signal":
resnet1d, xresnet1d, inception1d).

    model = models.get("vgg_small", (24, 33, 12), num_classes=5)  # logits [batch, 5]
    model = models.get("resnet_small", (118, 33, 12), 5, dropout=0.3)  # overrides kwargs
    model = models.get("resnet1d_wang", (None, 12), 5)  # standardized signal -> logits
    raw = models.build_raw_model(model, feature_config, mean, std)  # takes the ECG itself

Presets (5 classes; every preset has a global-average-pooling head, so the parameter count
does not depend on the number of frames; multiply-adds per example at 24 / 118 frames):

| preset | family | stages (filters, convs or basic blocks) | params | MACs |
| --- | --- | --- | --- | --- |
| vgg, vgg11 | vgg | (64,1) (128,1) (256,2) (512,2) | 4,513,845 | 121M / 605M |
| vgg_small | vgg | (32,2) (64,2) (128,2) (256,2) | 1,179,061 | 47M / 231M |
| vgg_tiny | vgg | (4,1) (8,1) (16,1) | 2,117 | 0.4M / 2M |
| resnet, resnet18 | resnet | (64,2) (128,2) (256,2) (512,2), stem 64 | 11,186,229 | 468M / 2.3G |
| resnet_small | resnet | (32,2) (64,2) (128,2) (256,2), stem 32 | 2,803,765 | 118M / 587M |
| resnet_tiny | resnet | (4,1) (8,1) (16,1), stem 4 | 5,669 | 1M / 5M |

With the complex input (``--input=complex``: 36 channels, not 12) only the first convolution
and ``input_bn`` grow: vgg_small 1,186,069 parameters, resnet_small 2,810,773.

The 1D presets (5 classes; concat max + average pooling, so any number of samples; MACs at
250 / 1000 samples). Parameter counts include BatchNorm's moving mean and variance, which
PyTorch does not count (resnet1d_wang: 473,349 trainable, the benchmark's figure):

| preset | family | architecture | params | MACs |
| --- | --- | --- | --- | --- |
| resnet1d_wang | resnet1d | stem 128 k7, 3 basic blocks of 128 (k5, k3) | 476,421 | 63M / 252M |
| xresnet1d101 | xresnet1d | [3,4,23,3] bottlenecks of 64 (256 out) | 1,899,653 | 41M / 162M |
| inception1d | inception1d | 6 modules of 4 x 32 (k39, k19, k9, pool) | 510,469 | 118M / 471M |
| resnet1d_tiny | resnet1d | stem 8 k7, 3 basic blocks of 8, head 16 | 3,109 | 0.4M / 1.6M |

``resnet1d_tiny`` is for tests only.

The two-stream preset (``models/dual.py``): the signal into resnet1d_wang's trunk and, through
its own STFT (``--input``'s channels), into vgg_small's trunk; both pooled into one head.
Representation "signal"; it takes exactly ``input_samples`` samples. ``vgg_resnet1d`` runs its
1D trunk once per window: the main config's windows every 25 samples already cover the trunk's
four sub-stride offsets. The tiny preset averages it over 4 crops one sample apart
(``dual.PhaseAverage``, for the windows every 1.25 s of the other configs).

| preset | family | architecture | params |
| --- | --- | --- | --- |
| vgg_resnet1d | dual | vgg_small + resnet1d_wang trunks, MLP head 128 | 1,700,469 |
| vgg_resnet1d_tiny | dual | for tests only | |

``vgg11`` keeps VGG-11's full widths rather than a width-reduced copy: halving them gives
1.13M parameters, a near duplicate of ``vgg_small``, whereas full widths make the presets a
real capacity axis (tiny -> small -> full). ``vgg_small`` is the MEASURED spectrogram baseline
(shared/MEASURED.md: VGG-style 4 x 2 convolutions, 32 -> 256 channels, validation macro AUC
0.900 on about 1,500 training records) and the safer choice for that data size on a 2-core
CPU: ``vgg11`` has 3.8x its parameters and 2.6x its multiply-adds. ``resnet_small`` is the
measured ResNet-18-like recipe (validation 0.892). The ``*_tiny`` presets are for tests only;
they have three stages because a "gap" head only knows where a pattern sits in frequency
through the zero padding at the edges, which two stages (receptive field ~8 bins) cannot see
from the middle bins.
"""

from __future__ import annotations

import keras

from ecg_keras.models.dual import build_dual
from ecg_keras.models.inception1d import build_inception1d
from ecg_keras.models.raw import SpectrogramLayer, StandardizeLayer, build_raw_model
from ecg_keras.models.resnet import RESNET18_STAGES, build_resnet
from ecg_keras.models.resnet1d import WANG_STAGES, build_resnet1d
from ecg_keras.models.vgg import VGG11_STAGES, build_vgg
from ecg_keras.models.xresnet1d import XRESNET101_STAGES, build_xresnet1d

FAMILIES = {
    "vgg": build_vgg,
    "resnet": build_resnet,
    "resnet1d": build_resnet1d,
    "xresnet1d": build_xresnet1d,
    "inception1d": build_inception1d,
    "dual": build_dual,
}
# Families on the standardized signal; the rest take spectrograms. "dual" computes its own
# spectrogram from the signal (models/dual.py).
SIGNAL_FAMILIES = ("resnet1d", "xresnet1d", "inception1d", "dual")

_SMALL_STAGES = ((32, 2), (64, 2), (128, 2), (256, 2))
_TINY_STAGES = ((4, 1), (8, 1), (16, 1))

# name -> (family, builder kwargs). ``get`` copies the kwargs, so callers cannot change these.
PRESETS = {
    "vgg11": ("vgg", {"stages": VGG11_STAGES}),
    "vgg_small": ("vgg", {"stages": _SMALL_STAGES}),
    "vgg_tiny": ("vgg", {"stages": _TINY_STAGES}),
    "resnet18": ("resnet", {"stages": RESNET18_STAGES, "stem_filters": 64}),
    "resnet_small": ("resnet", {"stages": _SMALL_STAGES, "stem_filters": 32}),
    "resnet_tiny": ("resnet", {"stages": _TINY_STAGES, "stem_filters": 4}),
    "resnet1d_wang": ("resnet1d", {"stages": WANG_STAGES, "stem_filters": 128}),
    "resnet1d_tiny": (
        "resnet1d",
        {"stages": ((8, 1), (8, 1), (8, 1)), "stem_filters": 8, "head_units": 16},
    ),
    "xresnet1d101": ("xresnet1d", {"stages": XRESNET101_STAGES}),
    "inception1d": ("inception1d", {}),
    "vgg_resnet1d": ("dual", {"phases": 1}),
    "vgg_resnet1d_tiny": (
        "dual",
        {
            "vgg_stages": ((4, 1), (8, 1), (16, 1)),
            "resnet_stages": ((8, 1), (8, 1), (8, 1)),
            "stem_filters": 8,
            "head_units": 16,
            "phases": 4,
        },
    ),
}
PRESETS["vgg"] = PRESETS["vgg11"]
PRESETS["resnet"] = PRESETS["resnet18"]


def representation(name) -> str:
    """What the preset ``name`` takes: "signal" (1D, raw samples) or "spectrogram" (2D)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; known presets: {sorted(PRESETS)}")
    return "signal" if PRESETS[name][0] in SIGNAL_FAMILIES else "spectrogram"


def is_two_stream(name) -> bool:
    """Whether the preset ``name`` computes its own spectrogram from the signal
    (``models/dual.py``): it takes a fixed number of samples and the run's ``--input``."""
    return PRESETS[name][0] == "dual"


def load(path) -> keras.Model:
    """``keras.models.load_model(path, compile=False)``: a saved network for inference or
    warm starts. Through this package, every custom layer it may name is registered
    (``raw.SpectrogramLayer``, ``raw.SpecAugment``, ``dual.PhaseAverage``,
    ``dual.StreamDropout``, ``dual.StreamHeads``)."""
    return keras.models.load_model(path, compile=False)


def get(name, input_shape, num_classes, **overrides) -> keras.Model:
    """Builds the preset ``name``.

    Args:
      name: a key of ``PRESETS``; also the model's name unless ``overrides`` has ``name``.
      input_shape: (frames, bins, channels), e.g. ``features.spectrogram_shape(config,
        samples)`` (12 channels, or 36 for the complex input), for a spectrogram preset;
        (samples, 12), samples may be None, for a signal preset.
      num_classes: number of logits.
      **overrides: builder keyword arguments that replace the preset's (``dropout=0.3``,
        ``head="flatten"``, ``stages=...``); see the family's builder in ``FAMILIES``. New
        ResNet (2D or 1D) ``stages`` without ``stem_filters`` give a stem as wide as the
        first stage.

    Returns:
      keras.Model: float32 [batch, frames, bins, channels] or [batch, samples, 12] -> logits
      float32 [batch, num_classes].

    Raises:
      ValueError: unknown preset (the message lists the known ones), or a bad argument.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; known presets: {sorted(PRESETS)}")
    family, kwargs = PRESETS[name]
    if (
        family in ("resnet", "resnet1d")
        and "stages" in overrides
        and "stem_filters" not in overrides
    ):
        overrides = {**overrides, "stem_filters": overrides["stages"][0][0]}  # like the presets
    kwargs = {"name": name, **kwargs, **overrides}
    return FAMILIES[family](input_shape, num_classes, **kwargs)


__all__ = [
    "FAMILIES",
    "PRESETS",
    "SIGNAL_FAMILIES",
    "SpectrogramLayer",
    "StandardizeLayer",
    "build_dual",
    "build_inception1d",
    "build_raw_model",
    "build_resnet",
    "build_resnet1d",
    "build_vgg",
    "build_xresnet1d",
    "get",
    "is_two_stream",
    "load",
    "representation",
]
