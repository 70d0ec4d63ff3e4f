"""The two-stream model (models/dual.py, presets vgg_resnet1d*): its parameters, that its
spectrogram stream sees the STFT channels of the ECG in mV and stays float32 under a mixed
policy, its save/load round trip, its flags, learning, and a trained run's export through
every artifact check (TFLite int8 included)."""

import json

import keras
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ecg_keras import models
from ecg_keras.config import FeatureConfig, TrainConfig
from ecg_keras.data import dft, features
from ecg_keras.training import experiment as train
from ecg_keras.training import recipe
from ecg_keras.training.run import Run

from conftest import run_cli, tiny_benchmark_split_tfrecords
from test_models_1d import _tones

NUM_CLASSES = 5
RELATIVE = FeatureConfig(input="relative")
SAMPLES = RELATIVE.input_samples  # 250: one 2.5 s crop at 100 Hz
TFLITE = ["tflite_float32", "tflite_float16", "tflite_dynamic_int8", "tflite_int8"]


def _ecg(n, seed=0):
    return np.random.default_rng(seed).normal(0, 0.3, (n, SAMPLES, 12)).astype(np.float32)


@pytest.mark.parametrize(
    ("name", "params"), [("vgg_resnet1d", 1_700_469), ("vgg_resnet1d_tiny", 11_893)]
)
def test_preset(name, params):
    model = models.get(name, (SAMPLES, 12), NUM_CLASSES, feature_config=RELATIVE)
    assert models.representation(name) == "signal"
    assert model.count_params() == params
    assert model.input_shape == (None, SAMPLES, 12) and model.output_shape == (None, NUM_CLASSES)
    names = {layer.name for layer in model.layers}
    assert {"raw_phases", "stft", "spec_norm", "block1_conv1", "logits"} <= names
    trunk = {layer.name for layer in model.get_layer("raw_phases").trunk.layers}
    assert {"stem_conv", "stage2_block1_1_conv", "stage3_block1_add"} <= trunk
    assert model(_ecg(2)).shape == (2, NUM_CLASSES)


def test_spectrogram_stream_sees_the_ecg_in_mv():
    """The network takes the standardized signal; its STFT layer must see (x * std + mean),
    i.e. the ECG in mV, and compute ``features.spectrogram``'s channels of it."""
    mean, std = 0.02, 0.25
    model = models.get(
        "vgg_resnet1d_tiny", (SAMPLES, 12), NUM_CLASSES,
        feature_config=RELATIVE, signal_mean=mean, signal_std=std,
    )  # fmt: skip
    ecg_mv = _ecg(3, seed=1)
    stft = keras.Model(model.input, model.get_layer("stft").output)
    got = np.asarray(stft((ecg_mv - mean) / std))
    assert got.shape == (3, *features.spectrogram_shape(RELATIVE, SAMPLES))
    np.testing.assert_allclose(got, np.asarray(dft.spectrogram(ecg_mv, RELATIVE)), atol=1e-5)
    # The FFT path rounds differently (data/dft.py: ~1e-5); 1e-4 still tells a wrong scale.
    np.testing.assert_allclose(got, np.asarray(features.spectrogram(ecg_mv, RELATIVE)), atol=1e-4)


def test_feature_layers_stay_float32_under_a_mixed_policy():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = models.get("vgg_resnet1d_tiny", (SAMPLES, 12), NUM_CLASSES)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    for name in ("to_mv", "stft", "spec_norm", "spec_augment", "logits"):
        assert model.get_layer(name).compute_dtype == "float32", name
    assert model.get_layer("block1_conv1").compute_dtype == "bfloat16"
    assert model.get_layer("raw_phases").trunk.get_layer("stem_conv").compute_dtype == "bfloat16"


# Keras 3.15's .keras writer calls np.array() on every variable, which numpy 2.4 warns about.
@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
def test_round_trips_through_a_keras_file(tmp_path):
    model = models.get(
        "vgg_resnet1d_tiny", (SAMPLES, 12), NUM_CLASSES, feature_config=RELATIVE, signal_std=0.3
    )
    x = _ecg(4, seed=2)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    assert loaded.get_layer("stft").feature_config.input == "relative"
    assert loaded.get_layer("stft").stft == "matmul"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_shape": (None, 12)}, r"\(samples, 12\) with static samples, got \(None, 12\)"),
        ({"input_shape": (24, 33, 12)}, r"\(samples, 12\) with static samples"),
        ({"signal_std": 0.0}, r"signal_std must be > 0, got 0.0"),
        ({"vgg_stages": ()}, r"\(filters, num_convs\) pairs.*got \(\)"),
    ],
)
def test_invalid_arguments(kwargs, message):
    kwargs = {"input_shape": (SAMPLES, 12), "num_classes": NUM_CLASSES, **kwargs}
    with pytest.raises(ValueError, match=message):
        models.build_dual(**kwargs)


