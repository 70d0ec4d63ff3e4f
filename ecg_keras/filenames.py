"""The names of every file a run, an ensemble, a comparison, a tuning project or an export
folder holds.

One place, so that a writer and its readers cannot drift apart: ``train`` writes ``MODEL`` and
``RUN_JSON``, ``evaluate`` writes ``METRICS``, and every consumer (``inference.Predictor``,
``report``, ``compare``, ``export``) finds them here. Nothing in this module touches the disk
except the ``kind`` probe.
"""

from __future__ import annotations

from pathlib import Path

# A training run (runs/NAME/).
MODEL = "model.keras"  # the float32 network: spectrogram (or signal) -> logits
RUN_JSON = "run.json"  # resolved config + normalization statistics
FLAGS = "flags.cfg"  # the flagfile that reproduces the run
BEST = "best.json"  # the epoch ``--select=best`` kept
HISTORY = "history.csv"
CURVES = "training_curves.png"
BACKUP = "backup"  # Keras' BackupAndRestore folder (resume)
LOGS = "logs"  # TensorBoard
# What ``evaluate`` writes (runs and ensembles).
METRICS = "metrics.json"
PREDICTIONS_TEST = "predictions_test.csv"
ROC_TEST = "roc_test.png"
RELIABILITY = "reliability.png"
REPORT = "report.html"
EXTERNAL = "external"  # external/NAME/: evaluation on another database
# An ensemble (runs/ens_NAME/).
ENSEMBLE = "ensemble.json"
# A comparison (runs/compare_NAME/).
RUNS_CSV, SUMMARY_CSV, PAIRS_CSV = "runs.csv", "summary.csv", "pairs.csv"
SUMMARY_MD, COMPARISON_PNG = "summary.md", "comparison.png"
# A tuning project (tuning/NAME/).
TRIALS_CSV, BEST_FLAGS = "trials.csv", "best_flags.cfg"
# An export version folder (saved_models/NAME/VERSION/).
EXPORT_JSON = "export.json"


def kind(path) -> str | None:
    """``run``, ``ensemble``, ``export`` or None: what the folder ``path`` holds."""
    path = Path(path)
    if (path / RUN_JSON).is_file():
        return "run"
    if (path / ENSEMBLE).is_file():
        return "ensemble"
    if (path / "saved_model.pb").is_file():
        return "export"
    return None
