"""report.html: a run's page from its files, self-contained (parsed with html.parser), with
explanations of test records chosen by rule; the selection rule; the page's building blocks."""

from __future__ import annotations

import json

import numpy as np

from ecg_keras.analysis import html_page, report, report_explain

from conftest import run_cli
from report_check import parse_report

CONFUSION = ["class", "threshold", "TP", "FP", "FN", "TN"]


def _rows(cells: list[str], width: int) -> list[list[str]]:
    return [cells[i : i + width] for i in range(0, len(cells), width)]


def test_run_report_is_self_contained_and_complete(trained_run):
    workdir, _ = trained_run
    metrics = json.loads((workdir / "metrics.json").read_text())  # as other tests left it
    page = parse_report(report.write(workdir, explain_classes=1))
    sections = page.sections
    assert set(report.SECTIONS) <= set(sections)
    assert "--epochs=4" in sections["config"]["text"]  # the run's flags.cfg
    test = metrics["test"]
    cells = sections["metrics"]["cells"]
    assert f"{test['macro_auc']:.4f}" in cells
    assert f"{test['macro_auc_ci'][0]:.4f}-{test['macro_auc_ci'][1]:.4f}" in cells
    data = _rows(sections["data"]["cells"], 4 + len(metrics["classes"]))
    assert [row[0] for row in data] == ["split", "train", "validation", "test"]
    assert int(data[3][3]) == test["num_records"] == 252  # labelled test records
    confusion = _rows(sections["confusion"]["cells"], 10)
    assert confusion[0][:6] == CONFUSION and len(confusion) == 1 + len(metrics["classes"])
    for row in confusion[1:]:  # every test record counted once per class
        assert sum(int(v) for v in row[2:6]) == test["num_records"]
    for name in ("curves", "reliability", "training"):
        assert len(sections[name]["images"]) == 1, name
    # The rule is stated; one class (the one with most test positives), its three kinds.
    explained = sections["explanations"]
    assert "chosen by rule" in explained["text"]
    positives = [int(v) for v in data[3][4:]]
    top = metrics["classes"][int(np.argmax(positives))]
    chosen = _rows(explained["cells"], 3)[1:]
    assert [row[:2] for row in chosen] == [[top, kind] for kind in report_explain.KINDS]
    found = [row for row in chosen if row[2] != "none"]
    assert found and len(explained["images"]) == len(found)
    for row in found:
        assert f"ecg_id {row[2]}, {top}: {row[1]}" in explained["text"]


def test_choose_follows_the_rule():
    classes = ["A", "B", "C"]
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    q = np.array(
        [[0.9, 0.2, 0.1], [0.6, 0.8, 0.1], [0.7, 0.3, 0.1], [0.1, 0.1, 0.1], [0.3, 0.9, 0.1]]
    )
    choices, rows = report_explain.choose(y, q, [0.5, 0.5, 0.5], classes, num_classes=2)
    # A has 3 positives, B 2: A first. A: TP 0 (0.9 > 0.6), FP 2, FN 3. B: TP 1, FP 4, FN 2.
    assert rows == [
        ["A", "true positive", 0], ["A", "false positive", 2], ["A", "false negative", 3],
        ["B", "true positive", 1], ["B", "false positive", 4], ["B", "false negative", 2],
    ]  # fmt: skip
    assert [(c.class_index, c.row) for c in choices] == [
        (0, 0),
        (0, 2),
        (0, 3),
        (1, 1),
        (1, 4),
        (1, 2),
    ]
    # A class without false positives says so; a third class only when asked for.
    _, rows = report_explain.choose(y, np.where(y > 0, 0.9, 0.1), [0.5] * 3, classes, 1)
    assert rows == [["A", "true positive", 0], ["A", "false positive", "none"],
                    ["A", "false negative", "none"]]  # fmt: skip


def test_page_escapes_text_and_embeds_markdown_images(tmp_path):
    png = html_page.png_bytes(lambda p: p.write_bytes(html_page.PNG_MAGIC + b"\0" * 2000))
    (tmp_path / "fig.png").write_bytes(png)
    md = (
        "# Title\n\nConfigs: `a<b>.cfg`\n\n| x | y |\n| --- | --- |\n| <i> | 1 |\n\n![f](fig.png)\n"
    )
    body = html_page.section("s", "S", html_page.markdown(md, tmp_path))
    text = html_page.page("t <script>", body + html_page.table(["<td>"], [["a & b"]]))
    assert "<script>" not in text and "&lt;script&gt;" in text and "a &amp; b" in text
    assert "<code>a&lt;b&gt;.cfg</code>" in text and "<td>&lt;i&gt;</td>" in text
    (tmp_path / "page.html").write_text(text)
    parsed = parse_report(tmp_path / "page.html")
    assert parsed.sections["s"]["images"] == [png] and parsed.title == "t <script>"


def test_report_command_refuses_a_folder_without_results(tmp_path):
    done = run_cli("report", f"--workdir={tmp_path}")
    assert done.returncode == 1 and done.stderr.startswith("error: "), done.stderr[-2000:]
    assert str(tmp_path) in done.stderr
