"""Auto-annotation: the image-processing part finds known edges; targets land on them."""

from __future__ import annotations

import numpy as np
import pytest

from samplescout.annotate import (
    IGNORE,
    _piece_score,
    annotate_frame,
    annotation_quality,
    hough_lines,
    noise_normalized_gradient,
    render_frames,
)


def _step_image(x_edge: int = 100, contrast: float = 0.05, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((200, 240), 0.3, np.float32)
    img[:, x_edge:] += contrast
    return img + rng.normal(0, 0.01, img.shape).astype(np.float32)


def test_matched_filter_scores_the_true_edge_not_a_shifted_one() -> None:
    gx, gy = noise_normalized_gradient(_step_image())
    on = _piece_score(gx, gy, np.array([99.5, 40.0]), np.array([99.5, 104.0]), 3.0)
    off = _piece_score(gx, gy, np.array([160.0, 40.0]), np.array([160.0, 104.0]), 3.0)
    assert on > 20.0
    assert off < 6.0


def test_hough_finds_the_known_line() -> None:
    lines = hough_lines(_step_image(contrast=0.1))
    assert lines, "no line found"
    xs = [(s[0] + s[2]) / 2 for s in lines if abs(s[0] - s[2]) < 3 and abs(s[1] - s[3]) > 60]
    assert xs and all(abs(x - 99.5) < 3 for x in xs)


@pytest.fixture(scope="module")
def slide_frame():
    return next(
        render_frames(
            [3], carriers=("slide",), difficulties=("easy",), profiles=("wide",), wide_scale=0.25
        )
    )


def test_slide_edges_are_confirmed_and_drawn_on_the_coarse_target(slide_frame) -> None:
    fr = slide_frame
    ann = annotate_frame(fr.image, fr.scene, fr.pose, factor=2)
    slide = [p for p in ann.pieces if ann.outlines[p.outline].element == "slide"]
    assert slide and np.mean([p.confirmed for p in slide]) > 0.8
    # every confirmed slide piece's midpoint is structure on the coarse grid
    for p in slide:
        if p.confirmed:
            m = (p.p0 + p.p1) / 2 / 2
            win = ann.select[int(m[1]) - 1 : int(m[1]) + 2, int(m[0]) - 1 : int(m[0]) + 2]
            assert (win == 1).any()
    assert (ann.select == 2).any(), "label area missing"
    assert (ann.select == 3).any(), "holder (non-sample) area missing"
    assert not (ann.select == IGNORE).all()
    q = annotation_quality([ann.stats])
    assert 0.8 <= q["outline_recall"] <= 1.0
    assert 0.0 < q["hough_precision"] <= 1.0
