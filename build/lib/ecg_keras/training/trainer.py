"""What ``fit`` needs for a run: the compiled training model, what to keep, the datasets.

    model, saved, (train_ds, val_ds) = trainer(run)   # run: training.run.Run
    model.fit(train_ds, ...)

``train`` and ``tune`` build through ``recipe`` (network, loss, optimizer); this module adds
what depends on where the features are computed and in which precision
(``device_features``), so that ``recipe`` stays free of both.
"""

from __future__ import annotations

from ecg_keras.training import device_features, recipe


def trainer(run, strategy=None):
    """Everything ``fit`` needs for a run, as ``train`` builds it.

    Builds the network under the run's dtype policy (``--precision``) and ``strategy``'s
    scope; with ``--features_in=model`` the datasets yield crops and the
    model computes the spectrogram (``device_features``).

    Returns:
      (the compiled training model; what ``KeepModel`` saves, a function returning the float32
      network, or None to save the training model itself; (train, validation) datasets).
    """
    import contextlib

    import keras

    config = run.config
    raw = device_features.computes_features(config)
    datasets = (
        run.split(config.train_folds, True, raw=raw),
        run.split(config.val_folds, False, raw=raw),
    )
    keras.utils.set_random_seed(config.seed)  # right before building, as tune's trials do
    # Layers take the global policy when built; restored after, so that models built later
    # in this process (evaluation, export) are float32.
    previous = keras.mixed_precision.global_policy()
    policy = device_features.policy(config)
    keras.mixed_precision.set_global_policy(policy)
    try:
        with strategy.scope() if strategy else contextlib.nullcontext():
            network = recipe.build_model(run)
            model = recipe.compile_model(device_features.training_model(network, run), run)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    saved = None
    if model is not network or policy != "float32":
        saved = device_features.float32_saver(network, run)
    return model, saved, datasets
