"""Accuracy of localization results against the simulator's ground truth.

A *set* is a directory of frame bundles, each holding ``ground_truth.json`` (SPEC
section 3, true holder coordinates, as ``samplescout simulate`` writes it). Every
bundle is localized (or its precomputed ``result.json`` is read) and its samples are
matched to the true ones greedily by IoU (best pair first, IoU >= 0.5, each sample
used once). Per carrier, per carrier and camera profile, and overall:

- ``recall``: matched true samples / true samples;
- ``precision``: matched found samples / found samples;
- ``mean_iou``: mean IoU of the matched pairs;
- ``median_center_error_mm``: median centre distance of the matched pairs;
- ``all_found``: share of holders whose every true sample was matched;
- ``carrier_correct``: share of holders whose carrier came out right;
- ``seconds``: mean localization time per holder (0 for precomputed results);
- ``occupancy_accuracy``: of the matched pairs where both the result and the truth give
  ``occupied``, the share that agree at 0.5 (``None`` where none do), and how many
  that is (``occupancy_judged``);
- ``codes_read``: of the printed codes on the labels (``codes``), the share whose format
  and text the result's ``barcodes`` name (``None`` where there are none), and
  ``codes_false``: codes reported that are not on the label.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from samplescout.geometry import polygon_iou

GROUND_TRUTH = "ground_truth.json"
RESULT = "result.json"
METRICS = (
    "recall",
    "precision",
    "mean_iou",
    "median_center_error_mm",
    "all_found",
    "carrier_correct",
)


@dataclass
class HolderScore:
    """The matching of one holder's result against its truth."""

    name: str
    carrier: str
    profile: str
    n_truth: int
    n_found: int
    ious: list[float] = field(default_factory=list)
    center_errors_mm: list[float] = field(default_factory=list)
    carrier_correct: bool = True
    seconds: float = 0.0
    #: The true samples no found one matched, and the found ones that matched none
    #: (:func:`brief` of each), so a miss can be looked up without rerunning.
    missed: list[dict[str, Any]] = field(default_factory=list)
    false: list[dict[str, Any]] = field(default_factory=list)
    #: Matched pairs where both say ``occupied``, and those that agree (>= 0.5 either way).
    occupancy_judged: int = 0
    occupancy_right: int = 0
    #: Printed codes on the holder's label, and those the result read (format and text
    #: both right), and codes it reported that are not there.
    codes: int = 0
    codes_read: int = 0
    codes_false: int = 0

    @property
    def all_found(self) -> bool:
        return len(self.ious) == self.n_truth


def match_samples(
    found: Sequence[Mapping[str, Any]],
    truth: Sequence[Mapping[str, Any]],
    iou_threshold: float = 0.5,
) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching ``(found index, truth index, IoU)``, best IoU first.

    Ties are broken by the indices, so the matching is deterministic.
    """
    pairs: list[tuple[float, int, int]] = []
    for i, f in enumerate(found):
        for j, t in enumerate(truth):
            if not _may_overlap(f, t):
                continue
            iou = polygon_iou(f["polygon_mm"], t["polygon_mm"])
            if iou >= iou_threshold:
                pairs.append((iou, i, j))
    pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
    used_f: set[int] = set()
    used_t: set[int] = set()
    out: list[tuple[int, int, float]] = []
    for iou, i, j in pairs:
        if i in used_f or j in used_t:
            continue
        used_f.add(i)
        used_t.add(j)
        out.append((i, j, iou))
    return out


def _may_overlap(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Cheap bounding-box test before the polygon IoU."""
    pa = np.asarray(a["polygon_mm"], dtype=np.float64)
    pb = np.asarray(b["polygon_mm"], dtype=np.float64)
    return bool(
        np.all(pa.min(axis=0) <= pb.max(axis=0)) and np.all(pb.min(axis=0) <= pa.max(axis=0))
    )


def brief(sample: Mapping[str, Any]) -> dict[str, Any]:
    """A sample's shape, size, centre, angle and confidence, rounded for reading."""
    return {
        "element": sample.get("element"),
        "shape": sample.get("shape"),
        "size_mm": [round(float(v), 2) for v in sample.get("size_mm") or []],
        "center_mm": [round(float(v), 2) for v in sample.get("center_mm") or []],
        "angle_deg": round(float(sample.get("angle_deg") or 0.0), 2),
        "confidence": round(float(sample.get("confidence", 1.0)), 3),
    }


