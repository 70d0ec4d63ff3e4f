"""ecg_keras.data.tfrecord: the one schema drives writing and parsing."""

import numpy as np
import pytest
import tensorflow as tf

from ecg_keras.data import adc, tfrecord


def _values(rng, fields):
    values = {}
    for name, field in fields.items():
        if field.kind == "int16":
            values[name] = rng.integers(-32767, 32768, field.shape, dtype=np.int16)
        elif name == tfrecord.GAIN:
            values[name] = rng.choice([200.0, 1000.0], field.shape).astype(np.float32)
        elif field.kind == "float32":
            values[name] = np.float32(rng.uniform(0, 90))
        else:
            values[name] = rng.integers(0, 2, field.shape)
    return values


@pytest.mark.parametrize("rate", [100, 500])
def test_round_trip_single_and_batched(tmp_path, rate):
    rng = np.random.default_rng(rate)
    fields = tfrecord.schema(rate, {"superdiagnostic": 5, "rhythm": 12})
    records = [_values(rng, fields) for _ in range(3)]
    path = str(tmp_path / "x.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        for values in records:
            writer.write(tfrecord.make_example(values, fields))
    single = [tfrecord.parse_example(s, fields) for s in tf.data.TFRecordDataset(path)]
    batched = tfrecord.parse_example(next(iter(tf.data.TFRecordDataset(path).batch(3))), fields)
    assert batched["signal"].shape == (3, rate * 10, 12)
    assert single[0]["signal"].shape == (rate * 10, 12)
    for i, values in enumerate(records):
        expected = dict(values)
        expected["signal"] = adc.to_mv(
            values["signal"], values[tfrecord.GAIN], values[tfrecord.BASELINE]
        )
        for name in fields:
            np.testing.assert_array_equal(single[i][name].numpy(), expected[name], err_msg=name)
            np.testing.assert_array_equal(batched[name][i].numpy(), expected[name], err_msg=name)
    # A subset of the schema still decodes the signal (gain and baseline parsed behind it).
    subset = {name: fields[name] for name in ("signal", "ecg_id")}
    parsed = tfrecord.parse_example(next(iter(tf.data.TFRecordDataset(path))), subset)
    assert sorted(parsed) == ["ecg_id", "signal"]
    np.testing.assert_array_equal(parsed["signal"].numpy(), single[0]["signal"].numpy())


def test_make_example_rejects_wrong_shapes():
    fields = tfrecord.schema(100, {"superdiagnostic": 5})
    values = _values(np.random.default_rng(0), fields)
    with pytest.raises(ValueError, match="labels/superdiagnostic"):
        tfrecord.make_example({**values, "labels/superdiagnostic": np.zeros(4)}, fields)
    with pytest.raises(ValueError, match="signal"):
        tfrecord.make_example({**values, "signal": np.zeros((500, 12), np.int16)}, fields)
    with pytest.raises(ValueError, match="signal: dtype float32.*int16"):
        tfrecord.make_example({**values, "signal": np.zeros((1000, 12), np.float32)}, fields)


def test_shard_names():
    assert tfrecord.shard_name(3, 1, 4, "NONE") == "fold03-00001-of-00004.tfrecord"
    assert tfrecord.shard_name(10, 0, 1, "GZIP") == "fold10-00000-of-00001.tfrecord.gz"
