"""A self-contained HTML report of one localization result.

One file, no network: the overlay picture is embedded as a ``data:`` URI, the CSS is
inline, there is no script, and a Content-Security-Policy forbids loading anything
else. Every string taken from the result (labels, barcode texts, context values...)
is HTML-escaped, so a barcode reading ``<script>`` stays text.

Typical use::

    from samplescout.report import write_report
    write_report("report.html", result, bundle=open_bundle("run42"))
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from samplescout.atomic import write_bytes_atomic
from samplescout.bundle import Bundle

#: JPEG quality of the embedded overlay (JPEG keeps the file small; lines stay crisp).
OVERLAY_QUALITY = 88

_CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans",
       sans-serif; margin: 0; color: #1d2330; background: #f4f6f9; }
header { background: #1d2a3a; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 22px; font-weight: 600; }
header p { margin: 0; color: #b9c6d8; }
main { padding: 20px 28px 40px; max-width: 1400px; }
section { background: #fff; border: 1px solid #dde3ea; border-radius: 8px;
          padding: 14px 18px; margin: 0 0 18px; }
h2 { font-size: 17px; margin: 0 0 10px; }
table + h2, div + h2 { margin-top: 18px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin-bottom: 18px; }
.card { background: #fff; border: 1px solid #dde3ea; border-radius: 8px;
        padding: 10px 16px; min-width: 140px; }
.card b { display: block; font-size: 20px; }
.card span { color: #5b6778; font-size: 12px; text-transform: uppercase;
             letter-spacing: .04em; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; border-radius: 4px; display: block; }
figcaption { color: #5b6778; font-size: 12px; margin-top: 6px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #eceff3; }
th { background: #f0f3f7; font-weight: 600; position: sticky; top: 0; }
td.num, th.num { text-align: right; }
.scroll { max-height: 520px; overflow: auto; }
.bar { display: inline-block; height: 8px; background: #2f9e44; border-radius: 4px;
       vertical-align: middle; margin-right: 6px; }
.bar.t { background: #4c6ef5; }
.muted { color: #7b8696; }
code { font: 12px ui-monospace, "DejaVu Sans Mono", monospace; background: #f0f3f7;
       padding: 1px 4px; border-radius: 3px; }
.kv th { width: 260px; background: none; }
"""


def _e(value: Any) -> str:
    """HTML-escaped text of ``value`` (``None`` as an empty string)."""
    return "" if value is None else html.escape(str(value), quote=True)


