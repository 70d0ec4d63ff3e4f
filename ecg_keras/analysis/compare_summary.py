"""``compare``'s summary of finished runs: per-config means over seeds, paired differences.

Files in the output dir, each written atomically:

- ``runs.csv``: one row per run: ``config``, ``seed``, ``workdir``, ``val_macro_auc``,
  ``test_macro_auc``, ``test_auc_<class>``, ``epochs_trained``, ``resumed_at_epoch``,
  ``train_seconds``, ``seconds_per_epoch``, ``train_records``, ``train_records_per_s``.
- ``summary.csv``: one row per config: ``config``, ``flagfile``, ``seeds``, ``runs``, then
  ``<metric>_mean`` and ``<metric>_sd`` for ``val_macro_auc`` and ``test_macro_auc``,
  ``test_macro_auc_seed_avg`` (the macro AUC of the seeds' averaged probabilities),
  ``test_auc_<class>_mean``, ``<metric>_mean`` and ``<metric>_sd`` for ``seconds_per_epoch``
  and ``train_records_per_s``, and ``train_records``.
- ``pairs.csv``: one row per pair (A listed before B): ``a``, ``b``, ``test_macro_auc_a``,
  ``test_macro_auc_b`` (seed-averaged probabilities), ``difference`` (A - B on the full test
  set), ``mean_difference``, ``low``, ``high`` (90% interval), ``a_wins`` (share of
  resamples), ``resamples``, ``records``.
- ``summary.md`` (the same tables) and ``comparison.png``.

With ``--splits``, each split's folder holds those files, and ``write_splits`` puts the splits
side by side in the output dir: ``summary.md`` (per config, validation and test mean ± sd of
every split; per split, the paired bootstrap), and ``summary.csv``, ``pairs.csv``,
``runs.csv`` (the splits' rows with a first column ``split``).

Conventions: sd is the sample standard deviation (ddof 1), blank for one seed. Seconds per
epoch are ``train_seconds`` (wall time of ``fit``, per-epoch validation scoring included)
over the epochs that process trained (``epochs_trained - resumed_at_epoch``); records/s is
the labelled training records (those ``make_dataset`` keeps) times those epochs over the
same time. The paired bootstrap scores each config's seed-averaged test probabilities on the
same 100 resamples (seed 0, the benchmark's redraw rule, ``metrics.bootstrap_indices``); in
``a_wins`` a tie counts half.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ecg_keras import atomic, filenames
from ecg_keras.analysis import paired, plots
from ecg_keras.filenames import COMPARISON_PNG as PLOT
from ecg_keras.filenames import PAIRS_CSV, RUNS_CSV, SUMMARY_CSV, SUMMARY_MD
from ecg_keras.inference import by_id
from ecg_keras.training import metrics

PAIR_COLUMNS = [
    "a", "b", "test_macro_auc_a", "test_macro_auc_b", "difference", "mean_difference",
    "low", "high", "a_wins", "resamples", "records",
]  # fmt: skip
SPREAD = ("val_macro_auc", "test_macro_auc", "seconds_per_epoch", "train_records_per_s")


def _sd(values) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def run_table(runs) -> pd.DataFrame:
    """One row per run from its metrics.json (columns in the module docstring)."""
    counts, rows = {}, []
    for run in runs:
        result = json.loads((Path(run.workdir) / filenames.METRICS).read_text())
        key = (run.config.data_dir, run.config.task, run.config.train_folds)
        if key not in counts:  # one pass over the training folds per distinct split
            counts[key] = len(paired.labelled_records(run.config, run.config.train_folds)[0])
        epochs = result["epochs_trained"] - result.get("resumed_at_epoch", 0)
        seconds = result.get("train_seconds") or float("nan")
        row = {"config": run.name, "seed": run.seed, "workdir": run.workdir}
        row["val_macro_auc"] = result["val"]["macro_auc"]
        row["test_macro_auc"] = result["test"]["macro_auc"]
        for name, auc in zip(result["classes"], result["test"]["per_class_auc"], strict=True):
            row[f"test_auc_{name}"] = float("nan") if auc is None else auc
        row["epochs_trained"] = result["epochs_trained"]
        row["resumed_at_epoch"] = result.get("resumed_at_epoch", 0)
        row["train_seconds"] = seconds
        row["seconds_per_epoch"] = seconds / epochs if epochs > 0 else float("nan")
        row["train_records"] = counts[key]
        row["train_records_per_s"] = counts[key] * epochs / seconds if epochs > 0 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def seed_averages(runs) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, list[str]]:
    """Each config's test probabilities averaged over its seeds, matched by ecg_id.

    Returns:
      ecg_ids int64 [records], config -> probabilities float64 [records, classes], labels
      float32 [records, classes] (from the first run's TFRecords), class names.
    """
    by_config: dict[str, dict] = {}
    classes = None
    for run in runs:
        ids, probs, names = paired.read_predictions(Path(run.workdir) / filenames.PREDICTIONS_TEST)
        if classes is not None and names != classes:
            raise ValueError(f"{run.workdir}: classes {names}, other runs have {classes}")
        classes = names
        by_config.setdefault(run.name, {})[run.workdir] = (ids, probs)
    averaged = {name: by_id.average_by_id(members) for name, members in by_config.items()}
    ids = next(iter(averaged.values()))[0]
    probs = {n: p[by_id.rows_of(i, ids, f"config {n}")] for n, (i, p) in averaged.items()}
    label_ids, labels = paired.labelled_records(runs[0].config, runs[0].config.test_folds)
    labels = labels[by_id.rows_of(label_ids, ids, f"test folds of {runs[0].config.data_dir}")]
    return ids, probs, labels, classes


def config_table(frame: pd.DataFrame, runs, seed_avg_auc: dict) -> pd.DataFrame:
    """One row per config: means and sds over its seeds (columns in the module docstring)."""
    rows = []
    for name, group in frame.groupby("config", sort=False):
        flagfile = next(run.flagfile for run in runs if run.name == name)
        row = {"config": name, "flagfile": flagfile, "seeds": " ".join(map(str, group["seed"]))}
        row["runs"] = len(group)
        for column in SPREAD:
            row[f"{column}_mean"] = group[column].mean()
            row[f"{column}_sd"] = _sd(group[column])
            if column == "test_macro_auc":
                row["test_macro_auc_seed_avg"] = seed_avg_auc[name]
                for per_class in [c for c in frame.columns if c.startswith("test_auc_")]:
                    row[f"{per_class}_mean"] = group[per_class].mean()
        row["train_records"] = int(group["train_records"].iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


def pair_table(labels: np.ndarray, probs: dict[str, np.ndarray]):
    """Paired bootstrap of every pair of configs, in the order given.

    Returns:
      (pairs.csv's DataFrame, "A - B" -> differences float64 [resamples]).
    """
    names, rows, differences = list(probs), [], {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            result = metrics.paired_bootstrap_macro_auc(labels, probs[a], probs[b])
            differences[f"{a} - {b}"] = result.pop("differences")
            rows.append(
                {
                    "a": a,
                    "b": b,
                    "test_macro_auc_a": metrics.macro_auc(labels, probs[a]),
                    "test_macro_auc_b": metrics.macro_auc(labels, probs[b]),
                    "difference": result["difference"],
                    "mean_difference": result["mean"],
                    "low": result["low"],
                    "high": result["high"],
                    "a_wins": result["a_wins"],
                    "resamples": result["resamples"],
                    "records": len(labels),
                }
            )
    return pd.DataFrame(rows, columns=PAIR_COLUMNS), differences


def summarize(runs) -> dict:
    """The tables of finished runs: {"runs", "configs", "pairs": DataFrame, "differences"}."""
    frame = run_table(runs)
    _, probs, labels, _ = seed_averages(runs)
    seed_avg = {name: metrics.macro_auc(labels, p) for name, p in probs.items()}
    pairs, differences = pair_table(labels, probs)
    return {
        "runs": frame,
        "configs": config_table(frame, runs, seed_avg),
        "pairs": pairs,
        "differences": differences,
    }


def _mean_sd(row, column: str, digits: int) -> str:
    mean, sd = row[f"{column}_mean"], row[f"{column}_sd"]
    return f"{mean:.{digits}f}" if np.isnan(sd) else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def markdown(summary: dict, options) -> str:
    """summary.md: what was compared, the per-config table, the pairs table."""
    configs, pairs = summary["configs"], summary["pairs"]
    classes = [c[len("test_auc_") : -len("_mean")] for c in configs if c.startswith("test_auc_")]
    lines = [
        "# Comparison",
        "",
        f"Configs: {', '.join(f'`{f}`' for f in options.flagfiles)}; seeds "
        f"{', '.join(map(str, options.seeds))}; flags for every config: "
        f"`{' '.join(options.overrides) or 'none'}`. Mean ± sample sd over seeds.",
        "",
        "| config | seeds | val macro AUC | test macro AUC | test macro AUC, seed-averaged "
        f"probabilities | {' | '.join(f'test AUC {c}' for c in classes)} | s/epoch | "
        "training records/s |",
        "| --- " * (7 + len(classes)) + "|",
    ]
    for _, row in configs.iterrows():
        per_class = " | ".join(f"{row[f'test_auc_{c}_mean']:.4f}" for c in classes)
        lines.append(
            f"| {row['config']} | {row['seeds']} | {_mean_sd(row, 'val_macro_auc', 4)} | "
            f"{_mean_sd(row, 'test_macro_auc', 4)} | {row['test_macro_auc_seed_avg']:.4f} | "
            f"{per_class} | {_mean_sd(row, 'seconds_per_epoch', 1)} | "
            f"{_mean_sd(row, 'train_records_per_s', 0)} |"
        )
    if len(pairs):
        lines += [
            "",
            f"Paired bootstrap of the test macro AUC ({pairs['records'].iloc[0]} records, "
            f"{pairs['resamples'].iloc[0]} resamples shared by both configs; seed-averaged "
            "probabilities; ties count half in A wins):",
            "",
            "| A | B | A - B (full set) | mean A - B | 90% interval | A wins |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for _, p in pairs.iterrows():
            lines.append(
                f"| {p['a']} | {p['b']} | {p['difference']:+.4f} | {p['mean_difference']:+.4f} "
                f"| {p['low']:+.4f} to {p['high']:+.4f} | {p['a_wins']:.0%} |"
            )
    lines += ["", f"![comparison]({PLOT})", "", "Per run: `runs.csv`."]
    return "\n".join(lines) + "\n"


def write_splits(summaries: dict[str, dict], options, folds: dict) -> dict:
    """The splits side by side in ``options.output_dir`` (see the module docstring).

    Args:
      summaries: split -> ``summarize``'s tables of that split's runs.
      folds: split -> its (train, validation, test) folds.

    Returns:
      {"runs", "configs", "pairs": DataFrames with a ``split`` column}.
    """
    out = Path(options.output_dir)
    tables = {}
    for key in ("runs", "configs", "pairs"):
        frames = [s[key].assign(split=name) for name, s in summaries.items()]
        frame = pd.concat(frames, ignore_index=True)
        tables[key] = frame[["split", *[c for c in frame.columns if c != "split"]]]
    paired.write_csv_atomic(out / RUNS_CSV, tables["runs"])
    paired.write_csv_atomic(out / SUMMARY_CSV, tables["configs"])
    paired.write_csv_atomic(out / PAIRS_CSV, tables["pairs"])
    atomic.write_text(out / SUMMARY_MD, splits_markdown(summaries, options, folds))
    return tables


def splits_markdown(summaries: dict[str, dict], options, split_folds: dict) -> str:
    """summary.md of a comparison over several splits (``split_folds``: split -> folds)."""
    names = list(summaries)
    folds = "; ".join(
        f"{n}: train {_folds(split_folds[n][0])}, validation {_folds(split_folds[n][1])}, "
        f"test {_folds(split_folds[n][2])}"
        for n in names
    )
    head = " | ".join(f"{n} val | {n} test" for n in names)
    lines = [
        "# Comparison over splits",
        "",
        f"Configs: {', '.join(f'`{f}`' for f in options.flagfiles)}; seeds "
        f"{', '.join(map(str, options.seeds))}; flags for every config: "
        f"`{' '.join(options.overrides) or 'none'}`. Splits ({folds}). Macro AUC, mean ± "
        "sample sd over seeds; each split's own summary is in its folder.",
        "",
        f"| config | {head} |",
        "| --- " * (1 + 2 * len(names)) + "|",
    ]
    configs = list(dict.fromkeys(c for s in summaries.values() for c in s["configs"]["config"]))
    for config in configs:
        cells = []
        for name in names:
            table = summaries[name]["configs"].set_index("config")
            if config not in table.index:
                cells += ["", ""]
                continue
            row = table.loc[config]
            cells += [_mean_sd(row, "val_macro_auc", 4), _mean_sd(row, "test_macro_auc", 4)]
        lines.append(f"| {config} | {' | '.join(cells)} |")
    for name in names:
        pairs = summaries[name]["pairs"]
        if not len(pairs):
            continue
        lines += [
            "",
            f"**{name}**: paired bootstrap of the test macro AUC ({pairs['records'].iloc[0]} "
            f"records, {pairs['resamples'].iloc[0]} shared resamples, seed-averaged "
            "probabilities):",
            "",
            "| A | B | A - B (full set) | 90% interval | A wins |",
            "| --- | --- | --- | --- | --- |",
        ]
        for _, p in pairs.iterrows():
            lines.append(
                f"| {p['a']} | {p['b']} | {p['difference']:+.4f} | {p['low']:+.4f} to "
                f"{p['high']:+.4f} | {p['a_wins']:.0%} |"
            )
        lines += ["", f"![{name}]({name}/{PLOT})"]
    return "\n".join(lines) + "\n"


def _folds(folds) -> str:
    folds = sorted(folds)
    contiguous = len(folds) > 2 and folds == list(range(folds[0], folds[-1] + 1))
    return f"{folds[0]}-{folds[-1]}" if contiguous else ",".join(map(str, folds))


def write(summary: dict, runs, options) -> None:
    """Writes runs.csv, summary.csv, pairs.csv, comparison.png and summary.md (last)."""
    out = Path(options.output_dir)
    paired.write_csv_atomic(out / RUNS_CSV, summary["runs"])
    paired.write_csv_atomic(out / SUMMARY_CSV, summary["configs"])
    paired.write_csv_atomic(out / PAIRS_CSV, summary["pairs"])
    frame = summary["runs"]
    scores = {
        name: {"val": group["val_macro_auc"].tolist(), "test": group["test_macro_auc"].tolist()}
        for name, group in frame.groupby("config", sort=False)
    }
    plots.comparison(scores, summary["differences"], out / PLOT, title="macro AUC per seed")
    atomic.write_text(out / SUMMARY_MD, markdown(summary, options))
