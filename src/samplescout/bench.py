"""``samplescout bench``: coarse-to-fine against the alternatives, on the same frames.

Variants, all on the same simulated frames in one run:

- ``coarse``: the default method (classical selection on coarse data, classical
  identification of the selected full-resolution crops only);
- ``coarse-cnn``: the learned variant (U-Net selection, CNN identification of the crops);
- ``fullres-cnn``: the identification CNN applied densely over the whole full-resolution
  frame (sliding window of its crop size, :class:`~samplescout.select.full_frame.
  FullFrameSelector` tiles), i.e. the CNN without the selection step;
- ``classical``: the classical full-resolution baseline (every tile identified classically).

Each variant runs in a fresh subprocess so its peak RSS is its own. Per variant: per-frame
latency (median, p90 over repeats) on a 4000x3000 wide frame and on a narrow-camera
bundle (frames decoded beforehand, so decoding is reported apart), end-to-end time per
holder (decoding included) and accuracy (:mod:`samplescout.evaluate`) on a small hard set,
full-resolution pixels read and bytes moved between stages. Then a 56-frame plate bundle
for flat memory, distributed throughput against Redis with 1 vs 2 select and identify
workers (with queue lag), and with ``--load`` 20 concurrent sessions through the Control
API. Ratios are computed from numbers of the same run.

Run ``python -m samplescout.bench child SPEC.json OUT.json`` is the per-variant child.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

VARIANTS: tuple[str, ...] = ("coarse", "coarse-cnn", "fullres-cnn", "classical")
#: What each variant is, for the tables.
DESCRIPTIONS: dict[str, str] = {
    "coarse": "coarse-to-fine, classical select + classical identify (default)",
    "coarse-cnn": "coarse-to-fine, U-Net select + CNN identify (learned)",
    "fullres-cnn": "identification CNN dense over the full-res frame (no selection)",
    "classical": "classical full-res baseline (every tile, no selection)",
}
SCHEMA_VERSION = 1
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
MB = 1024.0 * 1024.0


# --- plan and data -------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """One simulated bundle of the benchmark set."""

    name: str
    carrier: str
    profile: str
    seed: int
    frame_scale: float
    difficulty: str = "hard"


@dataclass(frozen=True)
class BenchPlan:
    """What one benchmark run measures and on which holders.

    Parameters
    ----------
    quick
        Small frames, few repeats, no plate / distributed part.
    wide, narrow
        The holders timed per frame (``wide``: one 4000x3000 frame at scale 1).
    accuracy
        The holders localized end to end and scored (``wide`` and ``narrow`` included).
    plate
        The 56-frame plate bundle of the memory check, or ``None``.
    repeats, narrow_repeats
        Timed runs (after one warm-up) of the wide frame and of the narrow bundle.
    distributed
        Run the distributed throughput part.
    load_holder
        The holder of the ``--load`` sessions.
    """

    quick: bool
    wide: Holder
    narrow: Holder
    accuracy: tuple[Holder, ...]
    plate: Holder | None
    repeats: int
    narrow_repeats: int
    distributed: bool
    load_holder: Holder
    load_sessions: int = 20
    dist_sessions: int = 2


def make_plan(quick: bool, frame_scale: float | None = None) -> BenchPlan:
    """The benchmark plan: full (real camera sizes) or ``quick`` (small frames).

    ``frame_scale`` overrides the frame scale of every holder (tests use a tiny one).
    """
    scale = frame_scale if frame_scale is not None else (0.25 if quick else 1.0)
    seed = 11

    def h(carrier: str, profile: str, s: float, sd: int = seed) -> Holder:
        return Holder(f"{carrier}-{profile}-hard-{sd}-x{s:g}", carrier, profile, sd, s)

    wide, narrow = h("slide", "wide", scale), h("slide", "narrow", scale)
    if quick:
        accuracy: tuple[Holder, ...] = (wide, narrow, h("petri_dish", "wide", scale))
    else:
        accuracy = (
            wide,
            narrow,
            h("slide", "wide", scale, 12),
            h("petri_dish", "wide", scale),
            h("chamber_slide", "wide", scale),
            h("multiwell", "wide", scale),
            h("slide", "wide", 0.5 if frame_scale is None else scale),
        )
    load_scale = frame_scale if frame_scale is not None else (0.25 if quick else 0.5)
    return BenchPlan(
        quick=quick,
        wide=wide,
        narrow=narrow,
        accuracy=accuracy,
        plate=None if quick else h("multiwell", "narrow", scale),
        repeats=2 if quick else 5,
        narrow_repeats=1 if quick else 3,
        distributed=not quick,
        load_holder=h("slide", "wide", load_scale),
        load_sessions=20,
    )


def prepare_data(plan: BenchPlan, work_dir: Path) -> dict[str, Path]:
    """Simulate every holder of ``plan`` into ``work_dir`` (kept: same seed, same bundle)."""
    from samplescout.acquire.simulator import simulate

    holders = [plan.wide, plan.narrow, *plan.accuracy, plan.load_holder]
    if plan.plate is not None:
        holders.append(plan.plate)
    out: dict[str, Path] = {}
    for holder in holders:
        path = work_dir / holder.name
        if not (path / "ground_truth.json").is_file():
            simulate(
                path,
                carrier=holder.carrier,
                profile=holder.profile,
                seed=holder.seed,
                difficulty=holder.difficulty,
                frame_scale=holder.frame_scale,
            )
        out[holder.name] = path
    return out


# --- measurements shared by parent and child ----------------------------------------------


def current_rss() -> int:
    """Resident set size of this process in bytes (``/proc/self/statm``)."""
    return rss_of(os.getpid())


def rss_of(pid: int) -> int:
    """Resident set size of process ``pid`` in bytes (0 when it cannot be read)."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    """Peak resident set size of this process's own image in bytes.

    Linux's ``VmHWM`` (``/proc/self/status``) starts afresh at ``exec``; ``getrusage``'s
    ``ru_maxrss`` (the fallback elsewhere) does not: a child measured right after the
    fork of a large parent would report the parent's size.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def quantiles(values: Sequence[float]) -> dict[str, float]:
    """``median``, ``p90``, ``min`` and ``n`` of some timings (p90 by linear interpolation)."""
    vals = sorted(float(v) for v in values)
    if not vals:
        return {"median": 0.0, "p90": 0.0, "min": 0.0, "n": 0}
    pos = 0.9 * (len(vals) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(vals) - 1)
    p90 = vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)
    return {
        "median": round(statistics.median(vals), 4),
        "p90": round(p90, 4),
        "min": round(vals[0], 4),
        "n": len(vals),
    }


