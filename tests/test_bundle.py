"""Manifest validation (SPEC section 2): every bad input names the bundle and the field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from samplescout.bundle import open_bundle, write_bundle
from samplescout.cli import main
from samplescout.errors import InputError
from samplescout.geometry import Pose


@pytest.fixture()
def bundle(tmp_path: Path) -> Path:
    img = np.full((64, 96), 120, np.uint8)
    img16 = np.full((64, 96, 3), 30000, np.uint16)
    return write_bundle(
        tmp_path / "run42",
        [(img, Pose((10.0, 5.0), 0.1, 0.0)), (img16, Pose((18.0, 5.0), 0.1, 0.3))],
        carrier="slide",
        context={"microscope": "scope-3"},
    )


def _edit(bundle: Path, change) -> None:
    path = bundle / "manifest.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_valid_bundle_round_trip(bundle: Path) -> None:
    b = open_bundle(bundle)
    assert b.manifest.carrier == "slide"
    assert b.manifest.context == {"microscope": "scope-3"}
    assert [f.pose.center_mm for f in b.manifest.frames] == [(10.0, 5.0), (18.0, 5.0)]
    assert b.read_image(0).dtype == np.uint8
    assert b.read_image(1).dtype == np.uint16 and b.read_image(1).shape == (64, 96, 3)


def test_unknown_fields_are_ignored_and_unknown_carrier_means_recognise(bundle: Path) -> None:
    def change(doc):
        doc["future_field"] = {"x": 1}
        doc["frames"][0]["exposure_ms"] = 3
        doc["carrier"] = "unknown"

    _edit(bundle, change)
    assert open_bundle(bundle).manifest.carrier is None


BAD = [
    ("version", lambda d: d.update(version=2), "version"),
    ("empty frames", lambda d: d.update(frames=[]), "frames"),
    ("absolute", lambda d: d["frames"][1].update(file="/etc/passwd.png"), "frames[1].file"),
    ("dotdot", lambda d: d["frames"][0].update(file="../x/frame_000.png"), "frames[0].file"),
    ("missing", lambda d: d["frames"][1].update(file="nope.png"), "frames[1].file"),
    ("zero ps", lambda d: d["frames"][1].update(pixel_size_mm=0), "frames[1].pixel_size_mm"),
    ("negative ps", lambda d: d["frames"][0].update(pixel_size_mm=-0.1), "frames[0].pixel_size_mm"),
    (
        "nan",
        lambda d: d["frames"][1].update(center_mm=[float("nan"), 1.0]),
        "frames[1].center_mm[0]",
    ),
    ("inf", lambda d: d["frames"][0].update(rotation_deg=float("inf")), "frames[0].rotation_deg"),
    ("string", lambda d: d["frames"][0].update(pixel_size_mm="0.1"), "frames[0].pixel_size_mm"),
    ("carrier", lambda d: d.update(carrier="teapot"), "carrier"),
    ("center", lambda d: d["frames"][0].update(center_mm=[1.0]), "frames[0].center_mm"),
]


@pytest.mark.parametrize(("name", "change", "field"), BAD, ids=[b[0] for b in BAD])
def test_bad_manifest(bundle: Path, name: str, change, field: str) -> None:
    _edit(bundle, change)
    with pytest.raises(InputError) as info:
        open_bundle(bundle)
    assert info.value.field == field
    assert str(info.value).startswith("run42/: ")


def test_unreadable_image(bundle: Path) -> None:
    (bundle / "frame_001.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(InputError) as info:
        open_bundle(bundle)
    assert info.value.field == "frames[1].file"


def test_zero_size_image(bundle: Path) -> None:
    (bundle / "frame_000.png").write_bytes(b"")
    with pytest.raises(InputError, match=r"frames\[0\]\.file"):
        open_bundle(bundle)


def test_not_json(bundle: Path) -> None:
    (bundle / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match=r"manifest\.json: not valid JSON"):
        open_bundle(bundle)


def test_cli_bad_input_exit_2_one_line_no_output(
    bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _edit(bundle, lambda d: d["frames"][1].update(pixel_size_mm=-1))
    out = tmp_path / "result.json"
    assert main(["localize", str(bundle), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["samplescout: error: run42/: frames[1].pixel_size_mm: must be > 0"]
    assert not out.exists()
    assert not list(tmp_path.glob(".result.json*"))


def test_cli_missing_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["localize", str(tmp_path / "nothing")]) == 2
    assert "nothing/: not a bundle directory" in capsys.readouterr().err


def test_write_bundle_is_atomic(tmp_path: Path) -> None:
    good = np.zeros((32, 32), np.uint8)
    unwritable = np.zeros((32, 32, 7), np.uint8)  # PNG has no 7-channel images
    target = tmp_path / "b"
    with pytest.raises(Exception):  # noqa: B017 - whatever the codec raises
        write_bundle(target, [(good, Pose((0, 0), 1.0)), (unwritable, Pose((0, 0), 1.0))])
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_never_replaces_a_device_or_pipe(tmp_path: Path) -> None:
    import os

    from samplescout.atomic import write_bytes_atomic

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_bytes_atomic(fifo, b"hello")
        assert os.read(reader, 16) == b"hello"
    finally:
        os.close(reader)
    assert fifo.is_fifo()
    with pytest.raises(IsADirectoryError):
        write_bytes_atomic(tmp_path, b"x")
