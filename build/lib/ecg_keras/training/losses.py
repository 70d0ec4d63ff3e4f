"""Training losses that travel with a saved model (registered, so ``load_model`` finds them)."""

from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="ecg_keras")
class WeightedBinaryCrossentropy(keras.losses.Loss):
    """Binary cross-entropy on logits where positives of class k weigh ``pos_weight[k]``.

    Args:
      pos_weight: float [classes], e.g. negatives / positives per class in the training set.
    Call: y_true float32 [batch, classes] (multi-hot), logits float32 [batch, classes];
    returns float32 [batch] (mean over classes).
    """

    def __init__(self, pos_weight, name="weighted_binary_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.pos_weight = [float(w) for w in pos_weight]

    def call(self, y_true, logits):
        weight = tf.constant(self.pos_weight, logits.dtype)
        loss = tf.nn.weighted_cross_entropy_with_logits(
            tf.cast(y_true, logits.dtype), logits, weight
        )
        return tf.reduce_mean(loss, -1)

    def get_config(self):
        return {**super().get_config(), "pos_weight": self.pos_weight}
