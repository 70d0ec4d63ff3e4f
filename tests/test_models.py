"""ecg_keras.models: presets, layer names, argument checks, the raw-ECG model, and learning
(the spectrogram 2D CNNs; the 1D CNNs on the raw signal are in test_models_1d.py)."""

import dataclasses

import keras
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ecg_keras import models
from ecg_keras.config import FeatureConfig
from ecg_keras.data import features
from ecg_keras.models import build_resnet, build_vgg

CROP = (24, 33, 12)  # 2.5 s at the default STFT settings
FULL = (118, 33, 12)  # 10 s
NUM_CLASSES = 5

# Parameters with 5 classes, recorded from the builders: a change here is an architecture
# change, so update the table (and the one in models/__init__.py) on purpose. Every preset has
# a "gap" head, so the count is the same for 24 and 118 frames.
PRESET_PARAMS = {
    "vgg": 4_513_845,
    "vgg11": 4_513_845,
    "vgg_small": 1_179_061,
    "vgg_tiny": 2_117,
    "resnet": 11_186_229,
    "resnet18": 11_186_229,
    "resnet_small": 2_803_765,
    "resnet_tiny": 5_669,
}


def test_every_preset_is_in_the_table():
    spectrogram = [n for n in models.PRESETS if models.representation(n) == "spectrogram"]
    assert sorted(spectrogram) == sorted(PRESET_PARAMS)  # the signal ones: test_models_1d.py
    assert models.PRESETS["vgg"] is models.PRESETS["vgg11"]
    assert models.PRESETS["resnet"] is models.PRESETS["resnet18"]


def test_presets_are_a_capacity_axis():
    """tiny < small < full within each family, measured on built models."""
    for family in ("vgg", "resnet"):
        sizes = [models.get(f"{family}{s}", CROP, NUM_CLASSES).count_params()
                 for s in ("_tiny", "_small", "")]  # fmt: skip
        assert sizes == sorted(sizes) and len(set(sizes)) == 3, (family, sizes)


@pytest.mark.parametrize("input_shape", [CROP, FULL], ids=["crop", "full"])
@pytest.mark.parametrize("name", sorted(PRESET_PARAMS))
def test_preset(name, input_shape):
    model = models.get(name, input_shape, NUM_CLASSES)
    params = PRESET_PARAMS[name]
    assert model.name == name
    assert model.input_shape == (None, *input_shape)
    assert model.output_shape == (None, NUM_CLASSES)
    assert model.count_params() == params
    last = model.layers[-1]
    assert isinstance(last, keras.layers.Dense) and last.name == "logits"
    assert last.activation is keras.activations.linear  # logits: the loss has from_logits


@pytest.mark.parametrize("name", ["vgg_tiny", "resnet_tiny"])
def test_concat_head_pools_max_and_average_over_any_length(name):
    model = models.get(name, (None, 33, 12), NUM_CLASSES, head="concat")
    channels = model.get_layer("head_gap").input.shape[-1]
    assert model.get_layer("head_concat").output.shape == (None, 2 * channels)
    gap = models.get(name, (None, 33, 12), NUM_CLASSES)
    assert model.count_params() == gap.count_params() + channels * NUM_CLASSES
    rng = np.random.default_rng(0)
    for frames in (24, 118):  # a crop and a whole record
        x = rng.normal(size=(2, frames, 33, 12)).astype("float32")
        assert model(x).shape == (2, NUM_CLASSES)


def test_vgg_layer_names():
    model = models.get("vgg_tiny", CROP, NUM_CLASSES)
    names = [layer.name for layer in model.layers]
    assert names[:3] == ["spectrogram", "input_bn", "block1_conv1"]
    conv = model.get_layer("block2_conv1")
    assert isinstance(conv, keras.layers.Conv2D) and conv.filters == 8
    assert {"block2_bn1", "block2_relu1", "block3_pool", "head_gap"} <= set(names)
    # Pooling with "same" padding: 24 x 33 -> 12 x 17 -> 6 x 9 -> 3 x 5.
    assert tuple(model.get_layer("block3_pool").output.shape) == (None, 3, 5, 16)


