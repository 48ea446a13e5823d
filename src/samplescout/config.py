"""Typed settings, read from the environment only at the entry point."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from enum import Enum
from typing import Any

ENV_PREFIX = "SAMPLESCOUT_"


class Method(str, Enum):
    """How regions are chosen for identification."""

    #: Selection on coarse data, identification of the selected full-res crops only,
    #: with the first-version classical stages: the default, because the trained models
    #: do not yet beat them (see docs/models.md).
    COARSE = "coarse"
    #: Learned selection (U-Net on coarse data), classical identification of the crops.
    COARSE_UNET = "coarse-unet"
    #: Learned selection; the identification CNN classifies the selected crops and a
    #: line/arc fit inside each crop gives the exact geometry.
    COARSE_CNN = "coarse-cnn"
    #: Classical full-resolution baseline: every tile of every frame is identified.
    CLASSICAL = "classical"


@dataclass(frozen=True, slots=True)
class Settings:
    """Pipeline settings.

    Parameters
    ----------
    redis_url
        ``None`` runs the embedded default (in-memory bus, one process).
    method
        :class:`Method` value.
    coarse_factor
        Reduction of the coarse data the selection stage sees.
    top_k
        Identify at most this many regions per frame, highest probability first (0: all).
    read_budget
        Identify regions, highest probability first, only while their crops stay within
        this share of the frame's full-resolution pixels (0: no budget).
    threads
        CPU threads of PyTorch and OpenCV in a served process (0: the CPUs the process
        may use, from its affinity and cgroup quota; set 1 when several workers share
        a node's cores).
    log_format
        ``console`` or ``json``.
    consumer
        This worker's consumer name in its group; stable across restarts of the same
        replica (default: the host name, which is the pod name on Kubernetes).
    max_deliveries
        Deliveries after which an entry goes to the dead-letter stream.
    reclaim_idle_ms
        Entries pending longer than this for another consumer are taken over; keep it
        above the slowest handler's time.
    frame_ttl_s
        Lifetime of frames and session state in Redis.
    model_registry
        Directory of a model registry (default: the models shipped in the package).
    """

    redis_url: str | None = None
    method: Method = Method.COARSE
    coarse_factor: int = 8
    top_k: int = 0
    read_budget: float = 0.0
    threads: int = 0
    log_format: str = "console"
    log_level: str = "warning"
    consumer: str = ""
    max_deliveries: int = 5
    reclaim_idle_ms: int = 120_000
    reclaim_every_s: float = 10.0
    frame_ttl_s: int = 3600
    model_registry: str | None = None

    def __post_init__(self) -> None:
        if self.coarse_factor < 1 or self.coarse_factor > 64:
            raise ValueError("coarse_factor must be between 1 and 64")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")
        if self.threads < 0:
            raise ValueError("threads must be >= 0")
        if not 0.0 <= self.read_budget <= 1.0:
            raise ValueError("read_budget must be between 0 and 1")
        if self.log_format not in ("console", "json"):
            raise ValueError("log_format must be 'console' or 'json'")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from ``SAMPLESCOUT_*`` variables; ``overrides`` win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _convert(f.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "method" in values:
            values["method"] = Method(values["method"])
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def _convert(name: str, raw: str) -> Any:
    if name in ("reclaim_every_s", "read_budget"):
        try:
            return float(raw)
        except ValueError:
            raise ValueError(f"{ENV_PREFIX}{name.upper()} must be a number, not {raw!r}") from None
    if name in (
        "coarse_factor",
        "top_k",
        "threads",
        "max_deliveries",
        "reclaim_idle_ms",
        "frame_ttl_s",
    ):
        try:
            return int(raw)
        except ValueError:
            raise ValueError(
                f"{ENV_PREFIX}{name.upper()} must be an integer, not {raw!r}"
            ) from None
    return raw