def machine() -> dict[str, Any]:
    """The machine the numbers come from."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count() or 0,
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model or platform.processor(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def code_state() -> dict[str, str] | None:
    """Git HEAD and a hash of the uncommitted diff of the source tree (``None``: no git).

    Recorded by the parent at start and end and by every child, so a run whose code
    changed under it (others editing the working tree) is flagged.
    """
    import hashlib

    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.strip()
        diff = subprocess.run(
            ["git", "-C", str(root), "diff", "HEAD", "--", "src", "services"],
            capture_output=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"head": head, "diff_sha1": hashlib.sha1(diff).hexdigest()[:12]}


def same_samples(a: Mapping[str, Any], b: Mapping[str, Any], tol: float = 1e-6) -> bool:
    """The same samples (element, shape, label, centre, size, angle within ``tol``)."""
    sa, sb = list(a.get("samples") or []), list(b.get("samples") or [])
    if len(sa) != len(sb):
        return False
    for x, y in zip(sa, sb, strict=True):
        if (x["element"], x["shape"], x.get("label")) != (y["element"], y["shape"], y.get("label")):
            return False
        nums_x = [*x["center_mm"], *x["size_mm"], x["angle_deg"]]
        nums_y = [*y["center_mm"], *y["size_mm"], y["angle_deg"]]
        if any(abs(float(p) - float(q)) > tol for p, q in zip(nums_x, nums_y, strict=True)):
            return False
    return True


# --- the per-variant child ---------------------------------------------------------------


def build_pipeline(variant: str, settings: Any) -> Any:
    """An :class:`~samplescout.app.EmbeddedPipeline` that runs ``variant`` by default.

    ``EmbeddedPipeline.run`` always stamps ``settings.method`` on the session, and the
    workers pick their stage by that key; so ``fullres-cnn`` is built as a
    :class:`~samplescout.app.Stages` whose *default method's* key maps to the
    :class:`FullFrameSelector` and the identification CNN.
    """
    from samplescout.app import EmbeddedPipeline, Stages, load_stages
    from samplescout.config import Method
    from samplescout.select.full_frame import FullFrameSelector

    if variant == "fullres-cnn":
        stages = load_stages(settings.with_(method=Method.COARSE_CNN))
        key = settings.method.value
        cnn = stages.identifiers[Method.COARSE_CNN.value]
        return EmbeddedPipeline(
            settings=settings,
            stages=Stages(selectors={key: FullFrameSelector()}, identifiers={key: cnn}),
        )
    s = settings.with_(method=Method(variant))
    return EmbeddedPipeline(settings=s, stages=load_stages(s))


def _frame_stats(result: Mapping[str, Any]) -> dict[str, Any]:
    st = result.get("stats") or {}
    full = int(st.get("full_res_pixels") or 0)
    read = int(st.get("full_res_pixels_read") or 0)
    return {
        "frames": int(st.get("frames") or 0),
        "full_res_pixels": full,
        "full_res_pixels_read": read,
        "pixel_share": round(read / full, 4) if full else 0.0,
        "regions_selected": int(st.get("regions_selected") or 0),
        "regions_identified": int(st.get("regions_identified") or 0),
        "bytes_moved": dict(st.get("bytes_moved") or {}),
        "stage_seconds": dict(st.get("stage_seconds") or {}),
    }


def _decoded(bundle_dir: Path) -> tuple[list[tuple[Any, Any]], float, str | None]:
    from samplescout.bundle import open_bundle

    bundle = open_bundle(bundle_dir)
    t0 = time.perf_counter()
    frames = [(bundle.read_image(f.index), f.pose) for f in bundle.manifest.frames]
    return frames, (time.perf_counter() - t0) / max(1, len(frames)), bundle.manifest.carrier


def measure_variant(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Everything measured for one variant (runs in the child process)."""
    import torch

    from samplescout.acquire.sources import BundleSource, FramesSource
    from samplescout.bundle import open_bundle
    from samplescout.config import Settings
    from samplescout.evaluate import score_holder, table

    variant = spec["variant"]
    settings = Settings(**spec.get("settings", {}))
    code = code_state()
    rss0 = current_rss()
    t0 = time.perf_counter()
    pipe = build_pipeline(variant, settings)
    load_s = time.perf_counter() - t0
    rss_loaded = current_rss()

    # End to end per holder (decode included, streamed) and accuracy: first, so the
    # peak RSS it reaches is not mixed with the pre-decoded frames of the latency part.
    scores = []
    models: set[str] = set()
    holders: dict[str, Any] = {}
    for name, path in spec["accuracy"].items():
        bundle = open_bundle(Path(path))
        truth = json.loads((Path(path) / "ground_truth.json").read_text())
        t = time.perf_counter()
        result = pipe.run(BundleSource(bundle))
        seconds = time.perf_counter() - t
        score = score_holder(result, truth, name=name, seconds=seconds)
        scores.append(score)
        prov = (result.get("provenance") or {}).get("models") or {}
        models.update(f"{stage}={ref}" for stage, ref in sorted(prov.items()))
        holders[name] = {
            "seconds": round(seconds, 4),
            **_frame_stats(result),
            "truth": score.n_truth,
            "found": score.n_found,
            "matched": len(score.ious),
            "samples": result.get("samples", []),
        }
    peak_e2e = peak_rss()
    accuracy = table(scores)

    latency: dict[str, Any] = {}
    for part, key, repeats in (
        ("wide", "wide", spec["repeats"]),
        ("narrow", "narrow", spec["narrow_repeats"]),
    ):
        frames, decode_s, carrier = _decoded(Path(spec[key]))
        n = len(frames)
        pipe.run(FramesSource(frames, carrier=carrier))  # warm-up
        walls: list[float] = []
        timed: dict[str, Any] = {}
        for _ in range(int(repeats)):
            t = time.perf_counter()
            timed = pipe.run(FramesSource(frames, carrier=carrier))
            walls.append(time.perf_counter() - t)
        latency[part] = {
            "frames": n,
            "frame_size": [int(frames[0][0].shape[1]), int(frames[0][0].shape[0])],
            "decode_seconds_per_frame": round(decode_s, 4),
            "per_frame_seconds": quantiles([w / n for w in walls]),
            "bundle_seconds": quantiles(walls),
            **_frame_stats(timed),
        }
        del frames
    return {
        "variant": variant,
        "description": DESCRIPTIONS[variant],
        "torch_threads": torch.get_num_threads(),
        "load_seconds": round(load_s, 3),
        "rss_start_mb": round(rss0 / MB, 1),
        "rss_loaded_mb": round(rss_loaded / MB, 1),
        "peak_rss_mb": round(peak_e2e / MB, 1),
        "peak_rss_with_predecoded_mb": round(peak_rss() / MB, 1),
        "latency": latency,
        "code": code,
        "models": sorted(models),
        "accuracy": accuracy["rows"],
        "holders": holders,
    }


