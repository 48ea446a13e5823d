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
from samplescout.select.classical import ClassicalSelector
from samplescout.select.model import (
    SelectPriorUNet,
    SelectUNet,
    edge_evidence,
    normalised_input,
    prepare_input,
)
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


@pytest.fixture(scope="module")
def tiny_select_data3(tiny_frame, tiny_select_data):
    x = normalised_input(make_coarse(tiny_frame.image, 2), 1, 3)
    return select_train.SelectData([x], tiny_select_data.targets, {}, {"test": 3})


@pytest.mark.parametrize(
    ("arch", "channels"), [("unet", 2), ("patch", 2), ("unet", 3), ("prior-unet", 3)]
)
def test_select_training_lowers_the_loss(
    tiny_select_data, tiny_select_data3, arch: str, channels: int
) -> None:
    data = tiny_select_data3 if channels == 3 else tiny_select_data
    _, info = select_train.train_model(
        data, architecture=arch, steps=40 * (channels - 1), batch=4, crop=64, lr=5e-3, log=False
    )
    assert info["last_loss"] < 0.8 * info["first_loss"]
    assert info["hparams"]["in_channels"] == channels


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


def _registry_with_unet(
    tmp_path: Path, in_channels: int = 2, architecture: str = "unet"
) -> tuple[Registry, SelectUNet]:
    torch.manual_seed(5)
    if architecture == "prior-unet":
        m: SelectUNet = SelectPriorUNet(width=4)
        torch.nn.init.normal_(m.head.weight, std=0.3)  # a trained correction, not zero
    else:
        m = SelectUNet(width=4, in_channels=in_channels)
    # non-trivial batch-norm statistics, so fusing them at load time is exercised
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            assert mod.running_mean is not None and mod.running_var is not None
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
    m.eval()
    reg = Registry(tmp_path)
    meta = {"task": "select", "architecture": architecture, "hparams": m.hparams, "context": {}}
    reg.save("select-unet", m.state_dict(), meta, aliases=("select-default",))
    return reg, m


@pytest.mark.parametrize(("channels", "arch"), [(2, "unet"), (3, "unet"), (3, "prior-unet")])
def test_loaded_selector_gives_the_same_outputs_as_before_saving(
    tmp_path: Path, channels: int, arch: str
) -> None:
    reg, m = _registry_with_unet(tmp_path, channels, arch)
    coarse = np.random.default_rng(1).random((70, 90)).astype(np.float32)
    with torch.inference_mode():
        x = torch.from_numpy(normalised_input(coarse, 1, channels))[None]
        x = torch.nn.functional.pad(x, (0, 6, 0, 10), mode="replicate")
        ref = torch.softmax(m.full_logits(x), 1)[0, :, :70, :90].numpy()
    a = load_selector(reg)
    b = load_selector(reg)
    assert a.name == "select-unet@1"
    pa, pb = a.probabilities(coarse), b.probabilities(coarse)
    assert np.array_equal(pa, pb)
    np.testing.assert_allclose(pa, ref, atol=1e-4)


def test_a_models_operating_point_sets_the_selector_unless_overridden(tmp_path: Path) -> None:
    reg, m = _registry_with_unet(tmp_path)
    meta = {
        "task": "select",
        "architecture": "unet",
        "hparams": m.hparams,
        "context": {},
        "operating_point": {"threshold": 0.3, "grow": 1, "tile_px": 64},
    }
    reg.save("select-unet", m.state_dict(), meta, aliases=("select-default",))
    sel = load_selector(reg)
    assert sel.name == "select-unet@2"
    assert (sel.threshold, sel.grow, sel.tile_px) == (0.3, 1, 256)  # tile_px is not a point
    assert load_selector(reg, threshold=0.6).threshold == 0.6