def test_pooling_never_shrinks_to_zero():
    model = build_vgg(CROP, NUM_CLASSES, stages=((4, 1),) * 7, input_norm=False)
    assert "input_bn" not in [layer.name for layer in model.layers]
    assert tuple(model.get_layer("block7_pool").output.shape) == (None, 1, 1, 4)


def test_resnet_layer_names():
    model = models.get("resnet_tiny", CROP, NUM_CLASSES)
    names = {layer.name for layer in model.layers}
    expected = {"stem_conv", "stem_bn", "stage2_block1_1_conv", "stage2_block1_2_bn"}
    assert expected | {"stage2_block1_0_conv", "stage2_block1_add", "stage2_block1_out"} <= names
    assert "stage1_block1_0_conv" not in names  # same shape: identity shortcut
    assert model.get_layer("stage2_block1_1_conv").strides == (2, 2)
    assert model.get_layer("stage1_block1_1_conv").strides == (1, 1)
    assert tuple(model.get_layer("stage3_block1_add").output.shape) == (None, 6, 9, 16)


def test_flatten_head_depends_on_frames():
    kwargs = {"head": "flatten", "dense_units": 16, "dropout": 0.5}
    crop, full = (models.get("vgg_tiny", s, NUM_CLASSES, **kwargs) for s in (CROP, FULL))
    assert crop.count_params() == 2_117 - 16 * 5 - 5 + (3 * 5 * 16 + 1) * 16 + 17 * 5
    assert full.count_params() == crop.count_params() + (15 - 3) * 5 * 16 * 16
    assert [x.name for x in crop.layers[-5:]] == [
        "head_flatten",
        "head_dense",
        "head_relu",
        "head_dropout",
        "logits",
    ]


def test_unknown_frames_with_gap_head():
    model = models.get("resnet_tiny", (None, 33, 12), NUM_CLASSES)
    assert model.output_shape == (None, NUM_CLASSES)
    assert model(np.zeros((2, 40, 33, 12), np.float32)).shape == (2, NUM_CLASSES)


@pytest.mark.parametrize(
    "builder, kwargs, message",
    [
        (build_vgg, {"stages": ()}, r"non-empty sequence of \(filters, num_convs\).*got \(\)"),
        (build_resnet, {"stages": ((64, 0),)}, r"num_blocks\).*got \(\(64, 0\),\)"),
        (
            build_vgg,
            {"head": "max"},
            r"head must be one of \('gap', 'concat', 'flatten'\), got 'max'",
        ),
        (build_vgg, {"input_shape": (24, 33)}, r"input_shape .* got \(24, 33\)"),
        (build_resnet, {"input_shape": (24, 33, 3)}, r"input_shape .* got \(24, 33, 3\)"),
        (build_vgg, {"input_shape": (24, 33, 13)}, r"multiple of 12 .* got \(24, 33, 13\)"),
        (build_vgg, {"num_classes": 0}, r"num_classes must be an integer >= 1, got 0"),
        (build_resnet, {"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1.0"),
        (build_vgg, {"dropout": -0.1}, r"dropout must be in \[0, 1\), got -0.1"),
        (build_vgg, {"kernel_size": 0}, r"kernel_size must be .*got 0"),
        (build_resnet, {"stem_filters": 0}, r"stem_filters must be .*got 0"),
        (build_vgg, {"head": "flatten", "input_shape": (None, 33, 12)}, r"static frames"),
    ],
)
def test_invalid_arguments(builder, kwargs, message):
    kwargs = {"input_shape": CROP, "num_classes": NUM_CLASSES, **kwargs}
    with pytest.raises(ValueError, match=message):
        builder(**kwargs)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"'vgg13'.*'resnet_small'.*'vgg_tiny'"):
        models.get("vgg13", CROP, NUM_CLASSES)


