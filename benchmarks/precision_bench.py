"""Benchmark: a training step in float32 and mixed_bfloat16, with oneDNN on and off.

    python benchmarks/precision_bench.py [--steps=10]

Why: ``--precision=auto`` (``training/device_features.policy``) must not pick bfloat16 where
TF emulates it. Each of the four settings runs in its own process (``TF_ENABLE_ONEDNN_OPTS``
is read when TF loads): a Conv1D network (3 convolutions, 64-128 filters, kernel 5, on
[64, 250, 12], the main config's crop) trained with Adam, one warm-up step, then ``--steps``
timed steps.

Prints one JSON object: ms per step of each setting, the ratio bfloat16 / float32 of step
time within each oneDNN setting (> 1: bfloat16 is slower), the policy ``auto`` picks on this
machine with oneDNN on and off, and the CPU (``cpu.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cpu  # noqa: E402

STEP = """
import json, sys, time
import numpy as np, keras
from ecg_keras.config import TrainConfig
from ecg_keras.training import device_features
keras.mixed_precision.set_global_policy(sys.argv[1])
rng = np.random.default_rng(0)
x = rng.standard_normal((64, 250, 12)).astype("float32")
y = (rng.random((64, 5)) > 0.5).astype("float32")
inputs = keras.Input((250, 12)); h = inputs
for filters in (64, 128, 128):
    h = keras.layers.Conv1D(filters, 5, padding="same", activation="relu")(h)
h = keras.layers.GlobalAveragePooling1D()(h)
model = keras.Model(inputs, keras.layers.Dense(5, dtype="float32")(h))
model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
model.train_on_batch(x, y)
start = time.perf_counter()
for _ in range(int(sys.argv[2])):
    model.train_on_batch(x, y)
ms = (time.perf_counter() - start) * 1000 / int(sys.argv[2])
print(json.dumps({"ms": ms, "auto": device_features.policy(TrainConfig(precision="auto"))}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    root = Path(__file__).resolve().parents[1]
    result, auto = {}, {}
    for onednn in ("1", "0"):
        env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3"}
        for policy in ("float32", "mixed_bfloat16"):
            out = subprocess.run(
                [sys.executable, "-c", STEP, policy, str(args.steps)],
                env=env,
                cwd=root,
                capture_output=True,
                text=True,
                check=True,
            )
            step = json.loads(out.stdout.strip().splitlines()[-1])
            result[f"onednn{onednn}_{policy}_ms"] = round(step["ms"], 1)
            auto[f"onednn{onednn}"] = step["auto"]
        result[f"onednn{onednn}_bfloat16_over_float32"] = round(
            result[f"onednn{onednn}_mixed_bfloat16_ms"] / result[f"onednn{onednn}_float32_ms"], 2
        )
    result["auto_policy"] = auto
    result["cpu"] = cpu.cpu_info()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
