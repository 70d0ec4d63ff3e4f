"""int16 TFRecords: the stored ADC samples + gain parse back to wfdb's mV exactly, at half the
size; records int16 cannot hold are refused by name; old float32 folders are refused."""

import json

import numpy as np
import pytest
import tensorflow as tf
import wfdb

from ecg_keras.data import adc, manifest, ptbxl, tfrecord
from ecg_keras.data import preparation as prepare


def _parse_one(stored: adc.Adc, rate: int) -> np.ndarray:
    """``stored`` written as an example of the full schema and parsed back: float32 mV."""
    fields = tfrecord.schema(rate, {"superdiagnostic": 5})
    values = {name: np.zeros(f.shape, np.int64) for name, f in fields.items()}
    values.update({"age": np.float32(50), "signal": stored.samples})
    values[tfrecord.GAIN], values[tfrecord.BASELINE] = stored.gain, stored.baseline
    serialized = tf.constant(tfrecord.make_example(values, fields))
    return tfrecord.parse_example(serialized, fields)["signal"].numpy()


def test_every_int16_value_decodes_like_wfdb():
    # wfdb: float64 (d - baseline) / gain, then read_signal rounds to float32. The float32
    # decode must give the same bits for every 16-bit sample at PTB-XL's gain of 1000.
    samples = np.resize(np.arange(-32768, 32768, dtype=np.int16), (65544 // 12, 12))
    gain, baseline = np.full(12, 1000, np.float32), np.zeros(12, np.int64)
    reference = (samples.astype(np.float64) / 1000.0).astype(np.float32)
    np.testing.assert_array_equal(adc.to_mv(samples, gain, baseline), reference)
    parsed = tfrecord._to_mv(tf.constant(samples), tf.constant(gain), tf.constant(baseline))
    np.testing.assert_array_equal(parsed.numpy(), reference)


@pytest.mark.parametrize("rate, ids", [(100, range(1, 41)), (500, (1, 2, 3, 500))])
def test_real_records_round_trip_to_wfdb_values(real_ptbxl_dir, rate, ids):
    db = ptbxl.load_database(real_ptbxl_dir)
    for ecg_id in ids:
        path = ptbxl.record_path(real_ptbxl_dir, db.loc[ecg_id], rate)
        stored = adc.read_adc(path, rate, ecg_id)
        assert stored.samples.dtype == np.int16 and stored.samples.shape == (rate * 10, 12)
        reference, fields = wfdb.rdsamp(str(path))  # float64 mV, PTB-XL's lead order
        assert [n.upper() for n in fields["sig_name"]] == [n.upper() for n in ptbxl.LEADS]
        parsed = _parse_one(stored, rate)
        np.testing.assert_array_equal(parsed, reference.astype(np.float32), err_msg=str(ecg_id))
        np.testing.assert_array_equal(parsed, ptbxl.read_signal(path, rate, ecg_id))


def test_real_shards_are_half_the_float32_size(real_tfrecords):
    found = json.loads((real_tfrecords / manifest.MANIFEST).read_text())
    assert found["schema_version"] == manifest.SCHEMA_VERSION == 2
    per_record = sum(s["bytes"] for s in found["shards"]) / found["num_records"]
    samples = 1000 * 12
    # int16 samples are 2 bytes; labels, metadata, gain and framing add about 1 kB a record.
    assert 2 * samples < per_record < 2 * samples + 1500
    assert per_record / (4 * samples + per_record - 2 * samples) < 0.52  # vs float32 samples


def _write_digital(path, digital, gain, fmt):
    wfdb.wrsamp(
        path.name,
        fs=100,
        units=["mV"] * 12,
        sig_name=list(ptbxl.LEADS),
        d_signal=digital,
        fmt=[fmt] * 12,
        adc_gain=[gain] * 12,
        baseline=[0] * 12,
        write_dir=str(path.parent),
    )


def test_records_int16_cannot_hold_are_refused_by_name(tmp_path):
    wide = np.zeros((1000, 12), np.int64)
    wide[3, 4] = 100_000
    _write_digital(tmp_path / "wide", wide, 1000.0, "32")
    with pytest.raises(ptbxl.PtbxlError, match=r"ecg_id 7 \(.*wide\).*0\.\.100000.*16 bits"):
        adc.read_adc(tmp_path / "wide", 100, 7)
    odd = np.arange(12000, dtype=np.int64).reshape(1000, 12) - 6000
    _write_digital(tmp_path / "odd", odd, 1234.5678, "16")
    with pytest.raises(ptbxl.PtbxlError, match=r"odd.*1234.5678.*differ from wfdb"):
        adc.read_adc(tmp_path / "odd", 100, 8)


def test_old_float32_folder_is_refused_and_prepare_rewrites_it(tiny_ptbxl, tmp_path, capsys):
    out = tmp_path / "tfr"
    config = prepare.PrepareConfig(ptbxl_dir=str(tiny_ptbxl), output_dir=str(out), num_workers=1)
    first = prepare.prepare(config)
    old = {**first, "schema_version": 1}
    (out / manifest.MANIFEST).write_text(json.dumps(old))
    with pytest.raises(manifest.ManifestError, match=f"{out} .*version 1.*ecg_keras.prepare"):
        manifest.load(out)
    again = prepare.prepare(config)  # same settings: no --overwrite needed
    assert "schema version 1; preparing it again" in capsys.readouterr().out
    assert again["schema_version"] == 2 and manifest.load(out)["shards"] == first["shards"]