def score_holder(
    result: Mapping[str, Any],
    truth: Mapping[str, Any],
    *,
    name: str = "",
    seconds: float = 0.0,
    iou_threshold: float = 0.5,
) -> HolderScore:
    """Score one result document against its ground truth (both SPEC section 3)."""
    found = list(result.get("samples") or [])
    true = list(truth.get("samples") or [])
    matches = match_samples(found, true, iou_threshold)
    matched_found, matched_true = {m[0] for m in matches}, {m[1] for m in matches}
    sim = (truth.get("provenance") or {}).get("simulator") or {}
    judged = [
        (float(found[i]["occupied"]) >= 0.5) == (float(true[j]["occupied"]) >= 0.5)
        for i, j, _ in matches
        if found[i].get("occupied") is not None and true[j].get("occupied") is not None
    ]
    truth_codes = {(b.get("format"), b.get("text")) for b in truth.get("barcodes") or []}
    read_codes = {(b.get("format"), b.get("text")) for b in result.get("barcodes") or []}
    return HolderScore(
        name=name,
        carrier=str(truth.get("carrier") or "unknown"),
        profile=str(sim.get("profile", "")),
        n_truth=len(true),
        n_found=len(found),
        ious=[m[2] for m in matches],
        center_errors_mm=[
            math.dist(found[i]["center_mm"], true[j]["center_mm"]) for i, j, _ in matches
        ],
        carrier_correct=result.get("carrier") == truth.get("carrier"),
        seconds=seconds,
        missed=[brief(t) for j, t in enumerate(true) if j not in matched_true],
        false=[brief(f) for i, f in enumerate(found) if i not in matched_found],
        occupancy_judged=len(judged),
        occupancy_right=sum(judged),
        codes=len(truth_codes),
        codes_read=len(truth_codes & read_codes),
        codes_false=len(read_codes - truth_codes),
    )


def summarize(scores: Iterable[HolderScore]) -> dict[str, float | int | None]:
    """The metrics of the module docstring over some holders."""
    items = list(scores)
    n_truth = sum(s.n_truth for s in items)
    n_found = sum(s.n_found for s in items)
    ious = [v for s in items for v in s.ious]
    errs = [v for s in items for v in s.center_errors_mm]
    n = max(len(items), 1)
    judged = sum(s.occupancy_judged for s in items)
    codes = sum(s.codes for s in items)
    return {
        "holders": len(items),
        "samples": n_truth,
        "recall": len(ious) / n_truth if n_truth else 1.0,
        "precision": len(ious) / n_found if n_found else 1.0,
        "mean_iou": float(np.mean(ious)) if ious else 0.0,
        "median_center_error_mm": float(np.median(errs)) if errs else None,
        "all_found": sum(s.all_found for s in items) / n,
        "carrier_correct": sum(s.carrier_correct for s in items) / n,
        "seconds": sum(s.seconds for s in items) / n,
        "occupancy_judged": judged,
        "occupancy_accuracy": (sum(s.occupancy_right for s in items) / judged if judged else None),
        "codes": codes,
        "codes_read": (sum(s.codes_read for s in items) / codes if codes else None),
        "codes_false": sum(s.codes_false for s in items),
    }


def table(scores: Sequence[HolderScore]) -> dict[str, Any]:
    """Summaries per carrier, per ``carrier/profile`` and ``overall``, plus every holder."""
    groups: dict[str, list[HolderScore]] = {}
    for s in scores:
        groups.setdefault(s.carrier, []).append(s)
        if s.profile:
            groups.setdefault(f"{s.carrier}/{s.profile}", []).append(s)
    rows = {k: summarize(groups[k]) for k in sorted(groups)}
    rows["overall"] = summarize(scores)
    return {
        "rows": rows,
        "holders": [
            {
                "name": s.name,
                "carrier": s.carrier,
                "profile": s.profile,
                "truth": s.n_truth,
                "found": s.n_found,
                "matched": len(s.ious),
                "carrier_correct": s.carrier_correct,
                "seconds": round(s.seconds, 3),
                "missed": s.missed,
                "false": s.false,
                "occupancy": [s.occupancy_right, s.occupancy_judged],
                "codes": [s.codes_read, s.codes, s.codes_false],
            }
            for s in scores
        ],
    }


def format_misses(doc: Mapping[str, Any]) -> str:
    """One block per holder with a missed or a false sample (see :func:`table`)."""

    def text(b: Mapping[str, Any]) -> str:
        size = "x".join(f"{v:g}" for v in b["size_mm"])
        x, y = b["center_mm"] or (float("nan"), float("nan"))
        return f"{b['shape']} {size} mm at ({x:.1f}, {y:.1f}), {b['angle_deg']:+.1f} deg"

    lines: list[str] = []
    for h in doc["holders"]:
        if not h["missed"] and not h["false"]:
            continue
        lines.append(f"{h['name']}: {h['matched']} of {h['truth']} found, {h['found']} reported")
        lines += [f"  missed {text(b)}" for b in h["missed"]]
        lines += [f"  false  {text(b)} (confidence {b['confidence']:.2f})" for b in h["false"]]
    return "\n".join(lines) if lines else "every sample found, no false one"