def _num(value: Any, fmt: str = ".3f", unit: str = "") -> str:
    """``value`` formatted as a number, or its escaped text when it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _e(value)
    if not math.isfinite(float(value)):
        return _e(value)
    return f"{value:{fmt}}{unit}"


def _pair(values: Any, fmt: str = ".3f", sep: str = ", ") -> str:
    """Numbers of a list joined by ``sep`` (already HTML); other values escaped."""
    if isinstance(values, Sequence) and not isinstance(values, str):
        return sep.join(_num(v, fmt) for v in values)
    return _e(values)


def _bytes(n: Any) -> str:
    if not isinstance(n, int | float) or isinstance(n, bool):
        return _e(n)
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(size) < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover - loop always returns


def _count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) and not isinstance(n, bool) else _num(n, ",.0f")


def _table(
    head: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    numeric: Sequence[int] = (),
    cls: str = "",
) -> str:
    """A table; ``head`` and ``rows`` cells must already be escaped HTML."""
    num = set(numeric)
    th = "".join(
        f'<th class="num">{h}</th>' if i in num else f"<th>{h}</th>" for i, h in enumerate(head)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i in num else f"<td>{c}</td>" for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _kv(items: Iterable[tuple[str, str]]) -> str:
    """A two-column key/value table; values must already be escaped HTML."""
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in items)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def _confidence(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        width = max(0.0, min(1.0, float(value))) * 60
        return f'<span class="bar" style="width:{width:.0f}px"></span>{value:.2f}'
    return _e(value)


def _samples_section(samples: Sequence[Mapping[str, Any]]) -> str:
    head = [
        "#",
        "label",
        "element",
        "shape",
        "centre x, y (mm)",
        "size (mm)",
        "angle (&deg;)",
        "confidence",
        "occupied",
    ]
    rows = []
    for i, s in enumerate(samples):
        occupied = s.get("occupied")
        rows.append(
            [
                str(i + 1),
                _e(s.get("label", "")),
                _e(s.get("element", "")),
                _e(s.get("shape", "")),
                _pair(s.get("center_mm", [])),
                _pair(s.get("size_mm", []), ".2f", " &times; "),
                _num(s.get("angle_deg", 0.0), ".2f"),
                _confidence(s.get("confidence")),
                "" if occupied is None else _num(occupied, ".2f"),
            ]
        )
    table = (
        _table(head, rows, numeric=(0, 4, 5, 6, 8))
        if rows
        else '<p class="muted">No sample was found.</p>'
    )
    return (
        f'<section id="samples"><h2>Samples ({len(samples)})</h2>'
        f'<div class="scroll">{table}</div></section>'
    )


def _plate_section(plate: Any) -> str:
    if not isinstance(plate, Mapping):
        return ""
    labels = {
        "wells": ("wells", "d"),
        "rows": ("rows", "d"),
        "cols": ("columns", "d"),
        "a1_center_mm": ("A1 centre (mm)", ".3f"),
        "rotation_deg": ("rotation (&deg;)", ".3f"),
        "well_spacing_mm": ("well spacing (mm)", ".3f"),
        "well_size_mm": ("well size (mm)", ".3f"),
        "circular_wells": ("circular wells", ""),
    }
    items = []
    for key, value in plate.items():
        name, fmt = labels.get(str(key), (_e(key), ".3f"))
        if isinstance(value, Sequence) and not isinstance(value, str):
            sep = " &times; " if key == "well_spacing_mm" else ", "
            text = _pair(value, fmt or ".3f", sep)
        elif isinstance(value, bool) or not fmt:
            text = _e("yes" if value is True else "no" if value is False else value)
        else:
            text = _num(value, fmt)
        items.append((name, text))
    return f'<section id="plate"><h2>Plate pose</h2>{_kv(items)}</section>'


def _barcodes_section(barcodes: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for b in barcodes:
        poly = b.get("polygon_mm") or []
        try:
            cx = sum(float(p[0]) for p in poly) / len(poly)
            cy = sum(float(p[1]) for p in poly) / len(poly)
            where = f"{cx:.2f}, {cy:.2f}"
        except (TypeError, ValueError, IndexError, ZeroDivisionError):
            where = ""
        rows.append([_e(b.get("format", "")), f"<code>{_e(b.get('text', ''))}</code>", where])
    body = (
        _table(["format", "text", "centre x, y (mm)"], rows, numeric=(2,))
        if rows
        else '<p class="muted">No barcode was decoded.</p>'
    )
    return f'<section id="barcodes"><h2>Barcodes ({len(rows)})</h2>{body}</section>'


def _stats_section(stats: Mapping[str, Any]) -> str:
    total = stats.get("full_res_pixels")
    read = stats.get("full_res_pixels_read")
    coarse = stats.get("coarse_pixels")
    items: list[tuple[str, str]] = [("frames", _count(stats.get("frames", "")))]
    if isinstance(total, int | float) and total:
        share = f" ({100.0 * read / total:.1f}%)" if isinstance(read, int | float) else ""
        items.append(
            (
                "full-resolution pixels read / total",
                f"{_count(read)} / {_count(total)}{share}",
            )
        )
        if isinstance(coarse, int | float):
            items.append(
                (
                    "coarse pixels (selection input)",
                    f"{_count(coarse)} ({100.0 * coarse / total:.2f}%)",
                )
            )
    else:
        items.append(("full-resolution pixels read", _count(read)))
        items.append(("coarse pixels", _count(coarse)))
    shown = {
        "frames",
        "full_res_pixels",
        "full_res_pixels_read",
        "coarse_pixels",
        "stage_seconds",
        "bytes_moved",
    }
    for key, value in stats.items():
        if key in shown or isinstance(value, Mapping):
            continue
        if key == "seconds":
            items.append(("seconds (total)", _num(value, ".3f", " s")))
        else:
            items.append((_e(key).replace("_", " "), _num(value, ",.4g")))
    parts = [f'<section id="stats"><h2>Stats</h2>{_kv(items)}']
    stages = stats.get("stage_seconds")
    if isinstance(stages, Mapping) and stages:
        numbers = [v for v in stages.values() if isinstance(v, int | float)]
        longest = max(numbers, default=0.0) or 1.0
        rows = []
        for name, sec in stages.items():
            width = 160 * float(sec) / longest if isinstance(sec, int | float) else 0.0
            rows.append(
                [
                    _e(name),
                    f'<span class="bar t" style="width:{width:.0f}px"></span>{_num(sec, ".4f")}',
                ]
            )
        parts.append("<h2>Time per stage</h2>" + _table(["stage", "seconds"], rows, numeric=(1,)))
    moved = stats.get("bytes_moved")
    if isinstance(moved, Mapping) and moved:
        rows = [[_e(k), _bytes(v)] for k, v in moved.items()]
        parts.append("<h2>Bytes moved</h2>" + _table(["where", "bytes"], rows, numeric=(1,)))
    for key, value in stats.items():
        if key in shown or not isinstance(value, Mapping):
            continue
        rows = [[_e(k), _e(v)] for k, v in value.items()]
        parts.append(f"<h2>{_e(key)}</h2>" + _table(["key", "value"], rows))
    parts.append("</section>")
    return "".join(parts)


def _provenance_section(prov: Any) -> str:
    if not isinstance(prov, Mapping):
        return ""
    items: list[tuple[str, str]] = [("samplescout version", _e(prov.get("samplescout", "")))]
    for key, value in prov.items():
        if key in ("samplescout", "models", "context"):
            continue
        if not isinstance(value, Mapping | list):
            items.append((_e(key), _e(value)))
    models = prov.get("models") or {}
    context = prov.get("context") or {}
    parts = [f'<section id="provenance"><h2>Provenance</h2>{_kv(items)}']
    if isinstance(models, Mapping):
        rows = [[_e(k), f"<code>{_e(v)}</code>"] for k, v in models.items()]
        parts.append("<h2>Models</h2>" + (_table(["stage", "model"], rows) if rows else ""))
    if isinstance(context, Mapping):
        rows = [[_e(k), _e(v)] for k, v in context.items()]
        parts.append(
            "<h2>Context</h2>"
            + (_table(["key", "value"], rows) if rows else '<p class="muted">none</p>')
        )
    parts.append("</section>")
    return "".join(parts)


def render_report(
    result: Mapping[str, Any],
    *,
    overlay: bytes | None = None,
    overlay_type: str = "image/jpeg",
    source: str | None = None,
    generated: _dt.datetime | None = None,
) -> str:
    """The HTML report of ``result`` as one self-contained page.

    Parameters
    ----------
    result
        A SPEC section 3 result document.
    overlay
        Encoded overlay picture to embed (see :mod:`samplescout.overlay`), or ``None``.
    overlay_type
        Its media type (``image/jpeg`` or ``image/png``).
    source
        What was localized (bundle name, microscope address), shown in the header.
    generated
        Time stamp shown in the header (default: now, UTC).

    Returns
    -------
    str
        The HTML document.
    """
    samples = list(result.get("samples") or [])
    barcodes = list(result.get("barcodes") or [])
    stats = result.get("stats") or {}
    stats = stats if isinstance(stats, Mapping) else {}
    carrier = result.get("carrier", "unknown")
    when = (generated or _dt.datetime.now(_dt.UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    subtitle = f"{_e(source)} &middot; " if source else ""
    total, read = stats.get("full_res_pixels"), stats.get("full_res_pixels_read")
    share = (
        f"{100.0 * read / total:.1f}%"
        if isinstance(total, int | float) and total and isinstance(read, int | float)
        else "&ndash;"
    )
    cards = [
        (_e(carrier), "carrier recognised"),
        (str(len(samples)), "samples"),
        (str(len(barcodes)), "barcodes"),
        (_count(stats.get("frames", "&ndash;")) if "frames" in stats else "&ndash;", "frames"),
        (share, "full-res pixels read"),
        (_num(stats.get("seconds"), ".2f", " s") if "seconds" in stats else "&ndash;", "time"),
    ]
    card_html = "".join(f'<div class="card"><b>{v}</b><span>{k}</span></div>' for v, k in cards)
    if overlay:
        uri = f"data:{_e(overlay_type)};base64,{base64.b64encode(overlay).decode('ascii')}"
        figure = (
            f'<section id="overlay"><h2>Overlay</h2><figure><img id="overlay-img" src="{uri}" '
            f'alt="frames stitched in holder coordinates with the localized samples">'
            "<figcaption>Frames stitched in holder millimetres; green: samples with name and "
            "confidence, coloured outlines: structure regions by class (legend below the "
            "picture), red: barcodes.</figcaption></figure></section>"
        )
    else:
        figure = (
            '<section id="overlay"><h2>Overlay</h2><p class="muted">No overlay: the frames '
            "were not available as a bundle.</p></section>"
        )
    body = "".join(
        [
            f'<div class="cards">{card_html}</div>',
            figure,
            _samples_section(samples),
            _plate_section(result.get("plate")),
            _barcodes_section(barcodes),
            _stats_section(stats),
            _provenance_section(result.get("provenance")),
        ]
    )
    title = f"samplescout: {_e(carrier)}, {len(samples)} samples"
    csp = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{title}</h1><p>{subtitle}result version {_e(result.get('version', ''))}"
        f" &middot; generated {when}</p></header>"
        f"<main>{body}</main></body></html>\n"
    )


def write_report(
    path: str | os.PathLike[str],
    result: Mapping[str, Any],
    *,
    bundle: Bundle | None = None,
    source: str | None = None,
) -> Path:
    """Write the HTML report of ``result`` to ``path`` atomically.

    Parameters
    ----------
    path
        Where to write the ``.html`` file.
    result
        A SPEC section 3 result document.
    bundle
        The bundle the result came from; its frames make the embedded overlay.
        Without it the report has no picture.
    source
        Shown in the header (default: the bundle's name).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    overlay = None
    if bundle is not None:
        from samplescout.overlay import encode_overlay, render_overlay

        overlay = encode_overlay(render_overlay(bundle, result), ".jpg", OVERLAY_QUALITY)
        source = source or bundle.name
    page = render_report(result, overlay=overlay, overlay_type="image/jpeg", source=source)
    return write_bytes_atomic(path, page.encode("utf-8"))