class _RssProbe:
    """A frame source wrapper that records this process's RSS after every frame."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self.name: str = source.name
        self.carrier: str | None = source.carrier
        self.context: dict[str, str] = source.context
        self.frame_count: int = source.frame_count
        self.samples: list[int] = []

    def frames(self) -> Iterator[Any]:
        for frame in self._source.frames():
            yield frame
            self.samples.append(current_rss())


def measure_plate(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Peak and per-frame RSS of the default method on a many-frame bundle (child)."""
    from samplescout.acquire.sources import BundleSource
    from samplescout.bundle import open_bundle
    from samplescout.config import Settings
    from samplescout.evaluate import score_holder, summarize

    settings = Settings(**spec.get("settings", {}))
    pipe = build_pipeline("coarse", settings)
    rss_loaded = current_rss()
    path = Path(spec["plate"])
    probe = _RssProbe(BundleSource(open_bundle(path)))
    t = time.perf_counter()
    result = pipe.run(probe)
    seconds = time.perf_counter() - t
    truth = json.loads((path / "ground_truth.json").read_text())
    n = len(probe.samples)
    marks = sorted({0, n // 4, n // 2, (3 * n) // 4, n - 1}) if n else []
    return {
        "frames": n,
        "seconds": round(seconds, 3),
        "rss_loaded_mb": round(rss_loaded / MB, 1),
        "rss_after_frame_mb": {str(i + 1): round(probe.samples[i] / MB, 1) for i in marks},
        "peak_rss_mb": round(peak_rss() / MB, 1),
        "accuracy": summarize([score_holder(result, truth, name=path.name, seconds=seconds)]),
        **_frame_stats(result),
    }


def child_main(argv: Sequence[str]) -> int:
    """``python -m samplescout.bench child SPEC.json OUT.json``."""
    from samplescout.logs import configure_logging

    configure_logging("console", "error")
    spec = json.loads(Path(argv[0]).read_text())
    doc = measure_plate(spec) if spec.get("kind") == "plate" else measure_variant(spec)
    Path(argv[1]).write_text(json.dumps(doc))
    return 0


def run_child(spec: Mapping[str, Any], tmp: Path, timeout_s: float = 900.0) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return its JSON document."""
    name = str(spec.get("variant") or spec.get("kind"))
    spec_path, out_path = tmp / f"{name}.spec.json", tmp / f"{name}.out.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run(
        [sys.executable, "-m", "samplescout.bench", "child", str(spec_path), str(out_path)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if proc.returncode != 0 or not out_path.is_file():
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise RuntimeError(f"bench child {name} failed (exit {proc.returncode}): {tail}")
    doc: dict[str, Any] = json.loads(out_path.read_text())
    return doc


# --- services as processes ---------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServiceProcs:
    """``samplescout serve ...`` processes on loopback, with their logs in ``log_dir``."""

    log_dir: Path
    env: dict[str, str]
    procs: dict[str, tuple[subprocess.Popen[bytes], int]] = field(default_factory=dict)

    def start(self, service: str, name: str | None = None, *extra: str) -> int:
        name = name or service
        port = free_port()
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 - lives with the process
        cmd = [sys.executable, "-m", "samplescout", "serve", service, "--grpc"]
        cmd += [f"127.0.0.1:{port}", "--consumer", name, *extra]
        proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = (proc, port)
        self._wait_healthy(name, port)
        return port

    def _wait_healthy(self, name: str, port: int, timeout_s: float = 120.0) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + timeout_s
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            while True:
                proc = self.procs[name][0]
                if proc.poll() is not None:
                    log = (self.log_dir / f"{name}.log").read_text()[-1500:]
                    raise RuntimeError(f"{name} exited ({proc.returncode}): {log}")
                try:
                    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not become healthy in {timeout_s:.0f} s")
                time.sleep(0.2)

    def pid(self, name: str) -> int:
        return int(self.procs[name][0].pid)

    def port(self, name: str) -> int:
        return self.procs[name][1]

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name)[0]
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)


def control_session(
    port: int, bundle: Path, timeout_s: float = 300.0
) -> tuple[float, dict[str, Any]]:
    """Start a session for ``bundle`` through the Control API, watch it, get its result.

    Returns the session latency (start to result) and the result document.
    """
    import grpc

    from samplescout.v1 import control_pb2, control_pb2_grpc, pipeline_pb2

    t0 = time.perf_counter()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = control_pb2_grpc.ControlServiceStub(ch)
        sid = stub.StartSession(
            control_pb2.StartSessionRequest(bundle_path=str(bundle)), timeout=60
        ).session_id
        last = None
        for reply in stub.WatchSession(
            control_pb2.WatchSessionRequest(session_id=sid), timeout=timeout_s
        ):
            last = reply.event
        if last is None or last.kind != pipeline_pb2.SESSION_EVENT_KIND_DONE:
            raise RuntimeError(f"session {sid} ended with {last}")
        result = stub.GetResult(control_pb2.GetResultRequest(session_id=sid), timeout=60)
        doc: dict[str, Any] = json.loads(result.result.json)
    return time.perf_counter() - t0, doc


# --- distributed throughput --------------------------------------------------------------


class LagSampler:
    """Samples the backlog of the select and identify consumer groups every ``every_s``.

    Backlog = entries not yet delivered (``lag``) + delivered but not acked
    (``pending``); age = now minus the timestamp of the oldest such entry.
    """

    GROUPS: tuple[tuple[str, str], ...] = (
        ("samplescout:frames", "select"),
        ("samplescout:regions", "identify"),
    )

    def __init__(self, client: Any, every_s: float = 0.2) -> None:
        self._client = client
        self._every = every_s
        self._stop = threading.Event()
        self.max_backlog: dict[str, int] = {g: 0 for _, g in self.GROUPS}
        self.max_age_s: dict[str, float] = {g: 0.0 for _, g in self.GROUPS}
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LagSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self.sample()
            except Exception:  # a missing stream early on is not an error
                continue

    def sample(self) -> None:
        sec, usec = self._client.time()
        now_ms = int(sec) * 1000 + int(usec) // 1000
        for stream, group in self.GROUPS:
            info = next(
                (g for g in self._client.xinfo_groups(stream) if _s(g["name"]) == group), None
            )
            if info is None:
                continue
            pending = int(info.get("pending") or 0)
            lag = int(info.get("lag") or 0)
            self.max_backlog[group] = max(self.max_backlog[group], pending + lag)
            oldest: list[int] = []
            if pending:
                summary = self._client.xpending(stream, group)
                if summary.get("min"):
                    oldest.append(_id_ms(summary["min"]))
            if lag:
                last = _s(info.get("last-delivered-id") or "0-0")
                nxt = self._client.xrange(stream, min=f"({last}", count=1)
                if nxt:
                    oldest.append(_id_ms(nxt[0][0]))
            if oldest:
                age = max(0.0, (now_ms - min(oldest)) / 1000.0)
                self.max_age_s[group] = max(self.max_age_s[group], round(age, 3))


def machine_busy_seconds() -> float | None:
    """CPU seconds the whole machine has been busy (all cores, from ``/proc/stat``;
    None off Linux)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields[:8]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return (sum(ticks) - idle) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (``/proc``; None off Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    after = stat.rsplit(")", 1)[1].split()
    return (int(after[11]) + int(after[12])) / os.sysconf("SC_CLK_TCK")


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id_ms(entry_id: Any) -> int:
    return int(_s(entry_id).split("-", 1)[0])


def distributed_bench(bundle: Path, sessions: int, work: Path, redis_url: str) -> dict[str, Any]:
    """Frames/s of the five services against Redis, 1 vs 2 select and identify workers.

    The services share the database of ``redis_url``, and everything in it is deleted
    at the end, so an empty database is required: one holding keys (a deployment's
    queues and sessions) is left alone and the part is skipped with the reason.
    """
    import redis

    url = redis_url
    client = redis.Redis.from_url(url)
    try:
        keys = int(client.dbsize())
    except redis.RedisError as exc:
        return {"skipped": f"no Redis at {url}: {exc}"}
    if keys:
        client.close()
        return {
            "skipped": f"the Redis database {url} holds {keys} keys; the distributed bench "
            "deletes everything in its database afterwards, so give it an empty one "
            "(--redis redis://HOST:PORT/N with a free database number N)"
        }
    # One CPU thread per process: several workers share the cores, as on a busy node.
    env = {
        **os.environ,
        "SAMPLESCOUT_REDIS_URL": url,
        "SAMPLESCOUT_LOG_LEVEL": "error",
        "SAMPLESCOUT_THREADS": "1",
    }
    procs = ServiceProcs(work, env)
    configs: list[dict[str, Any]] = []
    frames_per = len(json.loads((bundle / "manifest.json").read_text())["frames"])
    try:
        t0 = time.perf_counter()
        for svc in ("acquire", "fuse", "control"):
            procs.start(svc)
        procs.start("select", "select-a")
        procs.start("identify", "identify-a")
        startup = time.perf_counter() - t0
        control = procs.port("control")
        reference = control_session(control, bundle)[1]  # warm-up and reference
        steps = [(1, 1), (1, 2), (2, 2), (2, 1)]
        for n_select, n_identify in steps:
            if (n_select, n_identify) == (1, 2):
                procs.start("identify", "identify-b")
            elif (n_select, n_identify) == (2, 2):
                procs.start("select", "select-b")
            elif (n_select, n_identify) == (2, 1):
                procs.stop("identify-b")
            pids = {name: procs.pid(name) for name in procs.procs}
            cpu0 = {name: process_cpu_seconds(pid) for name, pid in pids.items()}
            busy0 = machine_busy_seconds()
            with LagSampler(client) as lag, ThreadPoolExecutor(sessions) as pool:
                t = time.perf_counter()
                runs = list(pool.map(lambda _: control_session(control, bundle), range(sessions)))
                wall = time.perf_counter() - t
            busy1 = machine_busy_seconds()
            cpu = {
                name: round(after - before, 3)
                for name, pid in pids.items()
                if (before := cpu0[name]) is not None
                and (after := process_cpu_seconds(pid)) is not None
            }
            results = [doc for _, doc in runs]
            configs.append(
                {
                    "select_workers": n_select,
                    "identify_workers": n_identify,
                    "sessions": sessions,
                    "frames": sessions * frames_per,
                    "seconds": round(wall, 3),
                    "frames_per_s": round(sessions * frames_per / wall, 3),
                    "session_seconds": quantiles([s for s, _ in runs]),
                    "max_backlog_entries": lag.max_backlog,
                    "max_queue_lag_s": lag.max_age_s,
                    "same_result": all(same_samples(r, reference) for r in results),
                    "bytes_moved": results[0]["stats"].get("bytes_moved", {}),
                    # where the cores went: per service process, and the whole machine
                    # (Redis and this client included), in cores busy on average
                    "cpu_seconds": cpu,
                    "machine_cores_busy": round((busy1 - busy0) / wall, 2)
                    if busy0 is not None and busy1 is not None
                    else None,
                }
            )
        base = configs[0]["frames_per_s"] or 1.0
        for c in configs:
            c["speedup_vs_1x1"] = round(c["frames_per_s"] / base, 3)
        return {
            "redis_url": url,
            "cpus": os.cpu_count(),
            "bundle": bundle.name,
            "frames_per_session": frames_per,
            "startup_seconds": round(startup, 2),
            "configs": configs,
        }
    finally:
        procs.stop_all()
        client.flushdb()
        client.close()


# --- load through the Control API ----------------------------------------------------------


def load_bench(
    bundle: Path, reference: Mapping[str, Any] | None, sessions: int, work: Path
) -> dict[str, Any]:
    """``sessions`` concurrent sessions through an embedded control server (subprocess)."""
    env = {k: v for k, v in os.environ.items() if k != "SAMPLESCOUT_REDIS_URL"}
    env["SAMPLESCOUT_LOG_LEVEL"] = "error"
    procs = ServiceProcs(work, env)
    try:
        procs.start("control", "control-load")
        port, pid = procs.port("control-load"), procs.pid("control-load")
        warm_s, warm = control_session(port, bundle)
        ref = reference if reference is not None else warm
        time.sleep(1.0)
        rss_before = rss_of(pid)
        deadline = 300.0
        t0 = time.perf_counter()
        with ThreadPoolExecutor(sessions) as pool:
            futures = [
                pool.submit(control_session, port, bundle, deadline) for _ in range(sessions)
            ]
            outcomes: list[tuple[float, dict[str, Any]] | str] = []
            for fut in futures:
                try:
                    outcomes.append(fut.result(timeout=deadline))
                except Exception as exc:  # counted as a failed session
                    outcomes.append(f"{type(exc).__name__}: {exc}")
        wall = time.perf_counter() - t0
        rss_peak = _vm_hwm(pid)
        rss_end = rss_of(pid)
        time.sleep(3.0)
        rss_after = rss_of(pid)
        done = [o for o in outcomes if not isinstance(o, str)]
        errors = [o for o in outcomes if isinstance(o, str)]
        latencies = sorted(s for s, _ in done)
        return {
            "sessions": sessions,
            "completed": len(done),
            "correct": sum(same_samples(doc, ref) for _, doc in done),
            "errors": errors[:3],
            "seconds": round(wall, 3),
            "warm_session_seconds": round(warm_s, 3),
            "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "latency_p99_s": round(_pct(latencies, 0.99), 3) if latencies else None,
            "rss_before_mb": round(rss_before / MB, 1),
            "rss_peak_mb": round(rss_peak / MB, 1),
            "rss_at_end_mb": round(rss_end / MB, 1),
            "rss_after_3s_mb": round(rss_after / MB, 1),
            "rss_after_over_before": round(rss_after / rss_before, 3) if rss_before else None,
            "reference": "embedded run of the coarse child" if reference else "warm-up session",
        }
    finally:
        procs.stop_all()


def _pct(sorted_vals: Sequence[float], q: float) -> float:
    pos = q * (len(sorted_vals) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def _vm_hwm(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


# --- ratios, targets, report --------------------------------------------------------------


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def ratios(variants: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Ratios between the variants, all from this run."""
    out: dict[str, Any] = {}

    def med(v: str, part: str) -> float:
        return float(variants[v]["latency"][part]["per_frame_seconds"]["median"])

    def acc(v: str, key: str) -> float:
        return float(variants[v]["accuracy"]["overall"][key])

    for part in ("wide", "narrow"):
        out[f"speedup_{part}"] = {
            f"{v}_vs_fullres-cnn": _ratio(med("fullres-cnn", part), med(v, part))
            for v in ("coarse", "coarse-cnn")
        } | {
            f"{v}_vs_classical": _ratio(med("classical", part), med(v, part))
            for v in ("coarse", "coarse-cnn")
        }
    for key in ("recall", "precision", "mean_iou"):
        out[f"{key}_points_vs_fullres-cnn"] = {
            v: round(100.0 * (acc(v, key) - acc("fullres-cnn", key)), 2)
            for v in ("coarse", "coarse-cnn")
        }
        out[f"{key}_points_vs_classical"] = {
            v: round(100.0 * (acc(v, key) - acc("classical", key)), 2)
            for v in ("coarse", "coarse-cnn")
        }
    out["pixel_share"] = {
        v: {p: variants[v]["latency"][p]["pixel_share"] for p in ("wide", "narrow")}
        for v in variants
    }
    return out


def targets(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets with the measured value and whether it is met."""
    r = doc["ratios"]
    rows: list[dict[str, Any]] = []

    def add(target: str, measured: str, met: bool | None) -> None:
        rows.append({"target": target, "measured": measured, "met": met})

    for v in ("coarse", "coarse-cnn"):
        sp = r["speedup_wide"][f"{v}_vs_fullres-cnn"] or 0.0
        dr = r["recall_points_vs_fullres-cnn"][v]
        add(
            f"{v}: >= 20x faster per frame than fullres-cnn (wide)",
            f"{sp:.2f}x",
            sp >= 20.0,
        )
        add(f"{v}: recall within 1 point of fullres-cnn", f"{dr:+.1f} points", dr >= -1.0)
        sc = r["speedup_wide"][f"{v}_vs_classical"] or 0.0
        rc = r["recall_points_vs_classical"][v]
        add(f"{v}: not slower than classical (wide)", f"{sc:.2f}x", sc >= 1.0)
        add(f"{v}: better recall than classical on hard holders", f"{rc:+.1f} points", rc > 0)
        share = max(r["pixel_share"][v].values())
        add(f"{v}: identify reads <= 10% of full-res pixels", f"{100 * share:.1f}%", share <= 0.10)
    plate = doc.get("plate")
    if plate:
        peak = float(plate["peak_rss_mb"])
        add(
            f"{plate['frames']}-frame plate bundle peak RSS < 1.5 GB",
            f"{peak:.0f} MB",
            peak < 1536.0,
        )
    dist = doc.get("distributed") or {}
    if dist.get("configs"):
        by = {(c["select_workers"], c["identify_workers"]): c for c in dist["configs"]}
        busy = by.get((1, 1), {}).get("machine_cores_busy")
        # How busy the machine already was with one worker each bounds any speed-up.
        note = "" if busy is None else f" (1+1 kept {busy:.2f} of {dist.get('cpus')} cores busy)"
        for key, label in (((1, 2), "2 identify"), ((2, 1), "2 select"), ((2, 2), "2+2")):
            if key in by:
                sp = by[key]["speedup_vs_1x1"]
                add(
                    f"distributed {label} workers near-linear (>= 1.8x of 1+1)",
                    f"{sp:.2f}x{note}",
                    sp >= 1.8,
                )
    load = doc.get("load")
    if load:
        ok = load["correct"] == load["sessions"]
        add(
            f"--load: {load['sessions']} concurrent sessions all correct",
            f"{load['correct']}/{load['sessions']}",
            ok,
        )
    return rows


def _cpu_split(config: Mapping[str, Any]) -> str:
    """CPU seconds per frame of the select workers, the identify workers and the rest."""
    cpu = config.get("cpu_seconds") or {}
    frames = config.get("frames") or 1
    if not cpu:
        return "n/a"
    parts = [
        sum(v for k, v in cpu.items() if k.startswith(prefix)) / frames
        for prefix in ("select", "identify")
    ]
    rest = sum(v for k, v in cpu.items() if not k.startswith(("select", "identify"))) / frames
    return " / ".join(f"{v:.3f}" for v in (*parts, rest))


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f}"


def to_markdown(doc: Mapping[str, Any]) -> str:
    """The benchmark document as markdown tables."""
    m = doc["machine"]
    lines = [
        f"Machine: {m['nproc']} CPUs (affinity {m['affinity']}), {m['cpu_model']}, "
        f"Python {m['python']}, torch threads {doc.get('torch_threads')}.",
        f"Command: `{doc['command']}` ({'quick' if doc['quick'] else 'full'} run, "
        f"{doc['seconds']:.0f} s, {doc['date']}).",
        f"Code: {(doc.get('code') or {}).get('start')}.",
        *(
            [
                "",
                "**Warning: the source tree changed during this run** (others were editing "
                "it), so the variants may not have run the same code.",
            ]
            if (doc.get("code") or {}).get("changed_during_run")
            else []
        ),
        "",
        "### Per frame, per holder, per variant",
        "",
        "| variant | wide frame s (median / p90) | narrow s/frame (median / p90) "
        "| e2e s/holder | px read wide / narrow | identify MB read (wide) "
        "| peak RSS MB | recall | precision | mean IoU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, v in doc["variants"].items():
        w, n = v["latency"]["wide"], v["latency"]["narrow"]
        ov = v["accuracy"]["overall"]
        wq, nq = w["per_frame_seconds"], n["per_frame_seconds"]
        lines.append(
            f"| {name} | {wq['median']:.3f} / {wq['p90']:.3f} "
            f"| {nq['median']:.3f} / {nq['p90']:.3f} | {ov['seconds']:.2f} "
            f"| {100 * w['pixel_share']:.1f}% / {100 * n['pixel_share']:.1f}% "
            f"| {_mb(w['bytes_moved'].get('identify_read', 0))} | {v['peak_rss_mb']:.0f} "
            f"| {ov['recall']:.3f} | {ov['precision']:.3f} | {ov['mean_iou']:.3f} |"
        )
    lines += [
        "",
        "Models: "
        + "; ".join(
            f"{name}: {', '.join(v.get('models') or []) or '-'}"
            for name, v in doc["variants"].items()
        ),
    ]
    wide = next(iter(doc["variants"].values()))["latency"]["wide"]
    narrow = next(iter(doc["variants"].values()))["latency"]["narrow"]
    lines += [
        "",
        f"Wide: one {wide['frame_size'][0]}x{wide['frame_size'][1]} frame; narrow: "
        f"{narrow['frames']} frames of {narrow['frame_size'][0]}x{narrow['frame_size'][1]}. "
        "Latencies are in-process with frames decoded beforehand (decode per frame: wide "
        f"{wide['decode_seconds_per_frame']:.2f} s, narrow "
        f"{narrow['decode_seconds_per_frame']:.2f} s); e2e includes decoding. Accuracy and "
        f"e2e over {len(doc['holders'])} hard holders: {', '.join(doc['holders'])}.",
        "",
        "### Where the time goes (wide frame, seconds summed over the stage)",
        "",
        "| variant | coarse | select | identify | fuse | other (acquire put, bus) "
        "| regions identified | bytes written / select read / identify read / fuse read (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, v in doc["variants"].items():
        w = v["latency"]["wide"]
        ss, bm = w["stage_seconds"], w["bytes_moved"]
        other = w["per_frame_seconds"]["median"] - sum(
            float(ss.get(k, 0)) for k in ("coarse", "select", "identify", "fuse")
        )
        lines.append(
            f"| {name} | {ss.get('coarse', 0):.3f} | {ss.get('select', 0):.3f} "
            f"| {ss.get('identify', 0):.3f} | {ss.get('fuse', 0):.3f} | {max(0.0, other):.3f} "
            f"| {w['regions_identified']} "
            f"| {_mb(bm.get('acquire_written', 0))} / {_mb(bm.get('select_read', 0))} "
            f"/ {_mb(bm.get('identify_read', 0))} / {_mb(bm.get('fuse_read', 0))} |"
        )
    r = doc["ratios"]
    lines += ["", "### Ratios (same run)", ""]
    for part in ("wide", "narrow"):
        items = ", ".join(f"{k} {v:.2f}x" for k, v in r[f"speedup_{part}"].items() if v)
        lines.append(f"- speed-up per frame, {part}: {items}")
    for key in ("recall", "precision", "mean_iou"):
        a = r[f"{key}_points_vs_fullres-cnn"]
        b = r[f"{key}_points_vs_classical"]
        lines.append(
            f"- {key} difference (points): "
            + ", ".join(f"{v} {a[v]:+.1f} vs fullres-cnn, {b[v]:+.1f} vs classical" for v in a)
        )
    if doc.get("plate"):
        p = doc["plate"]
        marks = ", ".join(f"{k}: {v:.0f}" for k, v in p["rss_after_frame_mb"].items())
        lines += [
            "",
            "### Memory with many frames",
            "",
            f"{p['frames']}-frame plate bundle (narrow camera, full scale), default method, "
            f"streamed from disk: peak RSS **{p['peak_rss_mb']:.0f} MB** (after loading "
            f"{p['rss_loaded_mb']:.0f} MB); RSS after frame n (MB): {marks}; {p['seconds']:.1f} s, "
            f"read {100 * p['pixel_share']:.1f}% of the full-res pixels.",
        ]
    dist = doc.get("distributed")
    if dist:
        lines += ["", "### Distributed (Redis, services as processes)", ""]
        if dist.get("skipped"):
            lines.append(f"Skipped: {dist['skipped']}")
        else:
            lines += [
                f"{dist['frames_per_session']}-frame narrow bundle ({dist['bundle']}), "
                f"{dist['configs'][0]['sessions']} concurrent sessions per configuration; "
                "one acquire, fuse and control process. Queue lag: largest backlog (entries "
                "undelivered + unacked) and age of its oldest entry.",
                "",
                "| select | identify | frames/s | vs 1+1 | session s (median) "
                "| select backlog / lag s | identify backlog / lag s | same result "
                "| identify MB read | machine cores busy | CPU s per frame: select / identify "
                "/ acquire + fuse + control |",
                "|---|---|---|---|---|---|---|---|---|---|---|",
            ]
            for c in dist["configs"]:
                b, a = c["max_backlog_entries"], c["max_queue_lag_s"]
                busy = c.get("machine_cores_busy")
                busy_txt = "n/a" if busy is None else f"{busy:.2f} of {dist.get('cpus')}"
                lines.append(
                    f"| {c['select_workers']} | {c['identify_workers']} | {c['frames_per_s']:.2f} "
                    f"| {c['speedup_vs_1x1']:.2f}x | {c['session_seconds']['median']:.2f} "
                    f"| {b['select']} / {a['select']:.2f} | {b['identify']} / {a['identify']:.2f} "
                    f"| {c['same_result']} | {_mb(c['bytes_moved'].get('identify_read', 0))} "
                    f"| {busy_txt} "
                    f"| {_cpu_split(c)} |"
                )
    load = doc.get("load")
    if load:
        lines += [
            "",
            "### Load: concurrent sessions through the Control API",
            "",
            f"{load['sessions']} concurrent sessions (embedded control server in a subprocess, "
            f"loopback gRPC): {load['completed']} completed, {load['correct']} with the "
            f"reference result; p50 {load['latency_p50_s']} s, p99 {load['latency_p99_s']} s, "
            f"all in {load['seconds']:.1f} s. Server RSS before {load['rss_before_mb']:.0f} MB, "
            f"peak {load['rss_peak_mb']:.0f} MB, after 3 s {load['rss_after_3s_mb']:.0f} MB "
            f"(after/before {load['rss_after_over_before']}).",
        ]
    lines += ["", "### Targets", "", "| target | measured | met |", "|---|---|---|"]
    for t in doc["targets"]:
        met = "yes" if t["met"] else "no"
        lines.append(f"| {t['target']} | {t['measured']} | {met} |")
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def write_markdown(path: Path, text: str) -> None:
    """Write ``text`` between the bench markers of ``path`` (the rest of the page is kept)."""
    block = f"{BEGIN}\n{text}{END}"
    if path.is_file():
        old = path.read_text()
        if BEGIN in old and END in old:
            head, rest = old.split(BEGIN, 1)
            tail = rest.split(END, 1)[1]
            path.write_text(head + block + tail)
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# Benchmarks\n\n{block}\n")


# --- the command ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BenchOptions:
    """Options of ``samplescout bench``."""

    quick: bool = False
    out: Path | None = Path("bench.json")
    markdown: Path | None = None
    load: bool = False
    work_dir: Path | None = None
    frame_scale: float | None = None
    distributed: bool | None = None
    #: The distributed part's own database (never the services' SAMPLESCOUT_REDIS_URL).
    redis_url: str = DEFAULT_REDIS_URL
    command: str = "samplescout bench"


def run_bench(
    options: BenchOptions,
    settings: Any = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the benchmark and return its document (written to ``options.out``)."""
    from samplescout.config import Settings

    t_start = time.perf_counter()
    code_start = code_state()
    plan = make_plan(options.quick, options.frame_scale)
    settings = settings or Settings()
    child_settings = {
        "coarse_factor": settings.coarse_factor,
        "top_k": settings.top_k,
        "model_registry": settings.model_registry,
    }
    work = options.work_dir or Path(tempfile.gettempdir()) / "samplescout-bench"
    work.mkdir(parents=True, exist_ok=True)
    log(f"bench: simulating the set in {work}/ (kept between runs)")
    data = prepare_data(plan, work)
    accuracy = {h.name: str(data[h.name]) for h in plan.accuracy}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp_name:
        tmp = Path(tmp_name)
        variants: dict[str, Any] = {}
        for variant in VARIANTS:
            log(f"bench: {variant} ...")
            spec = {
                "variant": variant,
                "settings": child_settings,
                "wide": str(data[plan.wide.name]),
                "narrow": str(data[plan.narrow.name]),
                "accuracy": accuracy,
                "repeats": plan.repeats,
                "narrow_repeats": plan.narrow_repeats,
            }
            try:
                variants[variant] = run_child(spec, tmp)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                # The working tree may be mid-edit by someone else: one retry, then fail.
                log(f"bench: {variant} failed ({str(exc)[-300:]}); retrying once in 20 s")
                time.sleep(20.0)
                variants[variant] = run_child(spec, tmp)
            lat = variants[variant]["latency"]
            log(
                f"bench: {variant}: wide {lat['wide']['per_frame_seconds']['median']:.3f} s/frame, "
                f"narrow {lat['narrow']['per_frame_seconds']['median']:.3f} s/frame, "
                f"peak RSS {variants[variant]['peak_rss_mb']:.0f} MB"
            )
        plate = None
        if plan.plate is not None:
            log("bench: plate bundle memory ...")
            plate = run_child(
                {"kind": "plate", "settings": child_settings, "plate": str(data[plan.plate.name])},
                tmp,
            )
        dist = None
        if options.distributed if options.distributed is not None else plan.distributed:
            log("bench: distributed throughput ...")
            try:
                dist = distributed_bench(
                    data[plan.narrow.name], plan.dist_sessions, tmp, options.redis_url
                )
            except Exception as exc:  # reported; the rest of the run stands
                dist = {"skipped": f"failed: {type(exc).__name__}: {exc}"}
        load = None
        if options.load:
            log(f"bench: {plan.load_sessions} concurrent sessions through the Control API ...")
            ref = variants["coarse"]["holders"].get(plan.load_holder.name)
            load = load_bench(data[plan.load_holder.name], ref, plan.load_sessions, tmp)
    for v in variants.values():
        for h in v["holders"].values():
            h.pop("samples", None)
    doc: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "command": options.command,
        "quick": options.quick,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine(),
        "torch_threads": next(iter(variants.values()))["torch_threads"],
        "plan": asdict(plan),
        "holders": [h.name for h in plan.accuracy],
        "variants": variants,
        "plate": plate,
        "distributed": dist,
        "load": load,
    }
    states = [code_start, *(v.get("code") for v in variants.values()), code_state()]
    doc["code"] = {
        "start": code_start,
        "end": states[-1],
        "changed_during_run": any(st != code_start for st in states),
    }
    doc["ratios"] = ratios(variants)
    doc["targets"] = targets(doc)
    doc["seconds"] = round(time.perf_counter() - t_start, 1)
    if options.out is not None:
        from samplescout.atomic import write_json_atomic

        write_json_atomic(options.out, doc)
    if options.markdown is not None:
        write_markdown(options.markdown, to_markdown(doc))
    return doc


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "child":
        sys.exit(child_main(sys.argv[2:]))
    print("usage: python -m samplescout.bench child SPEC.json OUT.json", file=sys.stderr)
    sys.exit(2)
