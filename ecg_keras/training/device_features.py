"""Training with the spectrogram computed by the model (``--features_in=model``).

``tf.data`` then only reads, crops and scales the signal; the training model's first layers
compute the spectrogram, its normalization and SpecAugment where the model's step runs (the
GPU, or the CPU's intra-op threads instead of tf.data's), and XLA can fuse them with the step:

    network = recipe.build_model(run)          # spectrogram -> logits: what is saved
    trainer = training_model(network, run)     # raw crops -> logits: what is fitted
    run.split(folds, True, raw=True)           # yields the crops it takes

The network's layers are shared, so fitting ``trainer`` trains ``network``; ``KeepModel``
saves ``network``, so evaluation and export are the same whichever path trained it.
"""

from __future__ import annotations

import functools
import os

import keras
import tensorflow as tf

from ecg_keras.data import ptbxl
from ecg_keras.models.raw import SpecAugment, SpectrogramLayer


def computes_features(config) -> bool:
    """Whether a run's training model computes its spectrogram (``features_in="model"``)."""
    return config.features_in == "model" and config.features.representation == "spectrogram"


def training_model(network, run):
    """The model that ``fit`` trains: ``network`` itself, or with ``--features_in=model`` the
    spectrogram, normalization and SpecAugment in front of it.

    Args:
      network: keras.Model float32 [batch, frames, bins, channels] -> logits (``build_model``).
      run: the ``training.run.Run`` (its features and training statistics).

    Returns:
      ``network``, or keras.Model ``ecg`` float32 [batch, input_samples, 12] (mV) -> logits
      float32 [batch, classes]. The feature layers run in float32 whatever the dtype policy:
      the STFT and log need float32 range and precision; the network casts their output.
    """
    if not computes_features(run.config):
        return network
    config = run.config.features
    mean, std = run.stats
    ecg = keras.Input((config.input_samples, ptbxl.NUM_LEADS), name="ecg")
    spec = SpectrogramLayer(config, mean, std, name="stft", dtype="float32")(ecg)
    if config.time_masks or config.freq_masks:
        spec = SpecAugment(config, name="spec_augment", dtype="float32")(spec)
    return keras.Model(ecg, network(spec), name=f"{network.name}_trainer")


@functools.cache
def _cpu_trusts_bfloat16() -> bool:
    """Whether oneDNN's bfloat16 path is fast and trusted here: /proc/cpuinfo lists AVX512_BF16
    and not AMX-BF16. Without bfloat16 instructions TF emulates it (slower than float32).

    Why not AMX: on an AMX Xeon (TF 2.21's oneDNN), the main config in mixed_bfloat16 turned
    NaN in 2 of 2 runs, at epochs 12 and 15 (resnet1d trunk's stage 3 and the head), while the
    same run with AMX turned off in oneDNN (``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``) stayed
    finite through epoch 21, as did every run on AVX512_BF16 EPYCs; float32 on that Xeon took
    7-11 s per epoch against 5-8 s for the AMX bfloat16 runs (docs/results.md). oneDNN has a
    reported AMX bfloat16 matmul bug that writes NaN into unrelated rows (uxlfoundation/oneDNN
    issue 5717), which may be the cause; not proven here."""
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file():
        return False
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return trusts_bfloat16(line.split())
    return False


def trusts_bfloat16(cpu_flags) -> bool:
    """``_cpu_trusts_bfloat16``'s rule on a CPU's flags (/proc/cpuinfo names, lower case)."""
    flags = set(cpu_flags)
    return "avx512_bf16" in flags and "amx_bf16" not in flags


def _onednn_enabled() -> bool:
    """False when ``TF_ENABLE_ONEDNN_OPTS`` turns oneDNN off (TF reads it as a bool: "0" or
    "false"); unset means on (TF >= 2.9 on x86). Without oneDNN, TF emulates bfloat16: on an
    AMX Xeon a Conv1D training step took 2,505 ms in mixed_bfloat16 against 110 ms in float32
    (with oneDNN: 26 vs 67 ms; docs/benchmarks.md)."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1").strip().lower() not in ("0", "false")


def policy(config) -> str:
    """The Keras dtype policy a config trains with: ``config.policy``, with "auto" resolved to
    mixed_float16 on a GPU, mixed_bfloat16 on a CPU with AVX512_BF16 but no AMX and oneDNN on,
    float32 else."""
    if config.policy != "auto":
        return config.policy
    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if _cpu_trusts_bfloat16() and _onednn_enabled() else "float32"


def float32_network(network, run):
    """``network``'s architecture and weights under the float32 policy (what ``KeepModel``
    saves), or ``network`` itself when it was built in float32."""
    from ecg_keras.training import recipe

    if policy(run.config) == "float32":
        return network
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        copy = recipe.build_model(run)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    copy.set_weights(network.get_weights())  # mixed policies keep float32 variables
    return copy


def float32_saver(network, run):
    """What ``KeepModel`` saves for a network trained in a mixed policy or inside a training
    model: a function returning ``float32_network``, built on its first call and afterwards
    only given the network's current weights (a save per improved epoch need not rebuild)."""
    kept = []

    def saved():
        if not kept:
            kept.append(float32_network(network, run))
        elif kept[0] is not network:
            kept[0].set_weights(network.get_weights())
        return kept[0]

    return saved
