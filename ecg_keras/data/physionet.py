"""Downloads PTB-XL from PhysioNet, verified against the release's ``SHA256SUMS.txt``.

The library behind ``python -m ecg_keras.download``.

``--sampling_rate=100 --max_ecg_id=2000`` fetches a ~50 MB quickstart subset. Every file is
written to ``<name>.part``, checked against its sha256 and only then renamed, so a file under
its final name is always complete and verified. An interrupted run resumes the ``.part`` files
with HTTP Range requests, and a rerun skips files that already verify.
"""

from __future__ import annotations

import http.client
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from ecg_keras.data.manifest import sha256_file

DEFAULT_BASE_URL = "https://physionet.org/files/ptb-xl/{version}/"
SUMS_FILE = "SHA256SUMS.txt"
SAMPLING_RATES = ("100", "500", "both")
RETRIES = 3  # attempts per file; later attempts resume from what the earlier ones wrote
RETRY_DELAY_S = 1.0  # doubled after every failed attempt
TIMEOUT_S = 60
CHUNK = 1 << 20
_RECORD = re.compile(r"^records(100|500)/(?:.+/)?(\d+)_[a-z]+\.[a-z]+$")


class DownloadError(RuntimeError):
    """A download failed; the one-line message names the URL or the file."""


class _Stopped(Exception):  # another file failed, so this one gave up early
    pass


def parse_sha256sums(text: str) -> dict[str, str]:
    """Parses ``sha256sum`` output.

    Args:
      text: lines ``<sha256>  <relative path>`` (a ``*`` before the path is allowed).

    Returns:
      ``{relative path: lowercase sha256}``.

    Raises:
      DownloadError: a malformed line, or a path that would leave the output folder.
    """
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = re.fullmatch(r"([0-9a-fA-F]{64}) [ *](.+)", line.rstrip("\r"))
        if not match:
            raise DownloadError(f"{SUMS_FILE} line {number}: not '<sha256>  <path>': {line!r}")
        path = match.group(2)
        # The list comes from the network; never let it write outside output_dir.
        if path.startswith("/") or ".." in path.split("/"):
            raise DownloadError(f"{SUMS_FILE} line {number}: unsafe path {path!r}")
        sums[path] = match.group(1).lower()
    return sums


def select_files(
    sums: dict[str, str], sampling_rate: str = "100", max_ecg_id: int | None = None
) -> dict[str, str]:
    """Picks the files of one download from the checksum list.

    Args:
      sums: ``{relative path: sha256}`` from ``parse_sha256sums``.
      sampling_rate: ``"100"``, ``"500"`` or ``"both"``: which records folders to take.
      max_ecg_id: if set, only records whose ecg_id (from the file name) is <= this.

    Returns:
      The selected ``{relative path: sha256}``: every top-level file plus the chosen records.
    """
    folders = ("100", "500") if str(sampling_rate) == "both" else (str(sampling_rate),)
    selected = {}
    for path, sha in sums.items():
        if "/" not in path:
            selected[path] = sha
            continue
        match = _RECORD.match(path)
        if not match or match.group(1) not in folders:
            continue
        if max_ecg_id is None or int(match.group(2)) <= max_ecg_id:
            selected[path] = sha
    return dict(sorted(selected.items()))


