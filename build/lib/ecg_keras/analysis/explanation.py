"""What ``python -m ecg_keras.explain`` computes and writes for each record.

    written = explain(ExplainConfig(model="runs/NAME", records=("PATH/00001_lr",),
                                    output_dir="explanations"))

Per record: ``NAME.json`` and, per explained class, ``NAME_CLASS.png`` (``explain_plots``).
The explained classes are those whose probability (as ``predict`` reports it) is at or above
the class's threshold, or ``classes`` when given. The attribution is integrated gradients of
the record's logit (max over the evaluation windows) on the raw 10 s ECG
(``attribution.integrated_gradients``), so it lies in the window(s) that produced the
record's score. The JSON holds, per class:

- ``probability``, ``threshold``, ``window`` (the max window at the input, and its span in s);
- ``lead_mass`` {lead: share of sum |attribution|} (sums to 1) and ``lead_attribution``
  {lead: signed sum, logit units};
- ``time_mass``: share of sum |attribution| per ``time_bin_seconds`` = 0.5 s (20 bins for
  10 s; sums to 1);
- ``attribution_sum`` and ``logit_change`` = logit(record) - logit(baseline): equal up to the
  integration error (completeness).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from ecg_keras import atomic
from ecg_keras.analysis import attribution, explain_plots, explainable
from ecg_keras.data import features, ptbxl
from ecg_keras.inference import records as records_lib

METHOD = "integrated gradients on the raw ECG, baseline: each lead's median held flat"


@dataclasses.dataclass(frozen=True)
class ExplainConfig:
    model: str  # training workdir or export version folder
    output_dir: str
    records: tuple[str, ...] = ()  # WFDB record paths without extension
    ptbxl_dir: str | None = None
    ecg_ids: tuple[int, ...] = ()  # with ptbxl_dir
    classes: tuple[str, ...] = ()  # empty: the classes at or above their thresholds
    steps: int = attribution.STEPS


def _read(paths) -> list[tuple[str, tuple]]:
    """(path, (signal float32 [samples, 12], rate, notes)) per record; PtbxlError names it."""
    return [(str(p), ptbxl.read_any_record(p)) for p in paths]


def _ecg_id_paths(config: ExplainConfig, rate: int) -> list[str]:
    rows = records_lib.record_list([], config.ptbxl_dir, list(config.ecg_ids), rate)
    for _, extra in rows:
        if "error" in extra:
            raise ValueError(f"--ecg_ids: {extra['ecg_id']} is not in {config.ptbxl_dir}")
    return [path for path, _ in rows]


def _class_indices(model, requested, probabilities) -> list[int]:
    """Indices of ``requested`` class names (ValueError naming an unknown one), or of the
    classes at or above their thresholds."""
    if requested:
        unknown = [c for c in requested if c not in model.classes]
        if unknown:
            raise ValueError(
                f"--classes: unknown {', '.join(unknown)}; the model's are "
                f"{', '.join(model.classes)}"
            )
        return [model.classes.index(c) for c in requested]
    return [k for k, p in enumerate(probabilities) if p >= model.thresholds[k]]


def _panel(model, ecg, attr, lead: int, spec_attr: dict | None, i: int) -> dict:
    """The right-hand panels of ``explain_plots.figure`` for class ``i`` of ``spec_attr``."""
    f = model.feature_config
    rate = f.sampling_rate
    _, hop, fft_length, num_bins = features.stft_sizes(f)
    bin_hz = rate / fft_length
    freq = (-bin_hz / 2, (num_bins - 0.5) * bin_hz)
    seconds = len(ecg) / rate
    mass = attribution.time_mass(attr, rate)
    if spec_attr is None:  # a 1D model or an export: the record's own STFT for display
        magnitude = dataclasses.replace(f, input="magnitude")
        image = features.spectrogram(tf.constant(ecg), magnitude).numpy()[..., lead]
        frames_seconds = (image.shape[0] - 1) * hop / rate + f.window_seconds
        return {"image": image, "map": None, "extent": (0, frames_seconds, *freq),
                "time_mass": mass, "seconds": seconds,
                "title": f"lead {ptbxl.LEADS[lead]}: log |STFT| of the record"}  # fmt: skip
    k = int(spec_attr["window"][i])
    spec, amap = spec_attr["spectrogram"][k], spec_attr["attribution"][i]
    start = k * model.windows.stride / rate
    end = start + (spec.shape[0] - 1) * hop / rate + f.window_seconds
    lead_map = amap[..., lead :: ptbxl.NUM_LEADS].sum(axis=-1)  # the lead's 1 or 3 channels
    title = f"lead {ptbxl.LEADS[lead]}: model input, window {k} ({start:g}-{end:g} s)"
    return {"image": spec[..., lead], "map": lead_map, "extent": (start, end, *freq),
            "time_mass": mass, "seconds": seconds, "title": title}  # fmt: skip


def explain_record(model, ecg: np.ndarray, requested, steps: int) -> tuple[dict, list]:
    """One record: (JSON "classes" block and probabilities, [(class, attr, lead_mass, panel)]).

    ecg: float32 [record_samples, 12] mV, as ``inference.records.fit_to_model`` gives it.
    """
    probabilities = model.probabilities(ecg[None])[0]
    chosen = _class_indices(model, requested, probabilities)
    if not chosen:
        return {"probabilities": probabilities, "classes": {}}, []
    attr = attribution.integrated_gradients(model, ecg, steps)  # [classes, samples, 12]
    logit = attribution.record_logits(
        model, tf.constant(np.stack([ecg, attribution.baseline(ecg)]))
    )
    change = (logit[0] - logit[1]).numpy()
    w = model.windows
    cut = features.sliding_windows(tf.constant(ecg), w.length, w.stride)[: w.count]
    window = model.window_logits(cut).numpy().argmax(axis=0)  # [classes]
    spec_attr = None
    if model.network is not None and model.is_spectrogram:
        spec_attr = attribution.spectrogram_attribution(model, ecg, chosen, steps)
    rate = model.metadata["sampling_rate"]
    block, plots = {}, []
    for i, c in enumerate(chosen):
        name, a = model.classes[c], attr[c]
        lm = attribution.lead_mass(a)
        start = int(window[c]) * w.stride / rate
        block[name] = {
            "probability": round(float(probabilities[c]), 6),
            "threshold": float(model.thresholds[c]),
            "window": {"index": int(window[c]), "seconds": [start, start + w.length / rate]},
            "lead_mass": {
                lead: round(float(m), 6) for lead, m in zip(ptbxl.LEADS, lm, strict=True)
            },
            "lead_attribution": {
                lead: round(float(s), 6) for lead, s in zip(ptbxl.LEADS, a.sum(axis=0), strict=True)
            },
            "time_bin_seconds": attribution.BIN_SECONDS,
            "time_mass": [round(float(m), 6) for m in attribution.time_mass(a, rate)],
            "attribution_sum": float(a.sum()),
            "logit_change": float(change[c]),
        }
        plots.append((name, a, lm, _panel(model, ecg, a, int(lm.argmax()), spec_attr, i)))
    return {"probabilities": probabilities, "classes": block}, plots


def _stem(path: str, ecg_id, seen: set) -> str:
    stem = Path(path).name if ecg_id is None else f"ecg{ecg_id}_{Path(path).name}"
    base, n = stem, 1
    while stem in seen:  # two records of the same name from different folders
        n += 1
        stem = f"{base}_{n}"
    seen.add(stem)
    return stem


def explain(config: ExplainConfig, progress=None) -> list[Path]:
    """Explains every record (``--record`` paths, then ``--ecg_ids``); returns the JSON paths.

    Raises:
      ValueError / FileNotFoundError naming the record, class, ecg_id or model path; records
      given by path are read before the model is loaded, so a missing one fails at once.
    """
    if not config.records and not config.ecg_ids:
        raise ValueError("nothing to explain: pass --record=PATH, or --ptbxl_dir and --ecg_ids")
    if config.ecg_ids and not config.ptbxl_dir:
        raise ValueError("--ecg_ids needs --ptbxl_dir")
    records = [(r, None) for r in _read(config.records)]
    model = explainable.load(config.model)
    rate = model.metadata["sampling_rate"]
    if config.ecg_ids:
        paths = _ecg_id_paths(config, rate)
        records += list(zip(_read(paths), config.ecg_ids, strict=True))
    _class_indices(model, config.classes, [])  # an unknown class fails before any work
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written, seen = [], set()
    for (path, (signal, rec_rate, notes)), ecg_id in progress(records) if progress else records:
        ecg, fit_notes = records_lib.fit_to_model(signal, rec_rate, model.metadata)
        result, plots = explain_record(model, ecg, config.classes, config.steps)
        stem = _stem(path, ecg_id, seen)
        for name, a, lm, panel in plots:
            title = f"{path}: {name}, p = {result['classes'][name]['probability']:.3f}"
            png = out / f"{stem}_{name}.png"
            explain_plots.figure(ecg, a, rate, title, lm, panel, png)
            result["classes"][name]["png"] = png.name
        doc = {
            "record": path, "ecg_id": ecg_id, "model": config.model, "method": METHOD,
            "steps": config.steps, "notes": notes + fit_notes,
            "probabilities": {c: round(float(p), 6)
                              for c, p in zip(model.classes, result["probabilities"], strict=True)},
            "classes": result["classes"],
        }  # fmt: skip
        if not plots:
            doc["notes"].append("no class at or above its threshold; pass --classes to choose")
        atomic.write_json(out / f"{stem}.json", doc)
        written.append(out / f"{stem}.json")
    return written