def test_untrained_prior_unet_selects_what_the_classical_selector_selects() -> None:
    fr = next(
        render_frames(
            [4], carriers=("slide",), difficulties=("hard",), profiles=("narrow",), narrow_frames=1
        )
    )
    coarse = make_coarse(fr.image, 8)
    geom = FrameGeometry(fr.pose, fr.image.shape[1], fr.image.shape[0])
    classical = ClassicalSelector()
    net = NetSelector(SelectPriorUNet(width=4).eval(), device=torch.device("cpu"))
    ref = classical.probability_map(coarse)[0] >= 0.5
    got = net.probabilities(coarse)[1] >= 0.5
    assert ref.sum() > 200
    assert (ref != got).sum() <= 0.002 * ref.sum()

    def boxes(sel) -> set:
        regions = sel.select(coarse, frame_index=0, geometry=geom, factor=8)
        return {r.box_px for r in regions if r.kind == "structure"}

    a, b = boxes(classical), boxes(net)
    assert len(a & b) >= 0.95 * len(a | b)


def test_prior_unet_needs_the_edge_channel() -> None:
    with pytest.raises(ValueError, match="3 channels"):
        SelectPriorUNet(in_channels=2)


def test_marker_strokes_and_the_band_beside_edges_can_be_ignored_in_targets() -> None:
    from samplescout.annotate import IGNORE

    fr = next(
        render_frames(
            [11], carriers=("slide",), difficulties=("hard",), profiles=("wide",), wide_scale=0.25
        )
    )
    assert any(st.kind == "marker" for st in fr.scene.strokes)
    plain = annotate_frame(fr.image, fr.scene, fr.pose, factor=2, with_hough=False).select
    marked = annotate_frame(
        fr.image, fr.scene, fr.pose, factor=2, with_hough=False, ignore_markers=True
    ).select
    changed = plain != marked
    assert changed.sum() > 50
    assert (marked[changed] == IGNORE).all() and (plain[changed] == 0).all()

    banded = select_train._band_ignored(plain, 2)
    assert (banded[plain == 1] == 1).all()
    newly = (banded == IGNORE) & (plain != IGNORE)
    assert newly.any() and (plain[newly] == 0).all()
    ys, xs = np.nonzero(newly)
    near = np.zeros_like(newly)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            near |= np.roll(np.roll(plain == 1, dy, 0), dx, 1)
    assert near[ys, xs].all()
    assert np.array_equal(select_train._band_ignored(plain, 0), plain)


def test_edge_channel_shows_a_faint_long_edge_that_the_high_pass_does_not() -> None:
    rng = np.random.default_rng(3)
    coarse = (0.5 + 0.02 * rng.standard_normal((96, 128))).astype(np.float32)
    coarse[:, 64:] += 0.03  # a step of 1.5 noise sigma: hardly visible pixel by pixel
    two = prepare_input(coarse)
    three = normalised_input(coarse, 1, 3)
    assert three.shape == (3, 96, 128)
    np.testing.assert_array_equal(three[:2], two)
    edge = three[2]
    assert np.array_equal(edge, edge_evidence(coarse))
    on, off = edge[8:-8, 62:66].mean(), edge[8:-8, 8:40].mean()
    assert on > 0.8 and off < 0.1
    # the high-pass channel alone does not single the edge out
    assert abs(two[1][8:-8, 62:66]).mean() < 2 * abs(two[1][8:-8, 8:40]).mean()
    up = normalised_input(coarse, 2, 3)
    assert up.shape == (3, 192, 256) and up[2][16:-16, 124:132].mean() > 0.8
    with pytest.raises(ValueError, match="2 or 3 input channels"):
        normalised_input(coarse, 1, 4)


