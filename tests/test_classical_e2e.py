"""End to end on simulated slides: classical select -> identify -> fuse -> localize."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from samplescout.bundle import open_bundle
from samplescout.coarse import make_coarse, to_gray_float
from samplescout.fuse import FuseState, localize
from samplescout.geometry import polygon_iou
from samplescout.identify.classical import ClassicalIdentifier, full_frame_regions
from samplescout.select.classical import ClassicalSelector

simulator = pytest.importorskip("samplescout.acquire.simulator")


def run_classical(bundle_path: Path, method: str = "coarse") -> dict[str, Any]:
    """``coarse``: select on the coarse frame, identify the selected crops; ``classical``:
    identify every 256 px tile of every full frame."""
    bundle = open_bundle(bundle_path)
    selector, identifier, state = ClassicalSelector(), ClassicalIdentifier(), FuseState()
    for spec, image in bundle:
        geometry = bundle.geometry(spec.index, image)
        if method == "coarse":
            regions = selector.select(
                make_coarse(image), frame_index=spec.index, geometry=geometry, factor=8
            )
        else:
            regions = full_frame_regions(
                geometry.width, geometry.height, frame_index=spec.index, geometry=geometry
            )
        grey = to_gray_float(image)
        crops = [(r, grey[r.box_px[1] : r.box_px[3], r.box_px[0] : r.box_px[2]]) for r in regions]
        state.add(identifier.identify(crops, geometry))
        state.add_frame(spec.index, geometry)
    return localize(state, bundle.manifest.carrier)


def _match(result: dict[str, Any], truth: dict[str, Any]) -> list[float]:
    return [
        max((polygon_iou(t["polygon_mm"], s["polygon_mm"]) for s in result["samples"]), default=0.0)
        for t in truth["samples"]
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("profile", "seed", "frame_scale"),
    [("wide", 0, 1.0), ("wide", 1, 1.0), ("narrow", 0, 0.5), ("narrow", 3, 0.5)],
)
def test_every_cover_glass_found_on_easy_slides(
    tmp_path: Path, profile: str, seed: int, frame_scale: float
) -> None:
    path = simulator.simulate(
        tmp_path / "b",
        carrier="slide",
        profile=profile,
        seed=seed,
        difficulty="easy",
        frame_scale=frame_scale,
    )
    truth = json.loads((path / "ground_truth.json").read_text())
    result = run_classical(path)
    assert result["carrier"] == "slide"
    assert min(_match(result, truth)) >= 0.8
    assert len(result["samples"]) == len(truth["samples"])
    assert [s["label"] for s in result["samples"]] == [
        str(k + 1) for k in range(len(result["samples"]))
    ]


@pytest.mark.slow
def test_classical_full_resolution_baseline(tmp_path: Path) -> None:
    path = simulator.simulate(
        tmp_path / "b",
        carrier="slide",
        profile="narrow",
        seed=0,
        difficulty="easy",
        frame_scale=0.5,
    )
    truth = json.loads((path / "ground_truth.json").read_text())
    assert min(_match(run_classical(path, "classical"), truth)) >= 0.8


@pytest.mark.parametrize(
    ("carrier", "seed"),
    [("slide", 0), ("multiwell", 3), ("chamber_slide", 0), ("petri_dish", 0)],
)
def test_every_carrier_end_to_end_on_an_easy_wide_bundle(
    tmp_path: Path, carrier: str, seed: int
) -> None:
    """The embedded pipeline on one wide frame (half resolution, for speed): carrier
    recognised, every sample found (IoU >= 0.5), plate pose per SPEC."""
    from samplescout.acquire.sources import BundleSource
    from samplescout.app import EmbeddedPipeline
    from samplescout.config import Method, Settings
    from samplescout.evaluate import score_holder
    from samplescout.result import validate_result

    path = simulator.simulate(
        tmp_path / "b", carrier=carrier, profile="wide", seed=seed, frame_scale=0.5
    )
    truth = json.loads((path / "ground_truth.json").read_text())
    # The classical stages (coarse classical selection, classical identification).
    result = EmbeddedPipeline(settings=Settings()).run(
        BundleSource(open_bundle(path)), carrier="unknown", method=Method("coarse")
    )
    assert validate_result(result) == []
    assert result["carrier"] == carrier
    score = score_holder(result, truth)
    assert score.all_found and score.n_found == score.n_truth
    if carrier == "multiwell":
        plate, true_plate = result["plate"], truth["plate"]
        assert set(plate) == set(true_plate)
        assert plate["wells"] == true_plate["wells"]
        assert [s["label"] for s in result["samples"]] == [s["label"] for s in truth["samples"]]
        # which wells hold samples: every well judged, nearly all of them right
        assert score.occupancy_judged == len(truth["samples"])
        assert score.occupancy_right >= 0.9 * score.occupancy_judged
        assert {s["occupied"] >= 0.5 for s in result["samples"]} == {True, False}
    else:
        assert result["plate"] is None
