"""ecg_keras.models' 1D CNNs on the raw signal (the PTB-XL benchmark's resnet1d_wang,
xresnet1d101, inception1d): presets, parameter counts, layer names, PyTorch padding, argument
checks, the standardizing raw-ECG model, and learning."""

import keras
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ecg_keras import models
from ecg_keras.config import FeatureConfig
from ecg_keras.models import blocks1d, build_inception1d, build_resnet1d, build_xresnet1d

NUM_CLASSES = 5
# The 1D presets on the raw signal (5 classes, any number of samples). Keras counts
# BatchNorm's moving mean and variance, PyTorch does not; see test_resnet1d_wang_parameters.
SIGNAL_PRESET_PARAMS = {
    "resnet1d_wang": 476_421,
    "xresnet1d101": 1_899_653,
    "inception1d": 510_469,
    "resnet1d_tiny": 3_109,
}
SIGNAL = (None, 12)  # [samples, leads]


def test_every_signal_preset_is_in_the_table():
    signal = [  # the two-stream presets: tests/test_dual.py
        n
        for n in models.PRESETS
        if models.representation(n) == "signal" and models.PRESETS[n][0] != "dual"
    ]
    assert sorted(signal) == sorted(SIGNAL_PRESET_PARAMS)


@pytest.mark.parametrize("name", sorted(SIGNAL_PRESET_PARAMS))
def test_signal_preset(name):
    model = models.get(name, SIGNAL, NUM_CLASSES)
    assert model.name == name and model.count_params() == SIGNAL_PRESET_PARAMS[name]
    assert model.input_shape == (None, None, 12) and model.output_shape == (None, NUM_CLASSES)
    last = model.layers[-1]
    assert last.name == "logits" and last.activation is keras.activations.linear
    for samples in (250, 1000):  # a 2.5 s crop and a whole record
        assert model(np.zeros((2, samples, 12), np.float32)).shape == (2, NUM_CLASSES)


def test_resnet1d_wang_parameters():
    """The benchmark's count, layer by layer (PyTorch counts trainable parameters only)."""
    model = models.get("resnet1d_wang", SIGNAL, NUM_CLASSES)
    convs = 12 * 128 * 7 + 3 * 128 * 128 * (5 + 3) + 2 * 128 * 128  # stem, blocks, projections
    bn_channels = 128 * (1 + 2 + 3 + 3) + 2 * 128 + 128  # stem, blocks 1-3, head's two BNs
    dense = 2 * 128 * 128 + 128 + 128 * NUM_CLASSES + NUM_CLASSES  # concat pool -> 128 -> 5
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == convs + 2 * bn_channels + dense == 473_349  # gamma and beta
    assert model.count_params() == trainable + 2 * bn_channels == 476_421  # moving mean, var


def test_resnet1d_wang_layers():
    model = models.get("resnet1d_wang", (250, 12), NUM_CLASSES)
    names = [layer.name for layer in model.layers]
    assert names[:4] == ["signal", "stem_conv", "stem_bn", "stem_relu"]
    kernels = {n: model.get_layer(n).kernel_size for n in ("stem_conv", "stage3_block1_1_conv")}
    assert kernels == {"stem_conv": (7,), "stage3_block1_1_conv": (5,)}
    assert model.get_layer("stage3_block1_2_conv").kernel_size == (3,)
    assert "stage1_block1_0_conv" not in names  # 128 -> 128 at stride 1: identity shortcut
    assert model.get_layer("stage2_block1_1_conv").strides == (2,)
    assert model.get_layer("stage2_block1_0_conv").strides == (2,)
    for i, samples in ((1, 250), (2, 125), (3, 63)):
        assert tuple(model.get_layer(f"stage{i}_block1_out").output.shape) == (None, samples, 128)
    head = ["head_max", "head_avg", "head_concat", "head_bn1", "head_dropout1", "head_dense"]
    assert names[-10:] == [*head, "head_relu", "head_bn2", "head_dropout2", "logits"]
    assert model.get_layer("head_dropout1").rate == 0.25  # fastai halves all but the last
    assert model.get_layer("head_dropout2").rate == 0.5
    bn = model.get_layer("stage1_block1_2_bn")
    assert (bn.momentum, bn.epsilon) == (0.9, 1e-5)  # PyTorch's momentum 0.1


def test_strided_convolutions_pad_like_pytorch():
    """PyTorch pads (k - 1) // 2 zeros on both sides; Keras' "same" would put 1 left, 2 right
    at stride 2 on an even length and shift the branch against its strided 1 x 1 shortcut."""
    inputs = keras.Input((10, 1))
    model = keras.Model(inputs, blocks1d.conv(inputs, 1, 5, "c", strides=2))
    model.get_layer("c").set_weights([np.ones((5, 1, 1), np.float32)])
    x = np.arange(1, 11, dtype=np.float32)
    padded = np.pad(x, 2)
    expected = [padded[2 * j : 2 * j + 5].sum() for j in range(5)]  # torch.nn.Conv1d(padding=2)
    np.testing.assert_allclose(np.asarray(model(x[None, :, None]))[0, :, 0], expected)


