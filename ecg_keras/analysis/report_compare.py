"""The body of a comparison's ``report.html`` (``compare``'s output dir): ``summary.md`` (the
per-config table and the paired differences) with ``comparison.png`` embedded, the per-run
metrics of ``runs.csv`` and each config's flags. No explanations: each run's own report has
them.
"""

from __future__ import annotations

from pathlib import Path

from ecg_keras.analysis import html_page as H
from ecg_keras.filenames import RUNS_CSV, SUMMARY_CSV, SUMMARY_MD

# runs.csv columns shown, with their digits (the rest: per-class AUCs, also 4 digits).
RUN_COLUMNS = {"split": None, "config": None, "seed": 0, "val_macro_auc": 4, "test_macro_auc": 4,
               "epochs_trained": 0, "seconds_per_epoch": 1, "train_records_per_s": 0}  # fmt: skip


def _runs_table(folder: Path) -> str:
    import pandas as pd

    path = folder / RUNS_CSV
    if not path.is_file():
        return H.paragraph(f"No {RUNS_CSV}.", note=True)
    frame = pd.read_csv(path)
    columns = [c for c in RUN_COLUMNS if c in frame] + [
        c for c in frame if c.startswith("test_auc_")
    ]
    rows = [
        [v if RUN_COLUMNS.get(c, 4) is None else H.number(v, RUN_COLUMNS.get(c, 4))
         for c, v in zip(columns, row, strict=True)]
        for row in frame[columns].itertuples(index=False)
    ]  # fmt: skip
    return H.table(columns, rows, caption="per run (runs.csv)")


def _configs(folder: Path, summary) -> str:
    """Each config's flags as its first seed ran them (``flags.cfg``: what the flagfile and
    compare's flags resolved to), or the flagfile as it reads now when no run is left."""
    out = ""
    for _, row in summary.drop_duplicates("config").iterrows():
        runs = sorted((folder / str(row["config"])).glob("seed*/flags.cfg"))
        runs = runs or sorted(folder.glob(f"*/{row['config']}/seed*/flags.cfg"))  # --splits
        flagfile = Path(str(row["flagfile"]))
        source = runs[0] if runs else flagfile
        text = source.read_text() if source.is_file() else "(not found)"
        out += H.details(f"{row['config']} (flagfile {flagfile}): {source}", H.preformatted(text))
    return out


def body(folder: Path) -> tuple[str, str]:
    """(title, body) of the comparison in ``folder``."""
    import pandas as pd

    summary = pd.read_csv(folder / SUMMARY_CSV)
    md = folder / SUMMARY_MD
    text = H.markdown(md.read_text(), folder) if md.is_file() else H.paragraph("No summary.md.")
    splits = sorted(set(summary["split"])) if "split" in summary else []
    where = "OUTPUT_DIR/SPLIT/CONFIG/seedN" if splits else "OUTPUT_DIR/CONFIG/seedN"
    out = H.paragraph(
        f"Comparison {folder}: {summary['config'].nunique()} configs"
        + (f" on the splits {', '.join(splits)}" if splits else "")
        + f"; every run is {where} and has its own report.html."
    )
    out += H.section("config", "Configs", _configs(folder, summary))
    out += H.section("metrics", "Summary and paired differences", text)
    out += H.section("runs", "Per-run metrics", _runs_table(folder))
    return f"report: {folder}", out
