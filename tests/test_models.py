"""Selection and identification models: training, round trips, coordinates, shipped weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from samplescout.annotate import annotate_frame, render_frames
from samplescout.coarse import make_coarse
from samplescout.contracts import Region
from samplescout.geometry import FrameGeometry, Pose
from samplescout.identify import train as identify_train
from samplescout.identify.base import Identifier
from samplescout.identify.net import NetIdentifier, load_identifier
from samplescout.registry import Registry
from samplescout.select import train as select_train
from samplescout.select.base import Selector
from samplescout.select.model import SelectUNet, prepare_input
from samplescout.select.net import NetSelector, load_selector
from samplescout.select.patches import PatchSelector


@pytest.fixture(scope="module")
def tiny_frame():
    return next(
        render_frames(
            [11], carriers=("slide",), difficulties=("easy",), profiles=("wide",), wide_scale=0.25
        )
    )


@pytest.fixture(scope="module")
def tiny_select_data(tiny_frame):
    fr = tiny_frame
    ann = annotate_frame(fr.image, fr.scene, fr.pose, factor=2)
    x = prepare_input(make_coarse(fr.image, 2))
    return select_train.SelectData([x], [ann.select], {}, {"test": True})


@pytest.mark.parametrize("arch", ["unet", "patch"])
def test_select_training_lowers_the_loss(tiny_select_data, arch: str) -> None:
    _, info = select_train.train_model(
        tiny_select_data, architecture=arch, steps=40, batch=4, crop=64, lr=5e-3, log=False
    )
    assert info["last_loss"] < 0.8 * info["first_loss"]


def test_identify_training_lowers_the_loss(tiny_frame) -> None:
    fr = tiny_frame
    ann = annotate_frame(fr.image, fr.scene, fr.pose, factor=8)
    geom = FrameGeometry(fr.pose, fr.image.shape[1], fr.image.shape[0])
    cs = identify_train.crops_from_frame(
        fr.image, ann, geom, fr.scale, np.random.default_rng(0), n_pos=48, n_neg=16
    )
    assert len(cs) > 30
    _, info = identify_train.train_model(cs, steps=40, batch=16, lr=3e-3, log=False)
    assert info["last_loss"] < 0.8 * info["first_loss"]


def _registry_with_unet(tmp_path: Path) -> tuple[Registry, SelectUNet]:
    torch.manual_seed(5)
    m = SelectUNet(width=4)
    # non-trivial batch-norm statistics, so fusing them at load time is exercised
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            assert mod.running_mean is not None and mod.running_var is not None
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
    m.eval()
    reg = Registry(tmp_path)
    meta = {"task": "select", "architecture": "unet", "hparams": m.hparams, "context": {}}
    reg.save("select-unet", m.state_dict(), meta, aliases=("select-default",))
    return reg, m


def test_loaded_selector_gives_the_same_outputs_as_before_saving(tmp_path: Path) -> None:
    reg, m = _registry_with_unet(tmp_path)
    coarse = np.random.default_rng(1).random((70, 90)).astype(np.float32)
    with torch.inference_mode():
        x = torch.from_numpy(prepare_input(coarse))[None]
        x = torch.nn.functional.pad(x, (0, 6, 0, 10), mode="replicate")
        ref = torch.softmax(m.full_logits(x), 1)[0, :, :70, :90].numpy()
    a = load_selector(reg)
    b = load_selector(reg)
    assert a.name == "select-unet@1"
    pa, pb = a.probabilities(coarse), b.probabilities(coarse)
    assert np.array_equal(pa, pb)
    np.testing.assert_allclose(pa, ref, atol=1e-4)


class _FixedMap(torch.nn.Module):
    """A stand-in U-Net whose structure logits are high exactly on ``mask``."""

    def __init__(self, mask: np.ndarray) -> None:
        super().__init__()
        self.mask = torch.from_numpy(mask.astype(np.float32))

    def full_logits(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.mask.shape
        out = torch.zeros(1, 4, x.shape[-2], x.shape[-1])
        out[0, 0] = 2.0
        out[0, 1, :h, :w] = self.mask * 10.0
        return out


def test_regions_map_to_full_resolution_and_holder_coordinates() -> None:
    factor = 8
    mask = np.zeros((150, 200), bool)
    mask[20:120, 100] = True  # a vertical edge along coarse column 100, rows 20..119
    sel = NetSelector(_FixedMap(mask), threshold=0.5, device=torch.device("cpu"))
    geom = FrameGeometry(Pose((10.0, 20.0), 0.0125, 90.0), 1600, 1200)
    regions = sel.select(
        np.zeros((150, 200), np.float32), frame_index=2, geometry=geom, factor=factor
    )
    assert regions and all(r.frame_index == 2 for r in regions)
    assert [r.region_index for r in regions] == list(range(len(regions)))
    probs = [r.probability for r in regions]
    assert probs == sorted(probs, reverse=True)
    covered = np.zeros(1200, bool)
    for r in regions:
        x0, y0, x1, y1 = r.box_px
        assert 0 <= x0 < x1 <= 1600 and 0 <= y0 < y1 <= 1200
        assert x1 - x0 <= 256 and y1 - y0 <= 256
        assert x0 <= 100 * factor and (100 + 1) * factor <= x1  # the edge's full-res columns
        covered[y0:y1] = True
        np.testing.assert_allclose(r.polygon_mm, geom.box_to_holder(*r.box_px), atol=1e-12)
        assert r.kind == "structure" and -90 < r.orientation_deg <= 90
    assert covered[20 * factor : 120 * factor].all()


@pytest.fixture(scope="module")
def shipped_frame():
    # narrow camera at full scale: the coarse pixel size the models are made for
    return next(
        render_frames(
            [4242],
            carriers=("slide",),
            difficulties=("easy",),
            profiles=("narrow",),
            narrow_frames=1,
        )
    )


def _slide_edge_px(fr, geom):
    p = np.asarray(fr.scene.slide.polygon())
    return [geom.holder_to_pixel(p[i]) for i in range(4)], p


def test_shipped_models_find_and_identify_the_slide_edge(shipped_frame) -> None:
    fr = shipped_frame
    h, w = fr.image.shape[:2]
    geom = FrameGeometry(fr.pose, w, h)
    selector = load_selector()
    identifier = load_identifier()
    assert isinstance(selector, Selector) and isinstance(identifier, Identifier)
    assert selector.name.startswith("select-") and identifier.name.startswith("identify-")
    coarse = make_coarse(fr.image, 8)
    regions = selector.select(coarse, frame_index=0, geometry=geom, factor=8)
    assert 0 < len(regions) < 200
    # the slide outline, sampled inside the frame, is mostly covered by structure regions
    from samplescout.annotate import distance_to_outline, outline_pieces, scene_outlines

    outlines = [o for o in scene_outlines(fr.scene) if o.element == "slide"]
    mids = [(a + b) / 2 for _, a, b in outline_pieces(outlines, geom)]
    assert mids, "the test frame must show a slide edge"
    boxes = np.array([r.box_px for r in regions if r.kind == "structure"], float)
    hit = [
        (
            (boxes[:, 0] <= m[0])
            & (m[0] < boxes[:, 2])
            & (boxes[:, 1] <= m[1])
            & (m[1] < boxes[:, 3])
        ).any()
        for m in mids
    ]
    assert np.mean(hit) >= 0.7
    from samplescout.coarse import to_gray_float

    gray = to_gray_float(fr.image)
    crops = [(r, gray[r.box_px[1] : r.box_px[3], r.box_px[0] : r.box_px[2]]) for r in regions]
    structures = identifier.identify(crops, geom)
    assert {s.region.region_index for s in structures} == {r.region_index for r in regions}
    # segments the model puts on the slide edge lie on it (holder mm)
    on_edge = []
    for s in structures:
        if s.segment_mm is None:
            continue
        pts = np.array(s.segment_mm)
        d = min(distance_to_outline(o, pts).max() for o in outlines)
        if d < 1.0:
            on_edge.append(d)
    assert len(on_edge) >= 3
    assert np.median(on_edge) < 0.15


def test_patch_variant_and_identifier_options(shipped_frame) -> None:
    fr = shipped_frame
    h, w = fr.image.shape[:2]
    geom = FrameGeometry(fr.pose, w, h)
    sel = load_selector(variant="patch")
    assert isinstance(sel, PatchSelector) and isinstance(sel, Selector)
    regions = sel.select(make_coarse(fr.image, 8), frame_index=0, geometry=geom, factor=8)
    assert regions
    for r in regions:
        assert r.box_px[2] - r.box_px[0] <= 256 and r.box_px[3] - r.box_px[1] <= 256
    ident = load_identifier(top_k=3)
    assert isinstance(ident, NetIdentifier)
    crop = np.full((100, 120), 0.4, np.float32)
    reg = [Region(0, i, (0, 0, 120, 100), 1.0 - i / 10) for i in range(5)]
    out = ident.identify([(r, crop) for r in reg], geom)
    assert sorted({s.region.region_index for s in out}) == [0, 1, 2]
    with pytest.raises(ValueError):
        load_selector(variant="nope")
