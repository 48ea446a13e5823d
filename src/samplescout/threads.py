"""CPU threads for the numeric libraries, sized to what the process may really use.

PyTorch and OpenCV size their thread pools by the machine's cores. In a container with
a CPU limit, or with several workers on one node, that oversubscribes the CPUs the
process gets, and throughput falls as workers are added. Workers therefore size the
pools to the CPUs they are allowed: the affinity mask, and the cgroup CPU quota a
Kubernetes CPU limit sets.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def quota_cpus(cpu_max: str) -> float | None:
    """CPUs a cgroup v2 ``cpu.max`` line (``"<quota|max> <period>"``) allows, or ``None``."""
    parts = cpu_max.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def available_cpus(cpu_max_path: Path = CGROUP_CPU_MAX) -> int:
    """Whole CPUs this process may use: the affinity mask, capped by the cgroup quota."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = max(1, cpus or 1)
    try:
        quota = quota_cpus(cpu_max_path.read_text())
    except OSError:
        quota = None
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return count


def set_threads(threads: int = 0) -> int:
    """Size PyTorch's and OpenCV's thread pools; ``0`` means :func:`available_cpus`.

    Returns the number of threads set.
    """
    import cv2
    import torch

    n = threads if threads > 0 else available_cpus()
    torch.set_num_threads(n)
    cv2.setNumThreads(n)
    return n
