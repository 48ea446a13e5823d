"""``samplescout bench``: the output schema and tables on a tiny case (not the times)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from samplescout import bench
from samplescout.cli import main


def test_quantiles_and_markdown_markers(tmp_path: Path) -> None:
    q = bench.quantiles([1.0, 2.0, 3.0, 4.0, 5.0])
    assert q["median"] == 3.0 and q["p90"] == pytest.approx(4.6) and q["n"] == 5
    assert bench.quantiles([])["n"] == 0
    page = tmp_path / "b.md"
    page.write_text(f"# B\n\nintro\n\n{bench.BEGIN}\nold\n{bench.END}\n\n## Analysis\nkept\n")
    bench.write_markdown(page, "new table\n")
    text = page.read_text()
    assert "new table" in text and "old" not in text
    assert text.startswith("# B\n\nintro") and text.endswith("## Analysis\nkept\n")


def test_same_samples() -> None:
    s = {
        "element": "cover_glass",
        "shape": "rectangle",
        "label": "",
        "center_mm": [1.0, 2.0],
        "size_mm": [3.0, 4.0],
        "angle_deg": 0.5,
    }
    assert bench.same_samples({"samples": [s]}, {"samples": [dict(s)]})
    assert not bench.same_samples({"samples": [s]}, {"samples": [{**s, "center_mm": [1.1, 2]}]})
    assert not bench.same_samples({"samples": [s]}, {"samples": []})


@pytest.mark.slow
def test_quick_bench_on_a_tiny_case(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, md = tmp_path / "bench.json", tmp_path / "benchmarks.md"
    argv = ["bench", "--quick", "--frame-scale", "0.1", "--work-dir", str(tmp_path / "set")]
    code = main([*argv, "--out", str(out), "--markdown", str(md)])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["schema"] == bench.SCHEMA_VERSION and doc["quick"] is True
    assert doc["machine"]["nproc"] >= 1
    assert "changed_during_run" in doc["code"]
    assert list(doc["variants"]) == list(bench.VARIANTS)
    for name, v in doc["variants"].items():
        assert v["variant"] == name and v["peak_rss_mb"] > 0
        assert v["models"], "the provenance of the models each variant ran"
        for part in ("wide", "narrow"):
            lat = v["latency"][part]
            assert set(lat["per_frame_seconds"]) == {"median", "p90", "min", "n"}
            assert lat["per_frame_seconds"]["p90"] >= lat["per_frame_seconds"]["median"] > 0
            assert lat["full_res_pixels"] > 0 and lat["full_res_pixels_read"] >= 0
            assert {"acquire_written", "select_read", "identify_read"} <= set(lat["bytes_moved"])
        overall = v["accuracy"]["overall"]
        assert {"recall", "precision", "mean_iou", "seconds"} <= set(overall)
        assert set(v["holders"]) == set(doc["holders"])
    # The dense variants read every pixel (tiles overlap: more than the frame).
    assert doc["variants"]["fullres-cnn"]["latency"]["wide"]["pixel_share"] >= 1.0
    assert doc["variants"]["classical"]["latency"]["wide"]["pixel_share"] >= 1.0
    assert "coarse_vs_fullres-cnn" in doc["ratios"]["speedup_wide"]
    assert "coarse" in doc["ratios"]["recall_points_vs_fullres-cnn"]
    assert doc["plate"] is None and doc["distributed"] is None and doc["load"] is None
    assert all({"target", "measured", "met"} <= set(t) for t in doc["targets"])
    text = md.read_text()
    assert bench.BEGIN in text and bench.END in text
    header = next(line for line in text.splitlines() if line.startswith("| variant | wide"))
    rows = [line for line in text.splitlines() if line.startswith("| ") and "|" in line[2:]]
    for name in bench.VARIANTS:
        row = next(r for r in rows if r.startswith(f"| {name} |"))
        assert row.count("|") == header.count("|")
    assert "### Targets" in text and "Machine:" in text


def test_a_child_measures_its_own_peak_memory_not_its_parents() -> None:
    import subprocess
    import sys

    import numpy as np

    ballast = np.ones(300 * 2**20 // 8)  # the bench parent may be large when it forks
    code = "from samplescout.bench import peak_rss; print(peak_rss())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) < 150 * 2**20
    assert bench.peak_rss() >= ballast.nbytes


def test_distributed_part_leaves_a_database_with_keys_alone(
    redis_client, redis_server: str, tmp_path: Path
) -> None:
    """The distributed part deletes its database afterwards, so it refuses one holding
    keys (a deployment's queues) and says why, touching nothing."""
    redis_client.set("lims:queue", "keep me")
    redis_client.xadd("samplescout:frames", {"f": "1"})
    doc = bench.distributed_bench(tmp_path / "no-bundle", 1, tmp_path, redis_server)
    assert "holds 2 keys" in doc["skipped"] and "--redis" in doc["skipped"]
    assert redis_client.get("lims:queue") == b"keep me"
    assert redis_client.xlen("samplescout:frames") == 1


def test_cpu_accounting_counts_work_done() -> None:
    """The distributed part's CPU columns: a busy loop shows in this process's and the
    machine's busy seconds; the split sums the select, identify and other processes."""
    import os

    mine, machine = bench.process_cpu_seconds(os.getpid()), bench.machine_busy_seconds()
    assert mine is not None and machine is not None  # CI runs on Linux
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    assert bench.process_cpu_seconds(os.getpid()) >= mine + 0.25
    assert bench.machine_busy_seconds() >= machine + 0.25
    split = bench._cpu_split(
        {
            "frames": 10,
            "cpu_seconds": {
                "select-a": 1.0,
                "identify-a": 2.0,
                "identify-b": 3.0,
                "fuse": 0.5,
                "acquire": 0.5,
            },
        }
    )
    assert split == "0.100 / 0.500 / 0.100"
    assert bench._cpu_split({"frames": 10}) == "n/a"
