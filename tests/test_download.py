"""Tests for ``ecg_keras.download`` against a local HTTP server with Range support."""

from __future__ import annotations

import hashlib
import random
import re
import socket
import subprocess
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ecg_keras.data import physionet as dl

REPO = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("ptbxl_database.csv", "scp_statements.csv", "LICENSE.txt")
ECG_IDS = (1, 2, 3, 1001)


def record_files(rate: int, ecg_id: int) -> list[str]:
    suffix = {100: "lr", 500: "hr"}[rate]
    stem = f"records{rate}/{ecg_id // 1000 * 1000:05d}/{ecg_id:05d}_{suffix}"
    return [stem + ".dat", stem + ".hea"]


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """A small PTB-XL-shaped release folder with its SHA256SUMS.txt."""
    root = tmp_path_factory.mktemp("release")
    rng = random.Random(0)
    files = {name: f"{name} contents\n".encode() * 50 for name in TOP_LEVEL}
    for rate, size in ((100, 24_000), (500, 120_000)):
        for ecg_id in ECG_IDS:
            dat, hea = record_files(rate, ecg_id)
            files[dat] = rng.randbytes(size)
            files[hea] = f"{Path(hea).stem} 12 {rate} {rate * 10}\n".encode()
    lines = []
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {rel}\n")
    (root / dl.SUMS_FILE).write_text("".join(lines))
    return root


class Server:
    """Serves ``root`` on 127.0.0.1 and records every request as ``(path, Range header)``."""

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        self.corrupt: dict[str, bytes] = {}  # served instead of the real file
        self.cut_once: set[str] = set()  # first response sends half the body, then hangs up
        self.missing: set[str] = set()  # answered with 404
        self.ignore_range = False
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                rel = urllib.parse.unquote(self.path.lstrip("/"))
                range_header = self.headers.get("Range")
                state.requests.append((rel, range_header))
                data = state.corrupt.get(rel)
                if data is None:
                    path = state.root / rel
                    if rel in state.missing or ".." in rel.split("/") or not path.is_file():
                        self.send_error(404)
                        return
                    data = path.read_bytes()
                start = 0
                if range_header and not state.ignore_range:
                    start = int(re.fullmatch(r"bytes=(\d+)-", range_header).group(1))
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if rel in state.cut_once:
                    state.cut_once.discard(rel)
                    body = body[: len(body) // 2]
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]


@pytest.fixture
def server(release):
    s = Server(release)
    thread = threading.Thread(target=s.httpd.serve_forever, daemon=True)
    thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def no_retry_delay(monkeypatch):
    monkeypatch.setattr(dl, "RETRY_DELAY_S", 0.0)


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_parse_sha256sums():
    a, b = "a" * 64, "B" * 64
    assert dl.parse_sha256sums(f"{a}  x.csv\r\n\n{b} *records100/00000/00001_lr.dat\n") == {
        "x.csv": a,
        "records100/00000/00001_lr.dat": b.lower(),
    }
    with pytest.raises(dl.DownloadError, match="line 1"):
        dl.parse_sha256sums("not a checksum line\n")
    with pytest.raises(dl.DownloadError, match="unsafe path"):
        dl.parse_sha256sums(f"{a}  ../escape.txt\n")


@pytest.mark.parametrize(
    "rate, max_ecg_id, expected_records",
    [
        ("100", 2, record_files(100, 1) + record_files(100, 2)),
        ("500", None, [f for i in ECG_IDS for f in record_files(500, i)]),
        ("both", 1, record_files(100, 1) + record_files(500, 1)),
    ],
)
def test_download_selects_and_verifies(
    tmp_path, server, release, rate, max_ecg_id, expected_records
):
    out = tmp_path / "ptbxl"
    summary = dl.download(out, sampling_rate=rate, max_ecg_id=max_ecg_id, base_url=server.url)
    expected = set(TOP_LEVEL) | set(expected_records)
    assert files_under(out) == expected | {dl.SUMS_FILE}
    for rel in expected:
        assert (out / rel).read_bytes() == (release / rel).read_bytes(), rel
    assert summary["files"] == summary["downloaded"] == len(expected)
    assert summary["skipped"] == 0
    assert summary["bytes"] == sum((release / rel).stat().st_size for rel in expected)


def test_checksum_mismatch_raises_and_leaves_no_file(tmp_path, server):
    bad = "records100/00000/00002_lr.dat"
    server.corrupt[bad] = b"not the real signal"
    with pytest.raises(dl.DownloadError) as info:
        dl.download(tmp_path, max_ecg_id=2, base_url=server.url)
    message = str(info.value)
    assert bad in message and "sha256 mismatch" in message and "\n" not in message
    assert hashlib.sha256(b"not the real signal").hexdigest() in message
    expected = dl.parse_sha256sums((server.root / dl.SUMS_FILE).read_text())[bad]
    assert expected in message
    assert not (tmp_path / bad).exists()
    assert not (tmp_path / (bad + ".part")).exists()