def test_flags_it_takes_and_refuses():
    """--input chooses the spectrogram stream's channels (a plain 1D model refuses it);
    --stages has no meaning for two trunks and is refused by name."""
    shape = recipe.model_input_shape(
        TrainConfig(
            model="vgg_resnet1d_tiny",
            features=FeatureConfig(input="relative", representation="signal"),
        )
    )
    assert shape == (SAMPLES, 12)  # static: the DFT-matmul STFT has a fixed size
    with pytest.raises(ValueError, match="--input=relative applies to spectrogram models"):
        TrainConfig(
            model="resnet1d_tiny", features=FeatureConfig(input="relative", representation="signal")
        ).check_signal_overrides()
    TrainConfig(
        model="vgg_resnet1d_tiny",
        features=FeatureConfig(input="relative", representation="signal"),
    ).check_signal_overrides()  # accepted


@pytest.mark.slow
def test_learns_tones():
    """Held-out AUC well above chance (0.5) after a few epochs on synthetic tones."""
    keras.utils.set_random_seed(0)
    (x, y), (x_test, y_test) = _tones(320, 0), _tones(128, 1)
    model = models.get("vgg_resnet1d_tiny", (SAMPLES, 12), NUM_CLASSES)
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=16, epochs=5, verbose=0)
    scores = 1 / (1 + np.exp(-model.predict(x_test, batch_size=128, verbose=0)))
    assert roc_auc_score(y_test, scores) > 0.9


