"""benchmarks/scale_bench.py's folder builder: PTB-XL-shaped, folds and labels kept, every
record readable at both rates (a few seconds; the benchmark itself is run by hand)."""

import ast
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from ecg_keras.data import adc, ptbxl

_SPEC = importlib.util.spec_from_file_location(
    "scale_bench", Path(__file__).resolve().parents[1] / "benchmarks" / "scale_bench.py"
)
scale_bench = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(scale_bench)


def test_builder_keeps_rows_and_repeats_real_records(real_ptbxl_dir, tmp_path):
    dest = tmp_path / "big"
    built = scale_bench.build_folder(real_ptbxl_dir, dest, 520, [100, 500])
    assert built["distinct_signal_files"] == {"100": 1987, "500": 488}
    full = pd.read_csv(real_ptbxl_dir / scale_bench.FULL_CSV, index_col="ecg_id").sort_index()
    db = ptbxl.load_database(dest)
    assert len(db) == 520 and list(db.index) == list(full.index[:520])
    assert (db.strat_fold == full.strat_fold[:520]).all()
    assert db.scp_codes.tolist() == full.scp_codes[:520].map(ast.literal_eval).tolist()
    real = ptbxl.load_database(real_ptbxl_dir)
    # 137 is absent from the subset (a v1.0.3 duplicate), 510 has no 500 Hz file: both reuse
    # a real record under their own name; 1 and 500 are their own.
    for ecg_id, rate in [(1, 100), (137, 100), (500, 500), (510, 500), (137, 500)]:
        path = ptbxl.record_path(dest, db.loc[ecg_id], rate)
        assert path.name == f"{ecg_id:05d}_{scale_bench.SUFFIX[rate]}"
        stored = adc.read_adc(path, rate, ecg_id)
        if ecg_id in (1, 500):
            own = ptbxl.read_signal(ptbxl.record_path(real_ptbxl_dir, real.loc[ecg_id], rate), rate)
            np.testing.assert_array_equal(
                adc.to_mv(stored.samples, stored.gain, stored.baseline), own
            )
    again = scale_bench.build_folder(real_ptbxl_dir, dest, 520, [100, 500])
    assert again == built  # a complete folder is reused
