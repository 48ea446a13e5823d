"""Thread pools sized to the CPUs a process may use (affinity, cgroup quota)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import pytest
import torch

from samplescout.config import Settings
from samplescout.threads import available_cpus, quota_cpus, set_threads


@pytest.mark.parametrize(
    ("line", "cpus"),
    [
        ("max 100000", None),
        ("150000 100000", 1.5),
        ("50000 100000", 0.5),
        ("x y", None),
        ("", None),
    ],
)
def test_cgroup_quota_parsing(line: str, cpus: float | None) -> None:
    assert quota_cpus(line) == cpus


def test_available_cpus_is_capped_by_the_quota(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    limit = tmp_path / "cpu.max"
    limit.write_text("50000 100000\n")  # half a CPU: one thread
    assert available_cpus(limit) == 1
    limit.write_text("max 100000\n")
    assert available_cpus(limit) == affinity
    assert available_cpus(tmp_path / "missing") == affinity


def test_set_threads_sizes_torch_and_opencv() -> None:
    before = torch.get_num_threads(), cv2.getNumThreads()
    try:
        assert set_threads(1) == 1
        assert torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def test_threads_setting_from_environment() -> None:
    assert Settings.from_env({"SAMPLESCOUT_THREADS": "1"}).threads == 1
    with pytest.raises(ValueError, match="THREADS must be an integer"):
        Settings.from_env({"SAMPLESCOUT_THREADS": "many"})
    with pytest.raises(ValueError, match="threads"):
        Settings(threads=-1)
