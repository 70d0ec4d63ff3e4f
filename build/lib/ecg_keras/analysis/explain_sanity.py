"""The two sanity checks of an explanation method, measured on real records.

    python -m ecg_keras.analysis.explain_sanity --model=runs/NAME --ptbxl_dir=DIR --records=60

1. Model randomization (Adebayo et al. 2018): the attribution of the trained model against
   that of the same architecture with every weight re-drawn from its initializer
   (``explainable.randomized``). Spearman rank correlation per record and class of the signed
   attribution and of its absolute value; an explanation that reflects what the model learned
   has both near 0.
2. Masking: the (lead, ``MASK_SECONDS``) blocks with the largest attribution, ``FRACTION`` of
   all blocks, are replaced by the lead's median (the attribution baseline); so are
   ``DRAWS`` random sets of as many blocks. The record's class logit must drop more for the
   top-attributed blocks than for random ones.

Per class, every record counts for the logit figures; the probability figures are over the
records whose probability is at or above the class's threshold (what ``explain`` explains).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tensorflow as tf

from ecg_keras.analysis import attribution, explainable

FRACTION = 0.1
MASK_SECONDS = 0.1  # 10 samples at 100 Hz: a wave's part, far shorter than a beat
DRAWS = 5


def _logits(model, ecg: np.ndarray) -> np.ndarray:
    """float32 [n, samples, 12] -> float32 [n, classes] record logits."""
    out = attribution.record_logits(model, tf.constant(ecg))
    return out.numpy()


def masking_drops(model, ecg, attr, width: int, rng, fraction=FRACTION, draws=DRAWS):
    """One record's logit drops, top-attributed vs random masking.

    Args:
      ecg: float32 [samples, 12]; attr: float32 [classes, samples, 12].

    Returns:
      (logits float32 [classes], top float32 [classes, classes], random float32
      [draws, classes, classes]): logits of the masked records; row c masks class c's top
      blocks (random rows: the same number of blocks, class-independent in distribution).
    """
    classes = attr.shape[0]
    shape = attribution.blocks(attr[0], width).shape
    top = [attribution.mask_blocks(ecg, attribution.top_blocks(
        attribution.blocks(attr[c], width), fraction), width) for c in range(classes)]  # fmt: skip
    rand = [
        attribution.mask_blocks(ecg, attribution.random_blocks(shape, fraction, rng), width)
        for _ in range(draws)
    ]
    out = _logits(model, np.stack([ecg, *top, *rand]))
    return out[0], out[1 : 1 + classes], out[1 + classes :]


def measure(model, records: np.ndarray, steps=attribution.STEPS, seed=0, progress=None) -> dict:
    """Both checks over ``records`` float32 [n, record_samples, 12]; per class summary dict."""
    random_model = explainable.randomized(model, seed)
    rng = np.random.default_rng(seed)
    width = round(MASK_SECONDS * model.metadata["sampling_rate"])
    rows = []
    for ecg in progress(records) if progress else records:
        attr = attribution.integrated_gradients(model, ecg, steps)
        rand_attr = attribution.integrated_gradients(random_model, ecg, steps)
        logits, top, rand = masking_drops(model, ecg, attr, width, rng)
        rows.append({
            "logit": logits,
            "top_drop": logits - np.diag(top),
            "random_drop": (logits[None] - rand).mean(0),  # mean over draws, [classes]
            "rho": [attribution.spearman(attr[c], rand_attr[c]) for c in range(len(logits))],
            "rho_abs": [attribution.spearman(np.abs(attr[c]), np.abs(rand_attr[c]))
                        for c in range(len(logits))],
        })  # fmt: skip
    return summarize(model, rows)


def _probability(model, logit: np.ndarray) -> np.ndarray:
    """Record logits float [n, classes] -> probabilities as the thresholds see them."""
    p = 1 / (1 + np.exp(-logit))
    if model.calibration:
        from ecg_keras.training import calibration

        p = calibration.apply(model.calibration, p)
    return p


def summarize(model, rows) -> dict:
    """Per class: n, positives, mean Spearman (signed, abs), mean logit and probability drops."""

    def stack(key):
        return np.array([r[key] for r in rows], np.float64)  # [n, classes]

    logit, top, rand = stack("logit"), stack("top_drop"), stack("random_drop")
    p, p_top, p_rand = (_probability(model, z) for z in (logit, logit - top, logit - rand))
    p_top, p_rand = p - p_top, p - p_rand  # drops
    out = {}
    for c, name in enumerate(model.classes):
        pos = p[:, c] >= model.thresholds[c]
        out[name] = {
            "records": len(rows),
            "positives": int(pos.sum()),
            "spearman_signed": float(stack("rho")[:, c].mean()),
            "spearman_abs": float(stack("rho_abs")[:, c].mean()),
            "logit_drop_top": float(top[:, c].mean()),
            "logit_drop_random": float(rand[:, c].mean()),
            "top_beats_random": float((top[:, c] > rand[:, c]).mean()),
            "prob_drop_top_pos": float(p_top[pos, c].mean()) if pos.any() else None,
            "prob_drop_random_pos": float(p_rand[pos, c].mean()) if pos.any() else None,
        }
    return out


def test_records(ptbxl_dir, metadata: dict, count: int, fold: int = 10) -> np.ndarray:
    """The first ``count`` records of ``fold`` by ecg_id, as ``predict`` reads them:
    float32 [count, input_samples, 12]."""
    from ecg_keras.analysis.robustness import read_for_model
    from ecg_keras.data import ptbxl

    db = ptbxl.load_database(ptbxl_dir)
    rate = metadata["sampling_rate"]
    rows = db[db.strat_fold == fold]
    paths = [ptbxl.record_path(ptbxl_dir, row, rate) for row in rows.itertuples()]
    paths = [p for p in paths if p.with_suffix(".hea").is_file()][:count]
    return np.stack([read_for_model(p, metadata) for p in paths])


def main(argv):
    from absl import flags
    from tqdm import tqdm

    del argv
    f = flags.FLAGS
    model = explainable.load(f.model)
    records = test_records(f.ptbxl_dir, model.metadata, f.records)
    result = measure(model, records, f.steps, progress=lambda r: tqdm(r, file=sys.stderr))
    print(json.dumps({"model": f.model, "per_class": result}, indent=1))


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string("model", None, "Training workdir.")
    flags.DEFINE_string("ptbxl_dir", "../shared/data/ptbxl", "PTB-XL folder (test fold 10).")
    flags.DEFINE_integer("records", 60, "Test records (the first by ecg_id).")
    flags.DEFINE_integer("steps", attribution.STEPS, "Integrated-gradients steps.")
    flags.mark_flag_as_required("model")
    app.run(main)
