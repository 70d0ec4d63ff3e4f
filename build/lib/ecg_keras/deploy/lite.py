"""TFLite conversion of an exported SavedModel, in four modes.

    data = convert(saved_model_dir, "int8", calibration)  # calibration float32 [n, 1000, 12]

| mode | weights | activations | what runs in float |
| --- | --- | --- | --- |
| float32 | float32 | float32 | everything |
| float16 | float16, expanded to float32 when loaded | float32 | everything |
| dynamic_int8 | int8 | quantized on the fly per op | ops without a dynamic-range kernel |
| int8 | int8 | int8 in the network, calibrated | signal path to the normalized input; head |

The endpoint computes its STFT as a Conv2D with a fixed DFT basis (``data/dft.py``), so no
float-only op is left in any mode (no ``RFFT2D``, ``COMPLEX_ABS``, ``REAL``, ``IMAG``): every
op of the file has an integer kernel in TFLite. The ``int8`` mode nevertheless keeps the signal
path in float, by choice, and runs the network (convolutions, pooling, mean, dense) in int8
with activation ranges calibrated on training records (``FLOAT_OPS`` by type and
``FLOAT_NODE_NAMES`` by name, through TFLite's selective quantization):

- the raw ECG, the windowing and the DFT: 8 bits of the raw ECG are steps of ~0.03 mV against
  the log spectrogram's 1e-3 mV floor. Measured on the main config's run (test fold, 252
  records): with the DFT in int8 one probability moved by 0.75 (the export check allows 0.25)
  and test macro AUC fell by 0.004; it was also slower (2.85 ms vs 1.49 ms at batch 1; these
  comparisons calibrated on 100 records).
- |z|, the log magnitude and the complex compression (SQRT, LOG, DIV): a 60 dB range that 8
  linear bits cannot hold; with SPLIT, SQRT and the MEAN quantized (DFT in float), test macro
  AUC fell to 0.54.
- the head (sigmoid, max over windows, thresholds): float32 outputs, thresholds exact.

With that split (200 calibration records) the export's check of the int8 file: largest
probability move 0.036, 99th percentile 0.025, test macro AUC 0.8675 vs 0.8677, and 3.97x the
SavedModel's speed at batch 1 (docs/benchmarks.md). Activations in int16 with int8 weights
(TFLite's 16x8 mode, the whole graph) are no alternative: 143 ms at batch 1 (reference kernels)
and test AUC 0.50 (constant answers). Quantizing everything fails at run time (the DIV's
"data[i] != zero_point"). The signature keeps float32 mV in and probabilities out, so a client
feeds the same input to every artifact. A 1D model on the signal converts too (the
standardization is a float SUB and MUL), but TFLite runs each Conv1D as EXPAND_DIMS -> CONV_2D
-> RESHAPE, and with those shape ops in ``FLOAT_OPS`` every convolution gets its own QUANTIZE /
DEQUANTIZE pair: checked to be accurate, not measured to be faster.
"""

from __future__ import annotations

import numpy as np

from ecg_keras.data import dft
from ecg_keras.deploy import serving

MODES = ("float32", "float16", "dynamic_int8", "int8")
# TFLite ops kept in float in the int8 mode, by type: all but CONV_2D, DEPTHWISE_CONV_2D,
# MAX_POOL_2D, AVERAGE_POOL_2D, MEAN and FULLY_CONNECTED. The signal path's: the windowing
# (GATHER, STRIDED_SLICE, RESHAPE, ... of tf.signal.frame), the DFT's SPLIT into real and
# imaginary parts, |z| (SQUARE, ADD, SQRT), the log magnitude and complex compression (LOG,
# ADD, MUL, DIV: z * log1p(|z| / scale) / |z|, log1p lowered to LOG of ADD; a quantized DIV
# failed at run time, "data[i] != zero_point": a divisor of 0), then CONCATENATION and
# TRANSPOSE to [frames, bins, channels]. Elementwise ADD/MUL/SUB also cover the normalization
# and input batch norm (cheap), and a ResNet's residual sums. The head's LOGISTIC, REDUCE_MAX,
# GREATER_EQUAL and CAST keep the outputs float32 and the thresholds exact.
FLOAT_OPS = (
    "ADD", "CAST", "CONCATENATION", "DIV", "EXPAND_DIMS", "GATHER", "GREATER_EQUAL", "LOG",
    "LOGISTIC", "MAXIMUM", "MUL", "PACK", "PAD", "REDUCE_MAX", "RESHAPE", "SPLIT", "SPLIT_V",
    "SQRT", "SQUARE", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "TRANSPOSE",
)  # fmt: skip
# Ops kept in float by name although their type is quantized elsewhere: the DFT-matmul
# STFT's CONV_2D and its input's per-lead MEAN (data/dft.py). An int8 DFT sees 8 bits of the
# raw ECG (steps of ~0.03 mV against the log spectrogram's 1e-3 mV floor): measured on the
# main config's run, one probability moved by 0.75 and test macro AUC fell by 0.004.
FLOAT_NODE_NAMES = (dft.MEAN_NAME, dft.CONV_NAME)


def float_nodes(model: bytes) -> list[str]:
    """Output tensor names, in the float TFLite ``model``, of the ops in ``FLOAT_NODE_NAMES``.

    The converter renames and fuses TF ops ("scope/dft_stft2", "a;b"), so a tensor matches
    when any of its ``;``-separated names ends in a path segment starting with one of them.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    names = []
    for tensor in interpreter.get_tensor_details():
        segments = [part.rsplit("/", 1)[-1] for part in tensor["name"].split(";")]
        if any(seg.startswith(FLOAT_NODE_NAMES) for seg in segments):
            names.append(tensor["name"])
    return names


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
    if mode not in ("float32", "int8"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":
        if calibration is None or not len(calibration):
            raise ValueError("int8 needs calibration records (float32 [n, samples, 12])")

        def representative():
            for ecg in calibration:
                yield {serving.INPUT: ecg[np.newaxis].astype(np.float32)}

        denylisted_nodes = float_nodes(converter.convert())  # before optimizations are set
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,  # float kernels for FLOAT_OPS and the STFT
        ]
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=representative,
            debug_options=tf.lite.experimental.QuantizationDebugOptions(
                denylisted_ops=list(FLOAT_OPS), denylisted_nodes=denylisted_nodes or None
            ),
        )
        return debugger.get_nondebug_quantized_model()
    return converter.convert()
