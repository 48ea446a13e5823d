"""The command line as a user meets it: help, simulate, localize, demo, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from samplescout.cli import build_parser, main
from samplescout.result import validate_result


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "samplescout", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_every_subcommand_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) >= {"simulate", "localize", "demo", "serve"}
    for name, p in sub.choices.items():
        text = p.format_help()
        assert p.description, name
        assert "usage: samplescout " + name in text


def test_top_level_help_and_no_command() -> None:
    proc = _run("--help")
    assert proc.returncode == 0
    assert "localize" in proc.stdout and "simulate" in proc.stdout
    proc = _run()
    assert proc.returncode == 2


def test_unknown_choice_is_one_line_exit_2() -> None:
    proc = _run("simulate", "/tmp/x", "--carrier", "teapot")
    assert proc.returncode == 2
    assert "samplescout: error: argument --carrier" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_localize_writes_valid_result_and_overlay(easy_wide_slide: Path, tmp_path: Path) -> None:
    out, overlay = tmp_path / "r.json", tmp_path / "o.png"
    proc = _run("localize", str(easy_wide_slide), "--out", str(out), "--overlay", str(overlay))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert validate_result(doc) == []
    assert doc["stats"]["frames"] == 1
    assert 0 < doc["stats"]["full_res_pixels_read"] < doc["stats"]["full_res_pixels"]
    assert doc["provenance"]["context"]["microscope"] == "sim"
    assert overlay.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "cover_glass" in proc.stdout


def test_classical_method_reads_every_pixel(easy_wide_slide: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert main(["localize", str(easy_wide_slide), "--out", str(out), "--method", "classical"]) == 0
    stats = json.loads(out.read_text())["stats"]
    assert stats["method"] == "classical"
    assert stats["full_res_pixels_read"] >= stats["full_res_pixels"]


def test_output_dir_missing_is_clean_error(easy_wide_slide: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = _run("localize", str(easy_wide_slide), "--out", str(blocker / "r.json"))
    assert proc.returncode == 1
    assert proc.stderr.startswith("samplescout: error:")
    assert "Traceback" not in proc.stderr


def test_simulate_and_demo(tmp_path: Path) -> None:
    proc = _run("simulate", str(tmp_path / "b"), "--carrier", "petri_dish", "--frame-scale", "0.25")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "b" / "ground_truth.json").exists()
    proc = _run("demo", "--out-dir", str(tmp_path / "demo"), "--frame-scale", "0.5")
    assert proc.returncode == 0, proc.stderr
    found = re.search(r"found (\d+) of (\d+) samples", proc.stdout)
    assert found is not None and found.group(1) == found.group(2) != "0", proc.stdout
    assert validate_result(json.loads((tmp_path / "demo" / "result.json").read_text())) == []
    assert (tmp_path / "demo" / "overlay.png").stat().st_size > 10_000


@pytest.mark.parametrize("bad", ["0", "1.5"])
def test_simulate_rejects_bad_scale(tmp_path: Path, bad: str) -> None:
    assert main(["simulate", str(tmp_path / "b"), "--frame-scale", bad]) == 2
    assert not (tmp_path / "b").exists()


def test_missing_model_for_context_falls_back_and_says_so(
    easy_wide_slide: Path, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    proc = _run("localize", str(easy_wide_slide), "--method", "coarse-unet", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "no model for this context, using the default" in proc.stderr
    assert "microscope" in proc.stderr


def test_train_on_cuda_without_one_is_a_clear_error(monkeypatch, tmp_path: Path, capsys) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["train", "select", "--registry", str(tmp_path / "r"), "--device", "cuda"]) == 2
    assert "--device" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
