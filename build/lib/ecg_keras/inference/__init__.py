"""A trained model as one object (``predictor.Predictor``): built from a workdir, an ensemble
folder or the network in memory; windows, aggregation, calibration and thresholds in one
place. ``records`` fits real-world records (WFDB ``.dat`` or ``.mat``, any rate) to it."""