def test_resumes_part_file_with_range_request(tmp_path, server, release):
    rel = "records100/00000/00001_lr.dat"
    data = (release / rel).read_bytes()
    part = tmp_path / (rel + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[: len(data) // 2])
    summary = dl.download(tmp_path, max_ecg_id=1, base_url=server.url)
    assert (rel, f"bytes={len(data) // 2}-") in server.requests
    assert (tmp_path / rel).read_bytes() == data
    assert not part.exists()
    # Only the missing half of the resumed file came over the wire.
    others = sum((release / r).stat().st_size for r in TOP_LEVEL) + len(
        (release / "records100/00000/00001_lr.hea").read_bytes()
    )
    assert summary["bytes"] == others + len(data) - len(data) // 2


def test_server_ignoring_range_restarts_the_file(tmp_path, server, release):
    rel = "records100/00000/00001_lr.dat"
    data = (release / rel).read_bytes()
    part = tmp_path / (rel + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * (len(data) // 2))  # would fail the checksum if appended to
    server.ignore_range = True
    dl.download(tmp_path, max_ecg_id=1, base_url=server.url)
    assert (rel, f"bytes={len(data) // 2}-") in server.requests
    assert (tmp_path / rel).read_bytes() == data


def test_dropped_connection_is_retried_and_resumed(tmp_path, server, release):
    rel = "records500/00000/00003_hr.dat"
    server.cut_once.add(rel)
    dl.download(tmp_path, sampling_rate="500", max_ecg_id=3, base_url=server.url)
    ranges = [r for path, r in server.requests if path == rel]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    assert (tmp_path / rel).read_bytes() == (release / rel).read_bytes()


def test_rerun_skips_verified_files_and_refetches_damaged_ones(tmp_path, server, release):
    first = dl.download(tmp_path, max_ecg_id=3, base_url=server.url)
    server.requests.clear()
    second = dl.download(tmp_path, max_ecg_id=3, base_url=server.url)
    assert server.paths() == [dl.SUMS_FILE]
    assert second["skipped"] == first["downloaded"] and second["downloaded"] == 0
    damaged = "records100/00000/00003_lr.hea"
    (tmp_path / damaged).write_text("edited locally\n")
    server.requests.clear()
    third = dl.download(tmp_path, max_ecg_id=3, base_url=server.url)
    assert sorted(server.paths()) == sorted([dl.SUMS_FILE, damaged])
    assert third["downloaded"] == 1
    assert (tmp_path / damaged).read_bytes() == (release / damaged).read_bytes()


def test_network_errors_name_the_url(tmp_path, server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/"
    with pytest.raises(dl.DownloadError, match=re.escape(closed + dl.SUMS_FILE) + ".*3 attempts"):
        dl.download(tmp_path, base_url=closed)
    missing = "records100/00000/00002_lr.dat"
    server.missing.add(missing)
    with pytest.raises(dl.DownloadError, match=re.escape(server.url + missing) + ": HTTP 404"):
        dl.download(tmp_path, max_ecg_id=2, base_url=server.url)
    assert not (tmp_path / missing).exists()
    assert server.paths().count(missing) == 1  # a 404 is not retried


def test_bad_arguments_raise_value_error(tmp_path):
    with pytest.raises(ValueError, match="sampling_rate"):
        dl.download(tmp_path, sampling_rate="250")
    with pytest.raises(ValueError, match="max_ecg_id"):
        dl.download(tmp_path, max_ecg_id=0)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ecg_keras.download", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_downloads_and_prints_next_step(tmp_path, server):
    out = tmp_path / "ptbxl"
    result = run_cli(f"--output_dir={out}", f"--base_url={server.url}", "--max_ecg_id=2")
    assert result.returncode == 0, result.stderr
    assert (out / "records100/00000/00002_lr.dat").is_file()
    assert not (out / "records100/00000/00003_lr.dat").exists()
    assert "7 files" in result.stdout and "7 downloaded" in result.stdout
    assert f"python -m ecg_keras.prepare --ptbxl_dir={out}" in result.stdout


def test_cli_checksum_mismatch_is_a_one_line_error(tmp_path, server):
    server.corrupt["scp_statements.csv"] = b"tampered\n"
    result = run_cli(f"--output_dir={tmp_path}", f"--base_url={server.url}", "--max_ecg_id=1")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: scp_statements.csv: sha256 mismatch")
    assert not (tmp_path / "scp_statements.csv").exists()


@pytest.mark.parametrize(
    "flag, name", [("--sampling_rate=250", "sampling_rate"), ("--max_ecg_id=0", "max_ecg_id")]
)
def test_cli_rejects_bad_flags(tmp_path, flag, name):
    result = run_cli(f"--output_dir={tmp_path}", "--base_url=http://127.0.0.1:9/", flag)
    assert result.returncode != 0
    assert name in result.stderr
    assert not any(tmp_path.iterdir())  # rejected before any download started