@pytest.mark.slow
def test_trained_run_exports_and_passes_every_check(tmp_path):
    """``vgg_resnet1d_tiny`` on the relative input, 6 epochs on 50 tiny records (folds as
    ``tiny_signal_run``'s), then ``export``: keras, SavedModel and every TFLite artifact
    within their bounds of ``evaluate``'s probabilities, the int8 one included."""
    config = TrainConfig(
        data_dir=str(tiny_benchmark_split_tfrecords(tmp_path)),
        model="vgg_resnet1d_tiny",
        features=FeatureConfig(input="relative"),
        epochs=6,
        batch_size=8,
        learning_rate=1e-2,
        dropout=0.3,
        select="last",
    )
    workdir = tmp_path / "run"
    metrics = train.train_and_evaluate(config, workdir)
    run = Run.load(workdir)
    assert run.config.features.representation == "signal"
    assert run.config.features.input == "relative"
    output_dir = tmp_path / "saved_models" / "dual"
    done = run_cli(
        "export", f"--workdir={workdir}", f"--output_dir={output_dir}", "--calibration_records=20"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((output_dir / "1" / "export.json").read_text())
    artifacts = {a["name"]: a["check"] for a in result["artifacts"]}
    assert list(artifacts) == ["keras", "saved_model", *TFLITE] and result["passed"]
    assert result["float_macro_auc"] == pytest.approx(metrics["test"]["macro_auc"])


def test_phase_average_averages_crops_in_inference_only():
    """Inference: the mean of the trunk over ``phases`` crops one sample apart; training: the
    trunk on the whole input, so the trained weights do not depend on ``phases``."""
    from ecg_keras.models.dual import PhaseAverage

    crop = keras.Input((None, 12))
    trunk = keras.Model(crop, keras.layers.GlobalMaxPooling1D()(keras.layers.Conv1D(3, 5)(crop)))
    layer = PhaseAverage(trunk, 4)
    x = _ecg(2, seed=3)
    crops = [np.asarray(trunk(x[:, k : k + SAMPLES - 3])) for k in range(4)]
    np.testing.assert_allclose(np.asarray(layer(x)), np.mean(crops, 0), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(layer(x, training=True)), np.asarray(trunk(x)))
    with pytest.raises(ValueError, match="phases must be an integer >= 1, got 0"):
        PhaseAverage(trunk, 0)


def test_stream_dropout_drops_one_whole_stream_in_training_only():
    """Training: each record loses at most one stream, each with the layer's rate, and what
    passes is scaled by 1 / (1 - rate); inference: the identity."""
    from ecg_keras.models.dual import StreamDropout

    keras.utils.set_random_seed(0)
    layer = StreamDropout(0.2)
    first, second = np.full((20000, 3), 1.0, "float32"), np.full((20000, 2), 2.0, "float32")
    a, b = (np.asarray(t) for t in layer([first, second], training=True))
    dropped_a, dropped_b = (a == 0).all(1), (b == 0).all(1)
    assert not (dropped_a & dropped_b).any()  # never both streams of a record
    assert np.all((a == 0).all(1) | (a == 1.25).all(1))  # whole stream, inverted scaling
    assert abs(dropped_a.mean() - 0.2) < 0.015 and abs(dropped_b.mean() - 0.2) < 0.015
    assert abs(a.mean() - 1.0) < 0.02 and abs(b.mean() - 2.0) < 0.04  # expectation kept
    a, b = layer([first, second])
    np.testing.assert_array_equal(np.asarray(a), first)
    np.testing.assert_array_equal(np.asarray(b), second)
    with pytest.raises(ValueError, match=r"stream dropout rate must be in \(0, 0.5\), got 0.5"):
        StreamDropout(0.5)


def _two_stream_network(**config_fields):
    """``recipe.build_model`` of a tiny two-stream run with these TrainConfig fields."""
    config = TrainConfig(
        model="vgg_resnet1d_tiny",
        features=FeatureConfig(input="relative", representation="signal"),
        **config_fields,
    )

    class _Run:  # what recipe.build_model reads of a training.run.Run
        stats = (0.0, 0.3)
        classes = tuple("ABCDE"[:NUM_CLASSES])

    _Run.config = config
    return recipe.build_model(_Run)


def _assert_reloads(model, tmp_path, x):
    """Saved and loaded again, ``model`` gives the same output on ``x``."""
    model.save(tmp_path / "m.keras")
    np.testing.assert_array_equal(
        np.asarray(keras.models.load_model(tmp_path / "m.keras")(x)), np.asarray(model(x))
    )


def test_stream_dropout_flag_reaches_the_two_stream_model_only(tmp_path):
    """--stream_dropout adds the layer to a two-stream network, which still saves and loads;
    any other preset refuses the flag by name."""
    model = _two_stream_network(stream_dropout=0.15)
    assert model.get_layer("stream_dropout").rate == 0.15
    _assert_reloads(model, tmp_path, _ecg(2, seed=4))
    with pytest.raises(ValueError, match="--stream_dropout=0.15 applies to the two-stream"):
        TrainConfig(model="resnet1d_wang", stream_dropout=0.15)
    with pytest.raises(ValueError, match=r"--stream_dropout=0.6: must be in \[0, 0.5\)"):
        TrainConfig(model="vgg_resnet1d", stream_dropout=0.6)


def test_stream_heads_train_one_head_per_record_and_average_in_inference():
    """Training: each record's output is exactly one head's logits, each head about a third
    of the records; inference: the mean of the heads' logits."""
    from ecg_keras.models.dual import StreamHeads

    keras.utils.set_random_seed(0)
    heads = [np.full((30000, 2), value, "float32") for value in (1.0, 2.0, 4.0)]
    out = np.asarray(StreamHeads()(heads, training=True))
    assert np.all(out[:, 0] == out[:, 1])  # one head for the whole record
    for value in (1.0, 2.0, 4.0):
        assert abs((out[:, 0] == value).mean() - 1 / 3) < 0.015
    assert np.isin(out, (1.0, 2.0, 4.0)).all()
    np.testing.assert_allclose(np.asarray(StreamHeads()(heads)), np.full((30000, 2), 7 / 3))


def test_stream_heads_flag_builds_three_heads_that_save_and_load(tmp_path):
    """--stream_heads gives the two-stream network a head per stream beside the joint one;
    its inference output is their mean, it saves and loads, and other presets refuse it."""
    model = _two_stream_network(stream_heads=True)
    x = _ecg(3, seed=5)
    names = ("logits", "raw_logits", "spec_logits")
    heads = keras.Model(model.input, [model.get_layer(n).output for n in names])(x)
    np.testing.assert_allclose(
        np.asarray(model(x)), np.mean([np.asarray(h) for h in heads], axis=0), atol=1e-6
    )
    assert not np.allclose(np.asarray(heads[1]), np.asarray(heads[2]))  # separate weights
    _assert_reloads(model, tmp_path, x)
    with pytest.raises(ValueError, match="--stream_heads applies to the two-stream presets"):
        TrainConfig(model="resnet1d_wang", stream_heads=True)
