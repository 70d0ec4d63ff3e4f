"""The explanation figure of one record and class. Headless (Agg canvas).

Left: the 12 leads in mV, stacked, with the (lead, ``SPAN_SECONDS``) spans of largest
positive attribution (the top ``TOP_FRACTION``, as the masking check masks them) shaded, and
each lead's share of the attribution mass beside its name. Right, top: the spectrogram of the
lead with the most mass (the model's input of the explained window for a spectrogram model;
the record's log-magnitude STFT otherwise); right, bottom: its attribution map
(integrated gradients on the spectrogram input, summed over the lead's 1 or 3 channels), or
for a model without spectrogram input, the attribution mass per 0.5 s of the record.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from ecg_keras.analysis import attribution
from ecg_keras.analysis.plots import _save
from ecg_keras.data.ptbxl import LEADS, NUM_LEADS

SPAN_SECONDS = 0.1
TOP_FRACTION = 0.1
LEAD_OFFSET_MV = 3.0  # vertical distance between stacked leads


def _leads_panel(ax, ecg, attr, rate, lead_mass) -> None:
    """ecg, attr float32 [samples, 12]; lead_mass float [12]."""
    width = max(1, round(SPAN_SECONDS * rate))
    top = attribution.top_blocks(attribution.blocks(attr, width), TOP_FRACTION)  # [spans, 12]
    t = np.arange(len(ecg)) / rate
    for lead in range(NUM_LEADS):
        y0 = -lead * LEAD_OFFSET_MV
        trace = ecg[:, lead] - np.median(ecg[:, lead]) + y0
        for span in np.flatnonzero(top[:, lead]):
            ax.fill_between(
                [span * width / rate, (span + 1) * width / rate],
                y0 - LEAD_OFFSET_MV / 2, y0 + LEAD_OFFSET_MV / 2, color="tab:red", alpha=0.3, lw=0,
            )  # fmt: skip
        ax.plot(t, trace, color="black", lw=0.6)
        ax.text(-0.1, y0, f"{LEADS[lead]} {100 * lead_mass[lead]:.0f}%", ha="right", va="center")
    ax.set_xlim(0, len(ecg) / rate)
    ax.set_ylim(-(NUM_LEADS - 0.5) * LEAD_OFFSET_MV, LEAD_OFFSET_MV / 2)
    ax.set_yticks([])
    ax.set_xlabel("time (s)")
    ax.set_title(f"leads in mV ({LEAD_OFFSET_MV:g} mV apart); red: top {TOP_FRACTION:.0%} spans")


def _spectrogram_panels(spec_ax, attr_ax, panel: dict) -> None:
    """``panel``: "image" float [frames, bins], "map" float [frames, bins] or None,
    "extent" (t0, t1, f0, f1) in s and Hz, "time_mass" float [bins of 0.5 s], "seconds"."""
    extent = panel["extent"]
    spec_ax.imshow(panel["image"].T, origin="lower", aspect="auto", extent=extent, cmap="magma")
    spec_ax.set_ylabel("Hz")
    spec_ax.set_title(panel["title"])
    if panel["map"] is not None:
        limit = float(np.abs(panel["map"]).max()) or 1.0
        image = attr_ax.imshow(
            panel["map"].T, origin="lower", aspect="auto", extent=extent,
            cmap="RdBu_r", vmin=-limit, vmax=limit,
        )  # fmt: skip
        attr_ax.figure.colorbar(image, ax=attr_ax, label="attribution (logit)")
        attr_ax.set_ylabel("Hz")
        attr_ax.set_title("integrated gradients on the spectrogram input")
    else:
        mass = panel["time_mass"]
        edges = np.arange(len(mass)) * attribution.BIN_SECONDS
        attr_ax.bar(edges, mass, width=attribution.BIN_SECONDS, align="edge", color="tab:red")
        attr_ax.set_xlim(0, panel["seconds"])
        attr_ax.set_ylabel("share of |attribution|")
        attr_ax.set_title(f"attribution mass per {attribution.BIN_SECONDS:g} s")
    attr_ax.set_xlabel("time (s)")


def figure(ecg, attr, rate, title: str, lead_mass, panel: dict, output: os.PathLike) -> Path:
    """Writes the PNG (atomically) and returns its path.

    Args:
      ecg, attr: float32 [samples, 12] (mV; attribution in logit units).
      lead_mass: float [12], sums to 1. panel: see ``_spectrogram_panels``.
    """
    fig = Figure(figsize=(15, 9), layout="constrained")
    grid = fig.add_gridspec(2, 2, width_ratios=(2, 1))
    _leads_panel(fig.add_subplot(grid[:, 0]), ecg, attr, rate, lead_mass)
    _spectrogram_panels(fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, 1]), panel)
    fig.suptitle(title)
    return _save(fig, output)
