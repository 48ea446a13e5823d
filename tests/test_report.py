"""The HTML report and the overlay: self-contained, escaped, and rendered by a real browser.

The browser test needs Chromium from the system packages
(``apt-get install -y chromium``). Without it the test fails
when ``CI`` is set (so CI cannot go green silently) and is skipped elsewhere.
Set ``SAMPLESCOUT_SCREENSHOT_DIR`` to keep the browser's screenshot for a look.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from samplescout.bundle import open_bundle
from samplescout.cli import main
from samplescout.overlay import render_overlay
from samplescout.report import render_report, write_report

CHROMIUM = os.environ.get("SAMPLESCOUT_CHROMIUM", "/usr/bin/chromium")
APT_LINE = "apt-get update && apt-get install -y chromium"
EVIL = '<script>alert("x")</script>'


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _chromium() -> str:
    """The Chromium executable; fails in CI and skips elsewhere when it is missing."""
    exe = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if exe:
        return exe
    message = f"{CHROMIUM} is missing: install it with `{APT_LINE}`"
    if _in_ci():
        pytest.fail(message)
    pytest.skip(message)


def _browser(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


class _Dom(HTMLParser):
    """Collects what the assertions need from a serialised DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.sample_rows = 0
        self.section: str | None = None
        self.imgs: list[dict[str, str]] = []
        self.urls: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "section":
            self.section = a.get("id")
        if tag == "tr" and self.section == "samples" and "tbody" in self.stack:
            self.sample_rows += 1
        if tag == "img":
            self.imgs.append(a)
        if tag == "script":
            self.scripts += 1
        for key, value in a.items():
            if key in ("src", "href", "srcset", "action", "poster", "data"):
                self.urls.append(value)
            elif key == "style":
                self.urls += re.findall(r"url\(\s*['\"]?([^'\")]*)", value)
        if tag not in ("img", "meta", "br", "hr", "input", "link"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.stack:
            while self.stack and self.stack.pop() != tag:
                pass
        if tag == "section":
            self.section = None


def _result() -> dict[str, Any]:
    """A small SPEC result with hostile strings in every free-text field."""
    square = [[10.0, 10.0], [20.0, 10.0], [20.0, 20.0], [10.0, 20.0]]
    return {
        "version": 1,
        "carrier": "slide",
        "samples": [
            {
                "element": "cover_glass",
                "shape": "rectangle",
                "center_mm": [15.0, 15.0],
                "size_mm": [10.0, 10.0],
                "angle_deg": 0.0,
                "polygon_mm": square,
                "confidence": 0.9,
                "label": EVIL,
                "occupied": 0.5,
            }
        ],
        "plate": None,
        "structures": [{"class": "label", "polygon_mm": square, "probability": 0.9}],
        "barcodes": [{"format": "QR_CODE", "text": EVIL, "polygon_mm": square}],
        "provenance": {
            "samplescout": "0.1.0",
            "models": {"select": "m@1"},
            "context": {"microscope": "<b>scope</b>"},
        },
        "stats": {
            "frames": 1,
            "full_res_pixels": 1000,
            "full_res_pixels_read": 250,
            "coarse_pixels": 16,
            "seconds": 0.5,
            "stage_seconds": {"decode": 0.1, "identify": 0.3},
            "bytes_moved": {"identify_read": 250},
            "method": "coarse",
        },
    }


def test_every_result_string_is_escaped() -> None:
    page = render_report(_result(), overlay=b"\x89PNG", overlay_type="image/png")
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;b&gt;scope&lt;/b&gt;" in page
    assert 'src="data:image/png;base64,' in page
    assert not re.search(r"https?://", page)
    assert "25.0%" in page  # full-res pixels read vs total
    assert "Content-Security-Policy" in page


def test_report_without_overlay_or_samples() -> None:
    doc = _result()
    doc["samples"], doc["barcodes"], doc["stats"] = [], [], {}
    page = render_report(doc)
    assert "No sample was found" in page and "<img" not in page


def test_overlay_draws_names_only_where_they_fit(easy_wide_slide: Path) -> None:
    bundle = open_bundle(easy_wide_slide, check_images=False)
    doc = _result()
    doc["samples"][0]["label"] = "A1"
    big = render_overlay(bundle, doc)
    tiny = copy.deepcopy(doc)
    s = tiny["samples"][0]
    s["size_mm"], s["polygon_mm"] = (
        [0.2, 0.2],
        [[14.9, 14.9], [15.1, 14.9], [15.1, 15.1], [14.9, 15.1]],
    )
    small = render_overlay(bundle, tiny)
    assert big.ndim == 3 and big.dtype == np.uint8 and big.shape == small.shape
    # The name box darkens the sample's centre only when the name fits.
    cy, cx = _centre_px(big, bundle, doc)
    assert (
        big[cy - 2 : cy + 3, cx - 2 : cx + 3].mean()
        != small[cy - 2 : cy + 3, cx - 2 : cx + 3].mean()
    )


def _centre_px(img: np.ndarray, bundle: Any, doc: dict[str, Any]) -> tuple[int, int]:
    from samplescout.overlay import _stitch

    _, lo, mm_per_px, _ = _stitch(bundle, 1800)
    x, y = (np.asarray(doc["samples"][0]["center_mm"]) - lo) / mm_per_px
    return round(float(y)), round(float(x))


def test_localize_report_renders_in_headless_chromium(
    easy_wide_slide: Path, tmp_path: Path
) -> None:
    exe = _chromium()
    out, report = tmp_path / "result.json", tmp_path / "report.html"
    assert (
        main(
            [
                "--quiet",
                "localize",
                str(easy_wide_slide),
                "--out",
                str(out),
                "--report",
                str(report),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    # The barcode text is attacker-controlled: make the page carry a hostile one too.
    result["barcodes"].append(
        {"format": "CODE_128", "text": EVIL, "polygon_mm": [[1, 1], [2, 1], [2, 2]]}
    )
    write_report(report, result, bundle=open_bundle(easy_wide_slide, check_images=False))

    proc = _browser(exe, tmp_path / "profile-dom", "--dump-dom", report.as_uri())
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = _Dom()
    dom.feed(proc.stdout)
    assert dom.sample_rows == len(result["samples"]) > 0
    overlay = [i for i in dom.imgs if i.get("id") == "overlay-img"]
    assert len(overlay) == 1 and overlay[0]["src"].startswith("data:image/")
    assert dom.scripts == 0
    assert not [u[:80] for u in dom.urls if u and not u.startswith(("data:", "#"))]
    assert not re.search(r"https?://", proc.stdout)
    assert EVIL not in proc.stdout and "alert(" in proc.stdout  # shown as text, not run

    shot = tmp_path / "report.png"
    proc = _browser(
        exe,
        tmp_path / "profile-shot",
        "--hide-scrollbars",
        "--window-size=1280,2000",
        f"--screenshot={shot}",
        report.as_uri(),
    )
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (2000, 1280)
    assert float(img.std()) > 20  # a page with a picture and tables, not a blank one
    keep = os.environ.get("SAMPLESCOUT_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")
        shutil.copy(report, Path(keep) / "report.html")


def test_demo_writes_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out-dir", str(out), "--frame-scale", "0.25"]) == 0
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "data:image/jpeg;base64," in page
    assert "report.html" in capsys.readouterr().out


def test_name_fitting_prefers_two_lines_then_name_then_nothing() -> None:
    from samplescout.overlay import _fit_lines

    options = [["A1", "0.31"], ["A1 0.31"], ["A1"]]
    assert _fit_lines(options, (200.0, 200.0), 0.55) == ["A1", "0.31"]
    assert _fit_lines(options, (70.0, 25.0), 0.55) == ["A1 0.31"]
    assert _fit_lines(options, (30.0, 25.0), 0.55) == ["A1"]
    assert _fit_lines(options, (5.0, 5.0), 0.55) is None
