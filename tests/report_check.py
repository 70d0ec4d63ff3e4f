"""Reads a ``report.html`` with the standard library's HTML parser and checks that it stands
alone: every image an embedded PNG, no reference to any other file or address, no script."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATA_PNG = "data:image/png;base64,"


class Report(HTMLParser):
    """``sections``: id -> {"text": all text, "cells": table cells, "images": PNG bytes};
    ``references``: every (tag, attribute, value) of src, href, srcset, data, action, poster;
    ``tags``: every tag name met."""

    REFERENCING = {"src", "href", "srcset", "data", "action", "poster"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.sections, self.references, self.tags = {}, [], set()
        self.current, self.in_cell, self.title = None, False, ""
        self._in_title = False

    def _section(self) -> dict:
        return self.sections.setdefault(self.current, {"text": "", "cells": [], "images": []})

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        attrs = dict(attrs)
        self.references += [(tag, k, v) for k, v in attrs.items() if k in self.REFERENCING]
        if tag == "section":
            self.current = attrs.get("id")
        elif tag in ("td", "th"):
            self.in_cell = True
            self._section()["cells"].append("")
        elif tag == "img":
            src = attrs.get("src", "")
            assert src.startswith(DATA_PNG), f"image not embedded as PNG: {src[:80]}"
            self._section()["images"].append(base64.b64decode(src[len(DATA_PNG) :], validate=True))
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag):
        if tag == "section":
            self.current = None
        elif tag in ("td", "th"):
            self.in_cell = False
        elif tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        section = self._section()
        section["text"] += data
        if self.in_cell:
            section["cells"][-1] += data


def parse_report(path: Path) -> Report:
    """The parsed report, after checking that it is self-contained."""
    text = Path(path).read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    report = Report()
    report.feed(text)
    report.close()
    for section in report.sections.values():
        for png in section["images"]:
            assert png.startswith(PNG_MAGIC) and len(png) > 1000
    outside = [r for r in report.references if not (r[1] == "src" and r[2].startswith(DATA_PNG))]
    assert not outside, f"references outside the page: {[(t, a, v[:60]) for t, a, v in outside]}"
    assert not report.tags & {"script", "link", "iframe", "object", "embed"}, report.tags
    return report
