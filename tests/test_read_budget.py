"""The identify stage's pixel budget: highest probability first, within a share of the frame."""

from __future__ import annotations

from pathlib import Path

import pytest

from samplescout.acquire.sources import BundleSource
from samplescout.app import EmbeddedPipeline
from samplescout.bundle import open_bundle
from samplescout.config import Settings


def test_read_budget_caps_the_pixels_identify_reads(easy_wide_slide: Path) -> None:
    free = EmbeddedPipeline(settings=Settings()).run(BundleSource(open_bundle(easy_wide_slide)))
    capped = EmbeddedPipeline(settings=Settings(read_budget=0.05)).run(
        BundleSource(open_bundle(easy_wide_slide))
    )
    full = capped["stats"]["full_res_pixels"]
    assert free["stats"]["full_res_pixels_read"] > 0.05 * full, "the budget must bind here"
    assert 0 < capped["stats"]["full_res_pixels_read"] <= 0.05 * full
    assert capped["stats"]["regions_identified"] < free["stats"]["regions_identified"]
    assert capped["stats"]["regions_selected"] == free["stats"]["regions_selected"]


def test_read_budget_from_environment_and_bad_values() -> None:
    assert Settings.from_env({"SAMPLESCOUT_READ_BUDGET": "0.2"}).read_budget == 0.2
    with pytest.raises(ValueError, match="READ_BUDGET must be a number"):
        Settings.from_env({"SAMPLESCOUT_READ_BUDGET": "ten percent"})
    with pytest.raises(ValueError, match="read_budget"):
        Settings(read_budget=1.5)