def _statistics(num_bins, seed=0, channels=12):
    rng = np.random.default_rng(seed)
    mean = rng.normal(-3, 1, (num_bins, channels)).astype(np.float32)
    return mean, rng.uniform(0.5, 2, (num_bins, channels)).astype(np.float32)


# Keras 3.15's .keras writer calls np.array() on every variable, which numpy 2.4 warns about.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
@pytest.mark.parametrize("input_, channels", [("magnitude", 12), ("complex", 36)])
def test_raw_model_matches_features_and_round_trips(tmp_path, input_, channels):
    config = FeatureConfig(input=input_)
    shape = features.spectrogram_shape(config, config.input_samples)  # (24, 26, channels)
    assert shape == (24, 26, channels)
    spectrogram_model = models.get("resnet_tiny", shape, NUM_CLASSES)
    mean, std = _statistics(shape[1], channels=channels)
    raw = models.build_raw_model(spectrogram_model, config, mean, std)
    assert raw.input_shape == (None, config.input_samples, 12)
    assert raw.output_shape == (None, NUM_CLASSES)

    ecg = np.random.default_rng(1).normal(0, 0.5, (4, config.input_samples, 12)).astype("float32")
    direct = spectrogram_model(features.normalize(features.spectrogram(ecg, config), mean, std))
    logits = np.asarray(raw(ecg))
    np.testing.assert_allclose(logits, np.asarray(direct), atol=1e-5)

    raw.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(np.asarray(loaded(ecg)), logits)
    stft = loaded.get_layer("stft")
    assert stft.feature_config == config and tuple(stft.mean.shape) == (26, channels)


def test_raw_model_rejects_mismatches():
    config = FeatureConfig()  # 2.5 s crops: (24, 26, 12)
    mean, std = _statistics(26)
    full_model = models.get("vgg_tiny", (118, 26, 12), NUM_CLASSES)
    with pytest.raises(ValueError, match=r"takes \(118, 26, 12\).*\(24, 26, 12\)"):
        models.build_raw_model(full_model, config, mean, std)
    models.build_raw_model(full_model, config, mean, std, num_samples=1000)  # 10 s fits
    crop_model = models.get("vgg_tiny", (24, 26, 12), NUM_CLASSES)
    with pytest.raises(ValueError, match=r"mean must broadcast to .*got shape \(25, 12\)"):
        models.build_raw_model(crop_model, config, mean[:25], std)
    with pytest.raises(ValueError, match=r"std must be > 0"):
        models.build_raw_model(crop_model, config, mean, 0 * std)
    # A magnitude network cannot take the complex input's 36 channels, nor its statistics.
    complex_input = dataclasses.replace(config, input="complex")
    with pytest.raises(ValueError, match=r"takes \(None, 26, 12\).*\(24, 26, 36\)"):
        models.build_raw_model(models.get("vgg_tiny", (None, 26, 12), 5), complex_input, 0, 1)
    complex_model = models.get("vgg_tiny", (None, 26, 36), NUM_CLASSES)
    with pytest.raises(ValueError, match=r"mean must broadcast to .*\[26, 36\].*\(26, 12\)"):
        models.build_raw_model(complex_model, complex_input, mean, 1)


def test_vgg_tiny_learns_frequency_bands():
    """Class k has a bright band at bin 4k: the network must tell frequencies apart."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, NUM_CLASSES, 256)
    x = rng.normal(0, 1, (256, *CROP)).astype(np.float32)  # [batch, frames, bins, 12]
    for k in range(NUM_CLASSES):
        x[labels == k, :, 4 * k, :] += 2.0
    y = np.eye(NUM_CLASSES, dtype=np.float32)[labels]
    model = models.get("vgg_tiny", CROP, NUM_CLASSES)
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=5, verbose=0)
    scores = 1 / (1 + np.exp(-model.predict(x, batch_size=256, verbose=0)))
    assert roc_auc_score(y, scores) > 0.9
