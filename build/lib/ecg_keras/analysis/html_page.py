"""The building blocks of a self-contained HTML page: every image embedded as base64 PNG, one
inline style sheet, no script, no link to any other file or address, so the page opens
offline as it is and can be mailed or archived alone.

    body = section("metrics", "Metrics", table(["split", "macro AUC"], [["test", "0.8342"]]))
    body += section("roc", "ROC", image(png_bytes(lambda path: plots.roc_curves(..., path))))
    atomic.write_text(path, page("report: runs/NAME", body))

Every text that comes from a file (flags, paths, class names) goes through ``html.escape``.
"""

from __future__ import annotations

import base64
import html
import math
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
pre { background: #f6f6f6; padding: 0.5em; overflow-x: auto; font-size: 0.85em; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
figure { margin: 0 0 1.5em; } figcaption { font-size: 0.9em; color: #444; }
.note { color: #555; font-style: italic; }
"""


def escape(value) -> str:
    """``str(value)`` with &, <, >, " and ' escaped (text and attribute values alike)."""
    return html.escape(str(value), quote=True)


def number(value, digits: int = 4) -> str:
    """A number with ``digits`` decimals; an int as is; ``-`` for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int | bool) or (isinstance(value, float) and digits == 0):
        return str(round(value))
    return f"{float(value):.{digits}f}"


def page(title: str, body: str) -> str:
    """The whole document: ``body`` is already HTML; ``title`` is escaped."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{escape(title)}</h1>\n{body}</body>\n</html>\n"
    )


def section(anchor: str, title: str, body: str) -> str:
    """An ``<h2>`` section; ``anchor`` becomes its id (tests and readers find sections by it)."""
    return f'<section id="{escape(anchor)}">\n<h2>{escape(title)}</h2>\n{body}</section>\n'


def paragraph(text: str, note: bool = False) -> str:
    """A ``<p>``; ``note`` styles it as a remark (something missing, and why)."""
    cls = ' class="note"' if note else ""
    return f"<p{cls}>{escape(text)}</p>\n"


def preformatted(text: str) -> str:
    """Text kept as it is (flag files), escaped."""
    return f"<pre>{escape(text)}</pre>\n"


def details(summary: str, body: str) -> str:
    """A collapsed block (no script needed: the browser's own ``<details>``)."""
    return f"<details><summary>{escape(summary)}</summary>\n{body}</details>\n"


def table(header: Sequence[str], rows: Iterable[Sequence], caption: str = "", cls="") -> str:
    """Cells are escaped; format numbers before (``number``)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>\n" for row in rows
    )
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    attr = f' class="{escape(cls)}"' if cls else ""
    return f"<table{attr}>{cap}<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table>\n"


def image(png: bytes, alt: str, caption: str = "") -> str:
    """``png`` embedded as a data URI, in a ``<figure>`` with an optional caption.

    Raises:
      ValueError: ``png`` is not a PNG (the page would show a broken image).
    """
    if not png.startswith(PNG_MAGIC):
        raise ValueError(f"{alt}: not a PNG")
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="data:image/png;base64,{data}" alt="{escape(alt)}">{cap}</figure>\n'


def png_bytes(draw: Callable[[Path], object]) -> bytes:
    """The PNG that ``draw(path)`` writes (the ``analysis.plots`` functions take a path), read
    back from a temporary folder: the plotting code stays the one that writes run files."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "figure.png"
        draw(path)
        return path.read_bytes()


def markdown(text: str, folder: Path) -> str:
    """The subset of Markdown that ``compare``'s ``summary.md`` uses: ``#`` headings (one
    level down), pipe tables, ``![alt](file.png)`` (embedded from ``folder``), paragraphs
    with inline `code`."""
    out, rows = [], []

    def flush_table():
        if rows:
            out.append(table(rows[0], rows[1:]))
            rows.clear()

    for line in text.splitlines():
        line = line.strip()
        if line.startswith("|"):
            cells = [c.strip().replace("`", "") for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-", ":", " "} for c in cells):  # not the |---| row
                rows.append(cells)
            continue
        flush_table()
        picture = re.fullmatch(r"!\[([^\]]*)\]\(([^)]+)\)", line)
        if picture and (folder / picture[2]).is_file():
            out.append(image((folder / picture[2]).read_bytes(), picture[1]))
        elif line.startswith("#"):
            out.append(f"<h3>{escape(line.lstrip('#').strip())}</h3>\n")
        elif line:
            code = re.sub(r"`([^`]*)`", r"<code>\1</code>", escape(line))
            out.append(f"<p>{code}</p>\n")
    flush_table()
    return "".join(out)