def test_xresnet1d101_layers():
    model = models.get("xresnet1d101", (250, 12), NUM_CLASSES)
    names = {layer.name for layer in model.layers}
    stem = [model.get_layer(f"stem{i}_conv") for i in (1, 2, 3)]
    assert [(c.filters, c.kernel_size, c.strides) for c in stem] == [
        (32, (5,), (2,)),
        (32, (5,), (1,)),
        (64, (5,), (1,)),
    ]
    assert tuple(model.get_layer("stem_pool").output.shape) == (None, 63, 64)
    assert {"stage3_block23_add", "stage4_block3_add"} <= names
    assert not {"stage3_block24_add", "stage4_block4_add"} & names  # [3, 4, 23, 3] blocks
    assert "stage1_block1_0_conv" in names  # 64 -> 256 channels: projection
    assert "stage2_block1_0_pool" in names and "stage2_block1_0_conv" not in names  # ResNet-D
    assert model.get_layer("stage2_block1_2_conv").strides == (2,)  # stride in the middle
    for i, samples in ((1, 63), (2, 32), (3, 16), (4, 8)):
        assert tuple(model.get_layer(f"stage{i}_block1_out").output.shape) == (None, samples, 256)
    # The benchmark re-initializes every gamma to 1 before training; fastai's zero is optional.
    assert np.all(np.asarray(model.get_layer("stage1_block1_3_bn").gamma) == 1)
    small = models.get("xresnet1d101", SIGNAL, 2, stages=((8, 1), (8, 1)), zero_init_last_bn=True)
    assert np.all(np.asarray(small.get_layer("stage2_block1_3_bn").gamma) == 0)


def test_inception1d_layers():
    model = models.get("inception1d", (250, 12), NUM_CLASSES)
    names = {layer.name for layer in model.layers}
    assert [model.get_layer(f"module1_conv{k}").kernel_size[0] for k in (39, 19, 9)] == [39, 19, 9]
    assert tuple(model.get_layer("module6_concat").output.shape) == (None, 250, 4 * 32)
    assert {"shortcut1_add", "shortcut2_add"} <= names and "shortcut3_add" not in names
    assert model.get_layer("shortcut1_conv").kernel.shape == (1, 12, 128)  # from the input
    assert model.get_layer("shortcut2_conv").kernel.shape == (1, 128, 128)  # a conv even so


@pytest.mark.parametrize(
    "builder, kwargs, message",
    [
        (build_resnet1d, {"input_shape": (24, 33, 12)}, r"\(samples, 12\).*got \(24, 33, 12\)"),
        (build_resnet1d, {"kernel_sizes": (4, 3)}, r"kernel_sizes must be odd.*\(4, 3\)"),
        (build_resnet1d, {"stages": ()}, r"\(filters, num_blocks\) pairs.*got \(\)"),
        (build_resnet1d, {"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        (build_xresnet1d, {"expansion": 2}, r"expansion must be 1 or 4, got 2"),
        (build_xresnet1d, {"stem_filters": ()}, r"stem_filters must be integers >= 1"),
        (build_inception1d, {"stages": ((32, 4),)}, r"depth must be a multiple of 3, got 4"),
        (build_inception1d, {"stages": ((32, 3),) * 2}, r"one \(filters, depth\) pair"),
        (build_inception1d, {"head_units": 0}, r"head_units must be an integer >= 1, got 0"),
    ],
)
def test_invalid_signal_arguments(builder, kwargs, message):
    kwargs = {"input_shape": SIGNAL, "num_classes": NUM_CLASSES, **kwargs}
    with pytest.raises(ValueError, match=message):
        builder(**kwargs)


# Keras 3.15's .keras writer calls np.array() on every variable, which numpy 2.4 warns about.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_signal_raw_model_standardizes_and_round_trips(tmp_path):
    config = FeatureConfig(representation="signal")
    model = models.get("resnet1d_tiny", SIGNAL, NUM_CLASSES)
    raw = models.build_raw_model(model, config, 0.01, 0.4)
    assert raw.input_shape == (None, config.input_samples, 12)
    ecg = np.random.default_rng(1).normal(0, 0.5, (4, config.input_samples, 12)).astype("float32")
    logits = np.asarray(raw(ecg))
    np.testing.assert_allclose(logits, np.asarray(model((ecg - 0.01) / 0.4)), atol=1e-5)
    raw.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(np.asarray(loaded(ecg)), logits)
    assert float(loaded.get_layer("standardize").std.numpy()) == pytest.approx(0.4)
    with pytest.raises(ValueError, match=r"mean must be one number, got shape \(12,\)"):
        models.build_raw_model(model, config, np.zeros(12), 0.4)
    with pytest.raises(ValueError, match=r"std must be > 0"):
        models.build_raw_model(model, config, 0.0, 0.0)
    with pytest.raises(ValueError, match=r"signal_model takes \(24, 26, 12\)"):
        models.build_raw_model(models.get("vgg_tiny", (24, 26, 12), 5), config, 0.0, 1.0)


def _tones(n, seed):
    """Class k: a (2 + 3k) Hz tone of random phase and per-lead gain, in noise; [n, 250, 12]."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES, n)
    t = np.arange(250) / 100  # 2.5 s at 100 Hz
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    tone = np.sin(2 * np.pi * (2 + 3 * labels[:, None]) * t + phase)  # [n, 250]
    x = tone[:, :, None] * rng.uniform(0.5, 1.5, (n, 1, 12)) + rng.normal(0, 0.3, (n, 250, 12))
    return x.astype(np.float32), np.eye(NUM_CLASSES, dtype=np.float32)[labels]


@pytest.mark.slow
def test_resnet1d_tiny_learns_tones_in_the_raw_signal():
    """Telling the tones apart needs the time axis: held-out AUC well above chance (0.5)."""
    keras.utils.set_random_seed(0)
    (x, y), (x_test, y_test) = _tones(320, 0), _tones(128, 1)
    model = models.get("resnet1d_tiny", SIGNAL, NUM_CLASSES)
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=5, verbose=0)
    scores = 1 / (1 + np.exp(-model.predict(x_test, batch_size=128, verbose=0)))
    assert roc_auc_score(y_test, scores) > 0.9