def format_table(doc: Mapping[str, Any]) -> str:
    """A plain-text table of :func:`table`'s rows."""
    head = (
        f"{'group':<26} {'holders':>7} {'samples':>7} {'recall':>7} {'precis':>7} "
        f"{'meanIoU':>7} {'ctr_mm':>7} {'allfnd':>7} {'carrier':>7} {'s/hold':>7} "
        f"{'occupd':>7} {'codes':>7}"
    )
    lines = [head, "-" * len(head)]
    for name, r in doc["rows"].items():
        err = r["median_center_error_mm"]
        err_text = f"{err:>7.3f}" if err is not None else f"{'-':>7}"
        occ = r.get("occupancy_accuracy")
        occ_text = f"{occ:>7.3f}" if occ is not None else f"{'-':>7}"
        codes = r.get("codes_read")
        codes_text = f"{codes:>7.3f}" if codes is not None else f"{'-':>7}"
        lines.append(
            f"{name:<26} {r['holders']:>7d} {r['samples']:>7d} {r['recall']:>7.3f} "
            f"{r['precision']:>7.3f} {r['mean_iou']:>7.3f} {err_text} "
            f"{r['all_found']:>7.2f} {r['carrier_correct']:>7.2f} {r['seconds']:>7.2f} "
            f"{occ_text} {codes_text}"
        )
    return "\n".join(lines)


def set_members(set_dir: Path) -> list[Path]:
    """The holder directories of a set (those with a ground truth), sorted by name."""
    return sorted(p for p in Path(set_dir).iterdir() if (p / GROUND_TRUTH).is_file())


def evaluate_set(
    set_dir: Path,
    *,
    localize: Any = None,
    precomputed: bool = False,
) -> dict[str, Any]:
    """Score every holder of ``set_dir``.

    Parameters
    ----------
    set_dir
        Directory of bundles, each with ``ground_truth.json``.
    localize
        ``callable(bundle_dir) -> result`` used when not ``precomputed`` (see
        :func:`pipeline_localizer`).
    precomputed
        Read each holder's ``result.json`` instead of localizing.

    Returns
    -------
    dict
        :func:`table` of the scores, plus ``models``: the models the results name.
    """
    scores: list[HolderScore] = []
    models: set[str] = set()
    for member in set_members(set_dir):
        truth = json.loads((member / GROUND_TRUTH).read_text())
        t0 = time.perf_counter()
        if precomputed:
            result = json.loads((member / RESULT).read_text())
            seconds = 0.0
        else:
            if localize is None:
                raise ValueError("give a localize callable or precomputed=True")
            result = localize(member)
            seconds = time.perf_counter() - t0
        scores.append(score_holder(result, truth, name=member.name, seconds=seconds))
        prov = (result.get("provenance") or {}).get("models") or {}
        models.update(f"{stage}={name}" for stage, name in sorted(prov.items()))
    doc = table(scores)
    doc["models"] = sorted(models)
    return doc


def pipeline_localizer(settings: Any, *, recognise_carrier: bool = False) -> Any:
    """``bundle_dir -> result`` on one :class:`~samplescout.app.EmbeddedPipeline`.

    With ``recognise_carrier`` the manifest's carrier is ignored, so carrier
    recognition is measured too.
    """
    from samplescout.acquire.sources import BundleSource
    from samplescout.app import EmbeddedPipeline
    from samplescout.bundle import open_bundle

    pipeline = EmbeddedPipeline(settings=settings)

    def run(bundle_dir: Path) -> dict[str, Any]:
        source = BundleSource(open_bundle(bundle_dir))
        return pipeline.run(source, carrier="unknown" if recognise_carrier else None)

    return run


def parse_seeds(text: str) -> list[int]:
    """``"100-107"`` (inclusive), ``"1,5,9"`` or a mix such as ``"1-3,8"``."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        if sep:
            seeds.extend(range(int(lo), int(hi) + 1))
        elif lo:
            seeds.append(int(lo))
    if not seeds:
        raise ValueError(f"no seeds in {text!r}")
    return seeds


def make_set(
    set_dir: Path,
    *,
    seeds: Sequence[int],
    difficulty: str = "hard",
    profiles: Sequence[str] = ("wide", "narrow"),
    carriers: Sequence[str] = ("slide", "multiwell", "chamber_slide", "petri_dish"),
    frame_scale: float = 1.0,
) -> list[Path]:
    """Simulate a held-out set: one bundle per carrier, profile and seed.

    Bundles are named ``<carrier>-<profile>-<difficulty>-<seed>``; existing ones are
    kept (same seed, same bundle), so an interrupted run resumes.
    """
    from samplescout.acquire.simulator import simulate

    out: list[Path] = []
    for carrier in carriers:
        for profile in profiles:
            for seed in seeds:
                path = Path(set_dir) / f"{carrier}-{profile}-{difficulty}-{seed}"
                if not (path / GROUND_TRUTH).is_file():
                    simulate(
                        path,
                        carrier=carrier,
                        profile=profile,
                        seed=seed,
                        difficulty=difficulty,
                        frame_scale=frame_scale,
                    )
                out.append(path)
    return out
