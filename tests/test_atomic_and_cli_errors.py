"""ecg_keras.atomic (whole files or none) and ecg_keras.cli_errors (one error line, exit 1)."""

import json

import pytest

from ecg_keras import atomic, cli_errors


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    path = tmp_path / "metrics.json"
    atomic.write_json(path, {"auc": 0.9})
    with pytest.raises(RuntimeError), atomic.replacing(path) as tmp:
        tmp.write_text('{"auc": 0.')  # half written when the writer fails
        raise RuntimeError("disk full")
    assert json.loads(path.read_text()) == {"auc": 0.9}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_the_temporary_name_is_hidden_and_keeps_the_suffix(tmp_path):
    tmp = atomic.temporary_name(tmp_path / "roc_test.png")
    assert tmp.parent == tmp_path and tmp.name.startswith(".roc_test.") and tmp.suffix == ".png"
    with atomic.replacing(tmp_path / "a.txt") as tmp:
        assert not (tmp_path / "a.txt").exists()  # nothing under the final name until the end
        tmp.write_text("x")
    assert (tmp_path / "a.txt").read_text() == "x"


def test_expected_errors_exit_1_with_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info, cli_errors.exit_on():
        raise FileNotFoundError("runs/x/run.json not found")
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == "error: runs/x/run.json not found\n"
    with pytest.raises(KeyError), cli_errors.exit_on(ValueError):  # a bug keeps its traceback
        raise KeyError("classes")
