"""Data: PhysioNet PTB-XL -> checked records (``ptbxl``) -> TFRecords (``tfrecord``,
``manifest``) -> ``tf.data`` batches of spectrograms or signals (``input_pipeline``,
``features``). The ``prepare`` and ``download`` commands drive it."""
