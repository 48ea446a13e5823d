"""Per-session fusion state and the merging of source-identical structures.

The state is plain JSON data (lists, dicts, floats, strings) so it can live in Redis
and round-trip through :meth:`FuseState.to_dict` / :meth:`FuseState.from_dict`.
Merging is a pure function of the stored structures, sorted by a key that does not
depend on arrival order, and groups by the connected components of a symmetric
"same source" relation, which no processing order can change.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from samplescout.contracts import STRUCTURE_CLASSES, Structure
from samplescout.geometry import FrameGeometry

STATE_VERSION = 1


@dataclass
class FuseState:
    """Everything fusion keeps for one session.

    ``structures`` holds one JSON object per identified edge or label (``no_structure``
    results are only counted); ``footprints`` maps a frame index (as a string, JSON
    keys are strings) to the frame outline in holder mm, ``geometries`` to its pose and
    pixel size (:meth:`FrameGeometry.to_dict`, where the frame's pixels can be read
    again); ``barcodes`` holds the codes read on label crops (SPEC section 3 objects
    plus the frame index).
    """

    structures: list[dict[str, Any]] = field(default_factory=list)
    footprints: dict[str, list[list[float]]] = field(default_factory=dict)
    geometries: dict[str, dict[str, Any]] = field(default_factory=dict)
    empty_regions: int = 0
    barcodes: list[dict[str, Any]] = field(default_factory=list)

    def add(self, structures: Iterable[Structure]) -> None:
        """Record the identification results of some regions (any frames, any order)."""
        for s in structures:
            if s.shape_class == "no_structure":
                self.empty_regions += 1
                continue
            self.structures.append(_entry(s))

    def add_barcodes(self, frame_index: int, barcodes: Iterable[dict[str, Any]]) -> None:
        """Record codes decoded in one frame (``format``, ``text``, ``polygon_mm``)."""
        for b in barcodes:
            self.barcodes.append(
                {
                    "format": str(b["format"]),
                    "text": str(b["text"]),
                    "polygon_mm": [[float(x), float(y)] for x, y in b["polygon_mm"]],
                    "frame": int(frame_index),
                }
            )

    def add_frame(self, frame_index: int, geometry: FrameGeometry) -> None:
        """Record where a frame lies: its outline in holder mm and its geometry."""
        self.footprints[str(frame_index)] = [
            [float(x), float(y)] for x, y in geometry.footprint_mm()
        ]
        self.geometries[str(frame_index)] = geometry.to_dict()

    def merge(self, other: FuseState) -> None:
        """Add everything ``other`` holds (another frame's part of the same session)."""
        self.structures.extend(other.structures)
        self.footprints.update(other.footprints)
        self.geometries.update(other.geometries)
        self.empty_regions += other.empty_regions
        self.barcodes.extend(other.barcodes)

    def sorted_structures(self) -> list[dict[str, Any]]:
        """The stored structures in an order independent of their arrival, each once
        (a redelivered message must not count twice)."""
        out: list[dict[str, Any]] = []
        for e in sorted(self.structures, key=_sort_key):
            if not out or e != out[-1]:
                out.append(e)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "structures": [dict(s) for s in self.structures],
            "footprints": {k: [list(p) for p in v] for k, v in self.footprints.items()},
            "geometries": {k: dict(v) for k, v in self.geometries.items()},
            "empty_regions": self.empty_regions,
            "barcodes": [dict(b) for b in self.barcodes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FuseState:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported fuse state version {data.get('version')!r}")
        return cls(
            structures=[dict(s) for s in data.get("structures", [])],
            footprints={
                str(k): [list(p) for p in v] for k, v in data.get("footprints", {}).items()
            },
            geometries={str(k): dict(v) for k, v in data.get("geometries", {}).items()},
            empty_regions=int(data.get("empty_regions", 0)),
            barcodes=[dict(b) for b in data.get("barcodes", [])],
        )


def _entry(s: Structure) -> dict[str, Any]:
    r = s.region
    return {
        "frame": r.frame_index,
        "region": r.region_index,
        "class": s.shape_class,
        "p": float(s.probability),
        "probs": {k: float(v) for k, v in sorted(s.class_probabilities.items()) if v > 0.0},
        "contrast": float(s.contrast),
        "marker": bool(s.marker),
        "crossing": bool(s.crossing),
        "segment": [list(map(float, s.segment_mm[0])), list(map(float, s.segment_mm[1]))]
        if s.segment_mm is not None
        else None,
        "arc": [float(v) for v in s.arc_mm] if s.arc_mm is not None else None,
        "region_mm": [[float(x), float(y)] for x, y in r.polygon_mm],
    }


def _sort_key(e: dict[str, Any]) -> tuple[Any, ...]:
    geo = e["segment"] or [[v] for v in (e["arc"] or [])]
    return (e["frame"], e["region"], e["class"], [round(v, 9) for pt in geo for v in pt], e["p"])


@dataclass(frozen=True)
class LineSource:
    """A fused straight edge: direction angle (deg, [0, 180)), normal offset, extent."""

    angle_deg: float
    offset: float
    t0: float
    t1: float
    coverage_mm: float
    probability: float
    shape_class: str
    frames: tuple[int, ...]
    members: tuple[int, ...] = ()
    decided_early: bool = False

    @property
    def direction(self) -> np.ndarray:
        a = math.radians(self.angle_deg)
        return np.array([math.cos(a), math.sin(a)])

    @property
    def normal(self) -> np.ndarray:
        a = math.radians(self.angle_deg)
        return np.array([-math.sin(a), math.cos(a)])

    @property
    def endpoints(self) -> np.ndarray:
        base = self.normal * self.offset
        return np.array([base + self.direction * self.t0, base + self.direction * self.t1])

    @property
    def length(self) -> float:
        return self.t1 - self.t0


@dataclass(frozen=True)
class CircleSource:
    """A fused round edge: circle in holder mm and the angular span seen (deg)."""

    center: tuple[float, float]
    radius: float
    span_deg: float
    probability: float
    shape_class: str
    frames: tuple[int, ...]


VOTE_METHODS = ("majority", "probabilistic")


def vote(
    entries: list[dict[str, Any]], weights: np.ndarray, method: str = "majority"
) -> tuple[str, bool]:
    """The class of a source from its members, and whether the vote was decided early.

    ``majority``: each member votes for its class with its weight. ``probabilistic``:
    each member's class distribution (``probs``; its one-hot class at probability
    ``p`` when absent) multiplies into a naive-Bayes posterior, tempered by the
    weight. Members are taken in the given (arrival-independent) order and counting
    stops as soon as no remaining member can change the winner, so an early stop
    never changes the answer. Ties go to the earlier SPEC class.
    """
    if method not in VOTE_METHODS:
        raise ValueError(f"unknown vote method {method!r} (one of {', '.join(VOTE_METHODS)})")
    n_cls = len(STRUCTURE_CLASSES)
    w = np.asarray(weights, dtype=np.float64)
    w = w / max(float(w.max()), 1e-12) if len(w) else w
    tally = np.zeros(n_cls)
    order = np.arange(n_cls)
    remaining = float(w.sum())
    early = False
    for k, (e, wk) in enumerate(zip(entries, w, strict=True)):
        remaining -= float(wk)
        if method == "majority":
            tally[STRUCTURE_CLASSES.index(e["class"])] += wk
            gain = remaining  # the most any class can still gain
        else:
            tally += wk * np.log(_distribution(e))
            gain = remaining * -math.log(_FLOOR / 2.0)
        if k + 1 < len(entries):
            top2 = np.sort(tally)[-2:]
            if top2[1] - top2[0] > gain:
                early = True
                break
    best = max(order, key=lambda c: (tally[c], -c))
    return STRUCTURE_CLASSES[int(best)], early


_FLOOR = 1e-3


def _distribution(e: dict[str, Any]) -> np.ndarray:
    """A member's class distribution over the SPEC classes, floored (never exactly 0)."""
    dist = np.zeros(len(STRUCTURE_CLASSES))
    probs = e.get("probs") or {}
    if probs:
        for name, v in probs.items():
            dist[STRUCTURE_CLASSES.index(name)] = v
    else:
        p = min(max(float(e["p"]), 0.0), 1.0)
        dist[:] = (1.0 - p) / (len(dist) - 1)
        dist[STRUCTURE_CLASSES.index(e["class"])] = p
    dist = np.maximum(dist, _FLOOR)
    return dist / dist.sum()


def connected_groups(n: int, pairs: Iterable[tuple[int, int]]) -> list[list[int]]:
    """Connected components of ``range(n)`` under ``pairs``, each sorted, by smallest member."""
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def fuse_lines(
    entries: list[dict[str, Any]],
    *,
    angle_tol_deg: float = 3.0,
    offset_tol_mm: float = 0.15,
    gap_tol_mm: float = 1.5,
    coverage_scale_mm: float = 2.0,
    method: str = "majority",
) -> list[LineSource]:
    """Merge straight pieces that are the same physical edge.

    Two pieces are the same source when their directions agree within
    ``angle_tol_deg``, each one's midpoint lies within ``offset_tol_mm`` of the other's
    line and they overlap or leave a gap of at most ``gap_tol_mm`` along it; sources
    are the connected components of that relation. ``entries`` must be sorted
    (:meth:`FuseState.sorted_structures`). ``method`` is the class vote of
    :func:`vote`.
    """
    if not entries:
        return []
    seg = np.array([e["segment"] for e in entries], dtype=np.float64)  # (n, 2, 2)
    p = np.array([e["p"] for e in entries], dtype=np.float64)
    vec = seg[:, 1] - seg[:, 0]
    length = np.maximum(np.hypot(vec[:, 0], vec[:, 1]), 1e-9)
    d = vec / length[:, None]
    d[d[:, 0] < 0] *= -1.0
    nrm = np.stack([-d[:, 1], d[:, 0]], axis=1)
    mid = seg.mean(axis=1)
    cos_tol = math.cos(math.radians(angle_tol_deg))
    pairs: list[tuple[int, int]] = []
    n = len(entries)
    for start in range(0, n, 256):
        sl = slice(start, min(n, start + 256))
        dm = mid[None, :, :] - mid[sl, None, :]  # (b, n, 2) from row piece to column piece
        same_dir = np.abs(d[sl] @ d.T) >= cos_tol
        off_ij = np.abs(np.einsum("bnk,bk->bn", dm, nrm[sl]))
        off_ji = np.abs(np.einsum("bnk,nk->bn", dm, nrm))
        along = np.abs(np.einsum("bnk,bk->bn", dm, d[sl]))
        gap = along - 0.5 * (length[sl, None] + length[None, :])
        ok = same_dir & (off_ij <= offset_tol_mm) & (off_ji <= offset_tol_mm) & (gap <= gap_tol_mm)
        ii, jj = np.nonzero(ok)
        pairs.extend((int(i) + start, int(j)) for i, j in zip(ii, jj, strict=True) if i + start < j)
    sources: list[LineSource] = []
    for group in connected_groups(n, pairs):
        g = np.array(group)
        w = length[g] * p[g]
        pts = seg[g].reshape(-1, 2)
        pw = np.repeat(w, 2)
        c = (pts * pw[:, None]).sum(axis=0) / pw.sum()
        q = pts - c
        cov = (q * pw[:, None]).T @ q
        _, evecs = np.linalg.eigh(cov)
        angle = math.degrees(math.atan2(evecs[1, 1], evecs[0, 1])) % 180.0
        u = np.array([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
        normal = np.array([-u[1], u[0]])
        t = seg[g] @ u  # (m, 2) interval of every piece along the fused line
        lo, hi = np.sort(t, axis=1).T
        order = np.argsort(lo, kind="stable")
        covered, cur_lo, cur_hi = 0.0, lo[order[0]], hi[order[0]]
        for k in order[1:]:
            if lo[k] > cur_hi:
                covered += cur_hi - cur_lo
                cur_lo, cur_hi = lo[k], hi[k]
            else:
                cur_hi = max(cur_hi, hi[k])
        covered += cur_hi - cur_lo
        members = [entries[i] for i in group]
        cls, early = vote(members, w, method)
        prob = float(p[g].max()) * (1.0 - math.exp(-covered / coverage_scale_mm))
        sources.append(
            LineSource(
                angle_deg=angle,
                offset=float(c @ normal),
                t0=float(lo.min()),
                t1=float(hi.max()),
                coverage_mm=float(covered),
                probability=prob,
                shape_class=cls,
                decided_early=early,
                frames=tuple(sorted({int(e["frame"]) for e in members})),
                members=tuple(group),
            )
        )
    return sources


def merge_barcodes(barcodes: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """SPEC ``barcodes``: one per (format, text), however many frames read it.

    The outline is the vertex-wise mean of the member outlines, each first put in a
    canonical vertex order (so neither the decoder's start corner nor arrival order
    matters); codes are sorted by format and text.
    """
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for b in barcodes:
        groups.setdefault((b["format"], b["text"]), []).append(b)
    out = []
    for (fmt, text), members in sorted(groups.items()):
        members = sorted(members, key=lambda b: (b.get("frame", 0), b["polygon_mm"]))
        shapes = [_canonical(np.asarray(b["polygon_mm"], dtype=np.float64)) for b in members]
        same = [p for p in shapes if p.shape == shapes[0].shape]
        poly = np.mean(same, axis=0)
        out.append(
            {
                "format": fmt,
                "text": text,
                "polygon_mm": [[float(x), float(y)] for x, y in poly],
            }
        )
    return out


def _canonical(poly: np.ndarray) -> np.ndarray:
    """Vertices by angle about their centroid, starting nearest the top-left."""
    c = poly.mean(axis=0)
    order = np.argsort(np.arctan2(poly[:, 1] - c[1], poly[:, 0] - c[0]), kind="stable")
    p = poly[order]
    start = int(np.argmin(p[:, 0] + p[:, 1]))
    return np.roll(p, -start, axis=0)
