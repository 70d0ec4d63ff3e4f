"""ecg_keras.training.losses: weighted BCE equals Keras' BCE at weight 1 and upweights positives."""

import keras
import numpy as np

from ecg_keras.training.losses import WeightedBinaryCrossentropy


def test_weighted_bce_matches_keras_and_weights_positives():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (16, 5)).astype("float32")
    logits = rng.normal(size=(16, 5)).astype("float32")
    plain = keras.losses.BinaryCrossentropy(from_logits=True)(y, logits)
    ours = WeightedBinaryCrossentropy(np.ones(5))(y, logits)
    np.testing.assert_allclose(float(ours), float(plain), rtol=1e-5)
    heavier = WeightedBinaryCrossentropy(np.full(5, 3.0))(y, logits)
    assert float(heavier) > float(ours)
    config = WeightedBinaryCrossentropy(np.full(5, 3.0)).get_config()
    assert WeightedBinaryCrossentropy.from_config(config).pos_weight == [3.0] * 5