def _transfer(url: str, part: Path, stop: threading.Event) -> int:
    """Appends the rest of ``url`` to ``part``; returns the number of bytes received."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "ecg_keras-download"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the .part is not a prefix of this file: start over
            part.unlink()
            return _transfer(url, part, stop)
        raise
    with response:
        # A server may ignore Range and send the whole file (200): then start the .part over.
        resumed = response.status == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            part.unlink()
            raise http.client.HTTPException(f"asked for bytes {offset}-, got another range")
        received = 0
        with open(part, "ab" if resumed else "wb") as f:
            while block := response.read(CHUNK):
                if stop.is_set():
                    raise _Stopped
                f.write(block)
                received += len(block)
        # read() returns b"" rather than raising when the server hangs up early.
        expected = response.headers.get("Content-Length")
        if expected is not None and received < int(expected):
            raise http.client.IncompleteRead(b"", int(expected) - received)
    return received


def _fetch(url: str, part: Path, stop: threading.Event) -> int:
    """``_transfer`` with retries for network errors and 5xx/429 answers."""
    for attempt in range(RETRIES):
        try:
            return _transfer(url, part, stop)
        except urllib.error.HTTPError as e:
            if e.code < 500 and e.code != 429:
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from e
            reason = f"HTTP {e.code} {e.reason}"
        except urllib.error.URLError as e:
            reason = str(e.reason)
        except (OSError, http.client.HTTPException) as e:
            reason = f"{type(e).__name__}: {e}"
        if attempt + 1 < RETRIES and stop.wait(RETRY_DELAY_S * 2**attempt):
            raise _Stopped
    raise DownloadError(f"{url}: {reason} (gave up after {RETRIES} attempts)")


def _download_one(base_url: str, out: Path, rel: str, sha: str, stop: threading.Event):
    """Returns ``(downloaded?, bytes received)`` for one file of the release."""
    if stop.is_set():
        raise _Stopped
    final = out / rel
    if final.exists() and sha256_file(final) == sha:
        return False, 0
    final.parent.mkdir(parents=True, exist_ok=True)
    part = final.with_name(final.name + ".part")
    received = _fetch(base_url + urllib.parse.quote(rel), part, stop)
    actual = sha256_file(part)
    if actual != sha:
        part.unlink()  # a bad .part would poison every later resume
        raise DownloadError(f"{rel}: sha256 mismatch, expected {sha}, got {actual}")
    os.replace(part, final)
    return True, received


def download(
    output_dir: str | os.PathLike,
    version: str = "1.0.3",
    sampling_rate: str = "100",
    max_ecg_id: int | None = None,
    base_url: str | None = None,
    num_threads: int = 8,
) -> dict:
    """Downloads (part of) a PTB-XL release into ``output_dir`` in PhysioNet's layout.

    Args:
      output_dir: destination folder; created if needed, may hold an earlier partial run.
      version: PTB-XL release, used to build the default ``base_url``.
      sampling_rate, max_ecg_id: which records, as in ``select_files``.
      base_url: release folder URL (a mirror, or a local server in tests).
      num_threads: parallel transfers.

    Returns:
      Summary dict: ``output_dir``, ``files``, ``downloaded``, ``skipped``, ``bytes``, ``seconds``.

    Raises:
      ValueError: a bad argument.
      DownloadError: a network error or a checksum mismatch; files verified so far are kept.
    """
    sampling_rate = str(sampling_rate)
    if sampling_rate not in SAMPLING_RATES:
        raise ValueError(f"sampling_rate={sampling_rate!r}: must be one of {SAMPLING_RATES}")
    if max_ecg_id is not None and max_ecg_id < 1:
        raise ValueError(f"max_ecg_id={max_ecg_id}: must be a positive integer")
    base_url = base_url or DEFAULT_BASE_URL.format(version=version)
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    stop = threading.Event()

    sums_part = out / (SUMS_FILE + ".part")
    sums_part.unlink(missing_ok=True)  # the list may have changed; always fetch it whole
    _fetch(base_url + SUMS_FILE, sums_part, stop)
    selected = select_files(parse_sha256sums(sums_part.read_text()), sampling_rate, max_ecg_id)
    os.replace(sums_part, out / SUMS_FILE)

    from tqdm import tqdm

    summary = {"output_dir": str(out), "files": len(selected), "downloaded": 0, "skipped": 0}
    received = 0
    with (
        tqdm(total=len(selected), unit="file", desc="PTB-XL", disable=None) as bar,
        ThreadPoolExecutor(max(1, num_threads)) as pool,
    ):
        futures = [
            pool.submit(_download_one, base_url, out, rel, sha, stop)
            for rel, sha in selected.items()
        ]
        try:
            for future in as_completed(futures):
                fetched, size = future.result()
                summary["downloaded" if fetched else "skipped"] += 1
                received += size
                rate = received / 1e6 / max(time.monotonic() - start, 1e-6)
                bar.set_postfix_str(f"{received / 1e6:.1f} MB, {rate:.1f} MB/s", refresh=False)
                bar.update(1)
        except BaseException:
            stop.set()  # running transfers stop at their next chunk, queued ones never start
            for future in futures:
                future.cancel()
            raise
    summary["bytes"] = received
    summary["seconds"] = round(time.monotonic() - start, 2)
    return summary