class _FixedMap(torch.nn.Module):
    """A stand-in U-Net whose structure (or ``cls``) logits are high exactly on ``mask``."""

    def __init__(self, mask: np.ndarray, cls: int = 1) -> None:
        super().__init__()
        self.mask = torch.from_numpy(mask.astype(np.float32))
        self.cls = cls

    def full_logits(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.mask.shape
        out = torch.zeros(1, 4, x.shape[-2], x.shape[-1])
        out[0, 0] = 2.0
        out[0, self.cls, :h, :w] = self.mask * 10.0
        return out


def test_a_label_larger_than_a_tile_is_one_region() -> None:
    mask = np.zeros((150, 200), bool)
    mask[30:90, 10:80] = True  # 560 x 480 full-res px: two tiles each way if tiled
    sel = NetSelector(_FixedMap(mask, cls=2), device=torch.device("cpu"))
    geom = FrameGeometry(Pose((10.0, 20.0), 0.0125, 0.0), 1600, 1200)
    regions = sel.select(np.zeros((150, 200), np.float32), frame_index=0, geometry=geom, factor=8)
    assert [r.kind for r in regions] == ["label"]
    x0, y0, x1, y1 = regions[0].box_px
    assert (x0, y0) <= (80, 240) and (x1, y1) >= (640, 720)


def test_a_printed_code_the_model_does_not_mark_is_still_a_label_region() -> None:
    rng = np.random.default_rng(0)
    img = np.full((150, 200), 0.4, np.float32) + rng.normal(0, 0.01, (150, 200)).astype(np.float32)
    modules = (rng.random((16, 16)) > 0.5).astype(np.float32)  # an 8 mm 2D code
    img[40:120, 60:140] = np.kron(modules, np.ones((5, 5), np.float32)) * 0.8 + 0.1
    geom = FrameGeometry(Pose((10.0, 20.0), 0.0125, 0.0), 1600, 1200)
    blind = _FixedMap(np.zeros((150, 200), bool))  # marks no label anywhere
    sel = NetSelector(blind, device=torch.device("cpu"))
    regions = sel.select(img, frame_index=0, geometry=geom, factor=8)
    assert [r.kind for r in regions] == ["label"]
    x0, y0, x1, y1 = regions[0].box_px
    assert (x0, y0) <= (480, 320) and (x1, y1) >= (1120, 960), "the whole code, in full-res px"
    off = NetSelector(blind, device=torch.device("cpu"), printed_codes=False)
    assert off.select(img, frame_index=0, geometry=geom, factor=8) == []


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


def test_grow_widens_regions_across_the_edge_without_adding_any() -> None:
    mask = np.zeros((150, 200), bool)
    mask[20:120, 100] = True
    geom = FrameGeometry(Pose((0.0, 0.0), 0.0125, 0.0), 1600, 1200)
    boxes = {}
    for grow in (0, 2):
        sel = NetSelector(_FixedMap(mask), grow=grow, device=torch.device("cpu"))
        regions = sel.select(
            np.zeros((150, 200), np.float32), frame_index=0, geometry=geom, factor=8
        )
        boxes[grow] = sorted(r.box_px for r in regions)
    assert len(boxes[0]) == len(boxes[2])
    for (a0, _, a1, _), (b0, _, b1, _) in zip(boxes[0], boxes[2], strict=True):
        assert (a0 - b0, b1 - a1) == (16, 16)  # two coarse pixels each side
    with pytest.raises(ValueError, match="grow"):
        NetSelector(_FixedMap(mask), grow=-1)


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


# --- coarse pixel-size normalisation and the hybrid identifier -------------------------


def test_upsample_factor_brings_coarse_pixels_to_the_trained_scale() -> None:
    from samplescout.select.model import upsample_factor

    assert upsample_factor(0.1, 0.3) == 1  # narrow camera, full scale, factor 8
    assert upsample_factor(0.28, 0.3) == 1  # wide camera, full scale
    assert upsample_factor(0.3, 0.3) == 1
    assert upsample_factor(0.36, 0.3) == 2  # wide camera at frame_scale 0.5
    assert upsample_factor(0.56, 0.3) == 2
    assert upsample_factor(0.7, 0.3) == 3
    assert upsample_factor(0.5, 0.0) == 1  # off


def test_pool_probabilities_keeps_thin_structures_and_averages_the_rest() -> None:
    from samplescout.select.model import pool_probabilities

    p = np.zeros((4, 4, 6), np.float32)
    p[0] = 1.0
    p[1, 1, :] = 0.9  # a one-pixel-thin structure line in the upsampled map
    p[0, 1, :] = 0.1
    out = pool_probabilities(p, 2)
    assert out.shape == (4, 2, 3)
    np.testing.assert_allclose(out[1, 0], 0.9)  # max: the line survives pooling
    np.testing.assert_allclose(out[1, 1], 0.0)
    np.testing.assert_allclose(out[0, 0], (1 + 1 + 0.1 + 0.1) / 4, rtol=1e-6)
    assert pool_probabilities(p, 1) is p


class _ScaleProbe(torch.nn.Module):
    """Records the input size; marks a structure where the input's intensity steps."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[int, int]] = []

    def full_logits(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((int(x.shape[-2]), int(x.shape[-1])))
        out = torch.zeros(1, 4, x.shape[-2], x.shape[-1])
        out[0, 0] = 2.0
        col = int(x[0, 0].diff(dim=1).abs().sum(0).argmax())
        out[0, 1, :, col] = 10.0
        return out


def test_half_scale_frames_are_upsampled_and_regions_map_back_to_full_res() -> None:
    # a wide camera at frame_scale 0.5: 2000x1500 px of 0.06 mm, factor 8 -> 0.48 mm coarse
    factor, ps = 8, 0.06
    coarse = np.full((187, 250), 0.5, np.float32)
    coarse[:, 120:] = 0.8  # a vertical step edge between coarse columns 119 and 120
    geom = FrameGeometry(Pose((30.0, 20.0), ps, 0.0), 2000, 1500)
    probe = _ScaleProbe()
    sel = NetSelector(probe, device=torch.device("cpu"), max_pixel_mm=0.3)  # type: ignore[arg-type]
    regions = sel.select(coarse, frame_index=0, geometry=geom, factor=factor)
    assert sel.upsample(factor * ps) == 2
    assert probe.seen[-1][0] >= 2 * 187 and probe.seen[-1][1] >= 2 * 250  # ran at 2x
    assert regions
    for r in regions:
        x0, _, x1, _ = r.box_px
        assert x0 <= 120 * factor + 8 and 119 * factor - 8 <= x1  # on the edge, full-res px
        assert x1 - x0 <= 3 * factor + 16
    # full scale (0.24 mm coarse pixels): the model sees the coarse frame as it is
    geom1 = FrameGeometry(Pose((30.0, 20.0), 0.03, 0.0), 2000, 1500)
    sel.select(coarse, frame_index=0, geometry=geom1, factor=factor)
    assert probe.seen[-1][0] < 2 * 187


def _line_crop(contrast: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    crop = np.full((96, 96), 0.4, np.float32)
    crop[:, 50:] += contrast
    return crop + rng.normal(0, 0.004, crop.shape).astype(np.float32)


class _FixedCNN:
    """Stands in for NetIdentifier: fixed shape probabilities for every crop."""

    name = "identify-cnn@test"
    top_k = None
    min_region_probability = 0.0
    enough = None
    batch = 8

    def __init__(self, probs: dict[str, float]) -> None:
        from samplescout.contracts import STRUCTURE_CLASSES

        self.p = np.array([probs.get(c, 0.0) for c in STRUCTURE_CLASSES], np.float32)

    def predict(self, crops):
        return {"shape": np.stack([self.p for _ in crops])}


def test_hybrid_takes_geometry_from_the_fit_and_the_class_from_a_confident_cnn() -> None:
    from samplescout.identify.classical import ClassicalIdentifier
    from samplescout.identify.hybrid import HybridIdentifier

    geom = FrameGeometry(Pose((10.0, 10.0), 0.01, 0.0), 1000, 1000)
    region = Region(frame_index=0, region_index=0, box_px=(400, 300, 496, 396), probability=0.9)
    crop = _line_crop(0.03)  # a faint straight edge at crop column ~49.5
    classical = ClassicalIdentifier().identify([(region, crop)], geom)
    assert classical[0].shape_class == "straight_cover_glass_edge"

    sure = HybridIdentifier(_FixedCNN({"spacer": 0.95, "well": 0.05}))  # type: ignore[arg-type]
    [s] = [s for s in sure.identify([(region, crop)], geom) if s.segment_mm is not None][:1]
    assert s.shape_class == "spacer"  # CNN class (a line-compatible one)
    assert s.segment_mm == classical[0].segment_mm  # geometry exactly the classical fit
    assert s.class_probabilities["spacer"] == pytest.approx(0.95)
    xs = [p[0] for p in s.segment_mm]
    px_x = 10.0 + (400 + 49.5 - 500) * 0.01
    assert max(abs(x - px_x) for x in xs) < 0.02  # on the step, within 2 px

    unsure = HybridIdentifier(  # type: ignore[arg-type]
        _FixedCNN({"spacer": 0.5, "sample_carrier_edge": 0.5})
    )
    out = unsure.identify([(region, crop)], geom)
    assert out[0].shape_class == "straight_cover_glass_edge"  # classical class kept

    # a round class cannot be put on a fitted line
    wrong = HybridIdentifier(_FixedCNN({"well": 0.99, "spacer": 0.01}))  # type: ignore[arg-type]
    assert wrong.identify([(region, crop)], geom)[0].shape_class == "spacer"

    # a crop the CNN is sure is empty is not fitted
    empty = HybridIdentifier(_FixedCNN({"no_structure": 0.99}))  # type: ignore[arg-type]
    out = empty.identify([(region, crop)], geom)
    assert [s.shape_class for s in out] == ["no_structure"]


@pytest.mark.parametrize("cuda", [True, False])
def test_models_pick_cuda_when_present(monkeypatch, cuda: bool) -> None:
    from samplescout.inference import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert pick_device().type == ("cuda" if cuda else "cpu")


def test_training_runs_on_the_device_asked_for_and_records_it(
    monkeypatch, tmp_path: Path, tiny_select_data
) -> None:
    model, _ = select_train.train_model(
        tiny_select_data, steps=3, batch=2, crop=32, device=torch.device("cpu"), log=False
    )
    assert next(model.parameters()).device.type == "cpu"
    monkeypatch.setattr(select_train, "build_data", lambda *a, **k: tiny_select_data)
    rec = select_train.train(tmp_path, steps=2, device=torch.device("cpu"), log=False)
    assert rec.metadata["training"]["device"] == "cpu"


def test_train_command_passes_width_and_refuses_balanced_selection(
    monkeypatch, tmp_path: Path, tiny_select_data
) -> None:
    from samplescout.cli import main

    monkeypatch.setattr(select_train, "build_data", lambda *a, **k: tiny_select_data)
    reg = tmp_path / "reg"
    args = ["train", "select", "--registry", str(reg), "--steps", "2", "--device", "cpu"]
    assert main([*args, "--balanced"]) == 2
    assert not reg.exists()
    assert main([*args, "--width", "4"]) == 0
    rec = Registry(reg).resolve("select")
    assert rec.metadata["hparams"]["width"] == 4
    assert rec.metadata["training"]["device"] == "cpu"
    assert rec.metadata["input"]["channels"] == ["robust_intensity", "noise_highpass"]
    assert main(["train", "identify", "--input-channels", "3", "--steps", "2"]) == 2


def _train_select_cli(monkeypatch, tmp_path: Path, data) -> tuple[list[dict], Path, list[str]]:
    """``train select`` on ``data`` (what build_data was asked for is recorded)."""
    asked: list[dict] = []
    monkeypatch.setattr(select_train, "build_data", lambda *a, **k: asked.append(k) or data)
    reg = tmp_path / "reg"
    args = ["train", "select", "--registry", str(reg), "--steps", "2", "--device", "cpu"]
    return asked, reg, args


def test_train_command_with_the_edge_channel_registers_a_three_channel_selector(
    monkeypatch, tmp_path: Path, tiny_select_data3
) -> None:
    from samplescout.cli import main

    asked, reg, args = _train_select_cli(monkeypatch, tmp_path, tiny_select_data3)
    assert main([*args, "--input-channels", "3"]) == 0
    assert asked[0]["channels"] == 3
    rec = Registry(reg).resolve("select")
    assert rec.metadata["hparams"]["in_channels"] == 3
    assert rec.metadata["input"]["channels"][-1] == "coherent_edge_z"
    sel = load_selector(reg)
    coarse = np.random.default_rng(2).random((40, 56)).astype(np.float32)
    assert sel.channels == 3 and sel.probabilities(coarse).shape == (4, *coarse.shape)


def test_train_command_registers_a_prior_unet_with_its_target_options(
    monkeypatch, tmp_path: Path, tiny_select_data3
) -> None:
    from samplescout.cli import main

    asked, reg, args = _train_select_cli(monkeypatch, tmp_path, tiny_select_data3)
    assert main([*args, "--architecture", "prior-unet", "--input-channels", "2"]) == 2
    assert main(["train", "identify", "--ignore-markers", "--steps", "2"]) == 2
    assert main([*args, "--ignore-band", "-1"]) == 2
    assert not reg.exists()
    assert main([*args, "--residual-weight", "3"]) == 2  # plain U-Net: no correction
    assert not reg.exists()
    opts = ["--architecture", "prior-unet", "--ignore-markers", "--ignore-band", "2"]
    assert main([*args, *opts, "--residual-weight", "3"]) == 0
    assert asked[0]["channels"] == 3
    assert asked[0]["ignore_markers"] is True and asked[0]["ignore_band"] == 2
    rec = Registry(reg).resolve("select")
    assert rec.metadata["architecture"] == "prior-unet" and rec.ref == "select-prior-unet@1"
    assert rec.metadata["training"]["residual_weight"] == 3.0
    sel = load_selector(reg)
    assert isinstance(sel.model, SelectPriorUNet)


def test_identify_training_stores_held_out_accuracy(
    monkeypatch, tmp_path: Path, tiny_frame
) -> None:
    fr = tiny_frame
    ann = annotate_frame(fr.image, fr.scene, fr.pose, factor=8)
    geom = FrameGeometry(fr.pose, fr.image.shape[1], fr.image.shape[0])
    cs = identify_train.crops_from_frame(
        fr.image, ann, geom, fr.scale, np.random.default_rng(0), n_pos=24, n_neg=8
    )
    seen: list[list[int]] = []
    monkeypatch.setattr(identify_train, "build_data", lambda *a, **k: (cs, {}, {"test": 1}))
    monkeypatch.setattr(identify_train, "held_out_crops", lambda seeds: seen.append(seeds) or cs)
    rec = identify_train.train(
        tmp_path, steps=3, eval_seeds=[77], device=torch.device("cpu"), log=False
    )
    m = rec.metadata["metrics"]
    assert seen == [[77]] and m["held_out_seeds"] == [77] and m["n"] == len(cs)
    assert 0.0 <= m["shape_accuracy"] <= 1.0 and m["per_class"]


def test_identifier_folded_for_the_cpu_gives_the_trained_outputs(tmp_path: Path) -> None:
    from samplescout.identify.model import IdentifyNet
    from samplescout.identify.net import build_model

    torch.manual_seed(3)
    m = IdentifyNet(width=4)
    for mod in m.modules():  # non-trivial batch-norm statistics, so folding them matters
        if isinstance(mod, torch.nn.BatchNorm2d):
            assert mod.running_mean is not None and mod.running_var is not None
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 2.0)
    m.eval()
    meta = {"task": "identify", "architecture": "cnn", "hparams": m.hparams, "context": {}}
    rec = Registry(tmp_path).save("identify-cnn", m.state_dict(), meta)
    folded = build_model(rec, torch.device("cpu"))
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in folded.modules())
    x = torch.randn(5, 2, 64, 64)
    with torch.inference_mode():
        want, got = m(x), folded(x.contiguous(memory_format=torch.channels_last))
    for k in want:
        assert torch.allclose(want[k], got[k], atol=1e-4), k


def test_training_data_at_two_coarse_scales_records_the_largest_pixel(
    monkeypatch, tiny_frame
) -> None:
    monkeypatch.setattr(select_train, "render_frames", lambda *a, **k: iter([tiny_frame]))
    data = select_train.build_data([11], channels=3, scales=(1, 2), log=False)
    assert len(data.inputs) == len(data.targets) == 2
    (c, h, w), (c2, h2, w2) = data.inputs[0].shape, data.inputs[1].shape
    assert c == c2 == 3 and (h2, w2) == (h // 2, w // 2)
    assert data.targets[1].shape == (h2, w2)
    f = max(1, round(8 * tiny_frame.scale))
    want = round(2 * f * tiny_frame.pose.pixel_size_mm, 4)
    assert data.description["max_coarse_pixel_mm"] == want
    assert data.description["scales"] == [1, 2]
    # a selector trained on it needs no upsampling up to that pixel size
    model, _ = select_train.train_model(data, steps=1, batch=1, crop=32, log=False)
    sel = NetSelector(model, max_pixel_mm=want)
    assert sel.upsample(want) == 1 and sel.upsample(want * 1.5) == 2
