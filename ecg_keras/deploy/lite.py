"""TFLite conversion of an exported SavedModel, in four modes.

    data = convert(saved_model_dir, "int8", calibration)  # calibration float32 [n, 1000, 12]

| mode | weights | activations | what runs in float |
| --- | --- | --- | --- |
| float32 | float32 | float32 | everything |
| float16 | float16, expanded to float32 when loaded | float32 | everything |
| dynamic_int8 | int8 | quantized on the fly per op | ops without a dynamic-range kernel |
| int8 | int8 | int8 in the network, calibrated | windowing, STFT, normalization, head |

The ``int8`` mode runs the network itself (convolutions, pooling, mean, dense) in int8 with
activation ranges calibrated on training records, and keeps the signal path and the head in
float (``FLOAT_OPS``, by TFLite's selective quantization): TFLite's ``RFFT2D``, ``COMPLEX_ABS``,
``REAL`` and ``IMAG`` exist in float only, and letting the converter quantize the raw ECG to 8
bits before the STFT wrecked the log spectrogram, whose floor is 1e-3 mV (measured on
runs/vgg_superdiagnostic: one record's probability moved by 0.79 and test macro AUC fell by
0.011; with ``FLOAT_OPS`` the largest move was 0.04 and the AUC did not fall). The signature
keeps float32 mV in and probabilities out, so a client feeds the same input to every artifact.
A 1D model on the signal converts too (the standardization is a float SUB and MUL), but TFLite
runs each Conv1D as EXPAND_DIMS -> CONV_2D -> RESHAPE, and with those shape ops in
``FLOAT_OPS`` every convolution gets its own QUANTIZE / DEQUANTIZE pair: checked to be
accurate, not measured to be faster.
"""

from __future__ import annotations

import numpy as np

from ecg_keras.deploy import serving

MODES = ("float32", "float16", "dynamic_int8", "int8")
# TFLite ops kept in float in the int8 mode: all but CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D,
# AVERAGE_POOL_2D, MEAN and FULLY_CONNECTED. Elementwise ADD/MUL/SUB stay float too: they are
# the normalization and input batch norm (cheap), and a ResNet's residual sums. REAL, IMAG and
# DIV are the complex input's (--input=complex: z * log1p(|z| / scale) / |z|, log1p lowered to
# LOG of ADD); quantized, its DIV failed at run time ("data[i] != zero_point": a divisor of 0).
FLOAT_OPS = (
    "ADD", "CAST", "CONCATENATION", "DIV", "EXPAND_DIMS", "GATHER", "GREATER_EQUAL", "IMAG",
    "LOG", "LOGISTIC", "MAXIMUM", "MUL", "PACK", "PAD", "REAL", "REDUCE_MAX", "RESHAPE",
    "SPLIT_V", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "TRANSPOSE",
)  # fmt: skip


def convert(saved_model_dir, mode: str, calibration: np.ndarray | None = None) -> bytes:
    """Converts the ``serving_default`` signature of a SavedModel to a TFLite flatbuffer.

    Args:
      saved_model_dir: written by ``serving.write_saved_model``.
      mode: one of ``MODES``.
      calibration: float32 [n, samples, 12] raw ECGs (mV) from training folds; required for
        ``int8``, which feeds them one at a time to record activation ranges.

    Returns:
      The .tflite file's bytes.

    Raises:
      ValueError: unknown mode, or ``int8`` without calibration records.
    """
    import tensorflow as tf

    if mode not in MODES:
        raise ValueError(f"unknown TFLite mode {mode!r}; known: {', '.join(MODES)}")
    converter = tf.lite.TFLiteConverter.from_saved_model(
        str(saved_model_dir), signature_keys=[serving.SIGNATURE]
    )
    if mode != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":
        if calibration is None or not len(calibration):
            raise ValueError("int8 needs calibration records (float32 [n, samples, 12])")

        def representative():
            for ecg in calibration:
                yield {serving.INPUT: ecg[np.newaxis].astype(np.float32)}

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,  # float kernels for FLOAT_OPS and the STFT
        ]
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=representative,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(
                denylisted_ops=list(FLOAT_OPS)
            ),
        )
        return debugger.get_nondebug_quantized_model()
    return converter.convert()
