"""Model registry: versions, aliases, context selection with fallback, exact round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from samplescout.registry import Registry, shipped_root
from samplescout.select.model import SelectUNet


def _save(reg: Registry, name: str, task: str, context: dict, seed: int = 0, aliases=()):
    torch.manual_seed(seed)
    m = SelectUNet(width=4)
    meta = {"task": task, "architecture": "unet", "hparams": m.hparams, "context": context}
    return reg.save(name, m.state_dict(), meta, aliases=aliases)


def test_versions_aliases_and_refs(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    r1 = _save(reg, "select-unet", "select", {}, aliases=("select-default",))
    r2 = _save(reg, "select-unet", "select", {}, seed=1)
    assert (r1.ref, r2.ref) == ("select-unet@1", "select-unet@2")
    assert reg.get("select-unet").version == 2
    assert reg.get("select-default").ref == "select-unet@1"
    assert reg.get("select-unet@1").metadata["task"] == "select"
    with pytest.raises(KeyError):
        reg.get("nothing")
    with pytest.raises(KeyError):
        reg.get("select-unet@9")


def test_resolve_by_context_with_fallback(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    _save(reg, "select-unet", "select", {}, aliases=("select-default",))
    _save(reg, "select-scope3", "select", {"microscope": "scope-3"})
    _save(reg, "select-scope3-wide", "select", {"microscope": "scope-3", "camera": "wide"})
    _save(reg, "select-plates", "select", {"carriers": ["multiwell"]})
    r = reg.resolve("select", {"microscope": "scope-3", "camera": "wide"})
    assert r.name == "select-scope3-wide" and not r.fallback
    assert (
        reg.resolve("select", {"microscope": "scope-3", "camera": "narrow"}).name == "select-scope3"
    )
    assert reg.resolve("select", {"carrier": "multiwell"}).name == "select-plates"
    fb = reg.resolve("select", {"microscope": "scope-9"})
    assert fb.ref == "select-unet@1" and fb.fallback
    assert reg.resolve("select", None).fallback
    # another task's models are never picked
    assert reg.resolve("select", {"microscope": "scope-3"}).task == "select"


def test_weights_round_trip_exactly(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    torch.manual_seed(3)
    m = SelectUNet(width=4).eval()
    x = torch.randn(1, 2, 32, 48)
    with torch.inference_mode():
        before = m(x)
    rec = reg.save("m", m.state_dict(), {"task": "select", "hparams": m.hparams})
    m2 = SelectUNet(**reg.get(rec.ref).metadata["hparams"]).eval()
    m2.load_state_dict(reg.get(rec.ref).load_state_dict())
    with torch.inference_mode():
        after = m2(x)
    assert torch.equal(before, after)


def test_shipped_registry_has_defaults() -> None:
    reg = Registry()
    assert reg.root == shipped_root()
    for task in ("select", "identify"):
        rec = reg.resolve(task, {"microscope": "anything"})
        assert rec.fallback and rec.task == task
        assert (rec.path / "weights.pt").stat().st_size < 5_000_000
        meta = rec.metadata
        for key in ("context", "training", "hparams", "date", "annotation_quality"):
            assert key in meta
        assert np.isfinite(meta["training"]["final_loss"])
