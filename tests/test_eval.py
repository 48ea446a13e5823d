"""Scoring localization results against ground truth (``samplescout eval``)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from samplescout import evaluate
from samplescout.cli import main
from samplescout.geometry import rectangle_polygon


def _sample(
    center: tuple[float, float], size: tuple[float, float] = (24.0, 24.0)
) -> dict[str, Any]:
    return {
        "element": "cover_glass",
        "shape": "rectangle",
        "center_mm": list(center),
        "size_mm": list(size),
        "angle_deg": 0.0,
        "polygon_mm": rectangle_polygon(center, size, 0.0).tolist(),
        "confidence": 1.0,
    }


def _truth() -> dict[str, Any]:
    return {
        "version": 1,
        "carrier": "slide",
        "samples": [_sample((20.0, 15.0)), _sample((50.0, 15.0))],
        "provenance": {"simulator": {"profile": "wide"}},
    }


def test_perfect_result() -> None:
    truth = _truth()
    score = evaluate.score_holder(copy.deepcopy(truth), truth)
    row = evaluate.summarize([score])
    assert row["recall"] == row["precision"] == row["all_found"] == 1.0
    assert row["mean_iou"] == pytest.approx(1.0)
    assert row["median_center_error_mm"] == pytest.approx(0.0)


def test_one_missing_and_one_shifted() -> None:
    truth = _truth()
    result = {"carrier": "slide", "samples": [_sample((50.1, 15.0))]}
    row = evaluate.summarize([evaluate.score_holder(result, truth)])
    assert row["recall"] == 0.5 and row["precision"] == 1.0 and row["all_found"] == 0.0
    assert row["median_center_error_mm"] == pytest.approx(0.1)
    assert row["mean_iou"] == pytest.approx((23.9 * 24) / (24.1 * 24))


def test_one_extra_and_greedy_one_to_one_matching() -> None:
    truth = _truth()
    result = {
        "carrier": "multiwell",
        "samples": [*copy.deepcopy(truth["samples"]), _sample((20.5, 15.0)), _sample((70.0, 5.0))],
    }
    score = evaluate.score_holder(result, truth)
    row = evaluate.summarize([score])
    assert row["recall"] == 1.0 and row["precision"] == 0.5
    assert score.missed == [] and [f["center_mm"] for f in score.false] == [
        [20.5, 15.0],
        [70.0, 5.0],
    ]
    assert row["mean_iou"] == pytest.approx(1.0)  # the exact copies win the greedy matching
    assert row["carrier_correct"] == 0.0


def test_occupancy_is_scored_on_matched_pairs_that_both_judge() -> None:
    truth = _truth()
    truth["samples"][0]["occupied"] = 1.0
    truth["samples"][1]["occupied"] = 0.0
    result = copy.deepcopy(truth)
    result["samples"][0]["occupied"] = 0.7  # right
    result["samples"][1]["occupied"] = 0.6  # wrong
    result["samples"].append({**_sample((70.0, 5.0)), "occupied": 1.0})  # unmatched
    score = evaluate.score_holder(result, truth)
    assert (score.occupancy_right, score.occupancy_judged) == (1, 2)
    row = evaluate.summarize([score, evaluate.score_holder(copy.deepcopy(_truth()), _truth())])
    assert row["occupancy_judged"] == 2 and row["occupancy_accuracy"] == 0.5
    assert (
        evaluate.summarize([evaluate.score_holder(_truth(), _truth())])["occupancy_accuracy"]
        is None
    )


def test_codes_are_scored_by_format_and_text() -> None:
    truth = _truth()
    square = [[1.0, 1.0], [9.0, 1.0], [9.0, 9.0], [1.0, 9.0]]
    truth["barcodes"] = [
        {"format": "QR_CODE", "text": "SMP:1", "polygon_mm": square},
        {"format": "CODE_128", "text": "S-1", "polygon_mm": square},
    ]
    result = copy.deepcopy(truth)
    result["barcodes"] = [
        {"format": "QR_CODE", "text": "SMP:1", "polygon_mm": square},  # read
        {"format": "CODE_128", "text": "S-7", "polygon_mm": square},  # misread
    ]
    score = evaluate.score_holder(result, truth)
    assert (score.codes, score.codes_read, score.codes_false) == (2, 1, 1)
    row = evaluate.summarize([score, evaluate.score_holder(copy.deepcopy(truth), truth)])
    assert row["codes"] == 4 and row["codes_read"] == 0.75 and row["codes_false"] == 1
    assert evaluate.summarize([evaluate.score_holder(_truth(), _truth())])["codes_read"] is None


def test_eval_command_on_precomputed_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    truth = _truth()
    for name, samples in (("a", truth["samples"]), ("b", truth["samples"][:1])):
        d = tmp_path / "set" / name
        d.mkdir(parents=True)
        (d / "ground_truth.json").write_text(json.dumps(truth))
        (d / "result.json").write_text(json.dumps({"carrier": "slide", "samples": samples}))
    out = tmp_path / "table.json"
    assert main(["eval", str(tmp_path / "set"), "--precomputed", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc["rows"]) == {"slide", "slide/wide", "overall"}
    assert doc["rows"]["overall"]["recall"] == 0.75
    assert doc["rows"]["overall"]["all_found"] == 0.5
    assert "slide/wide" in capsys.readouterr().out
    # which sample was missed, in the JSON and, with --misses, on the console
    rows = {h["name"]: h for h in doc["holders"]}
    assert rows["a"]["missed"] == rows["a"]["false"] == rows["b"]["false"] == []
    assert [m["center_mm"] for m in rows["b"]["missed"]] == [[50.0, 15.0]]
    assert main(["eval", str(tmp_path / "set"), "--precomputed", "--misses"]) == 0
    printed = capsys.readouterr().out
    assert "b: 1 of 2 found, 1 reported" in printed
    assert "missed rectangle 24x24 mm at (50.0, 15.0)" in printed and "a: " not in printed


def test_parse_seeds() -> None:
    assert evaluate.parse_seeds("100-103,120") == [100, 101, 102, 103, 120]
    with pytest.raises(ValueError):
        evaluate.parse_seeds(",")
