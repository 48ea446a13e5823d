"""``samplescout`` command line.

Exit status: 0 the run worked (even when no sample was found), 1 an operational
failure, 2 bad input; failures print one line ``samplescout: error: ...`` to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from samplescout import __version__
from samplescout.config import Method, Settings
from samplescout.errors import InputError, SampleScoutError
from samplescout.progress import ProgressBar

CARRIER_CHOICES = ("slide", "multiwell", "chamber_slide", "petri_dish")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"samplescout: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="samplescout",
        description=(
            "Find where the samples are on a microscope's sample holder from overview "
            "images: coarse selection, full-resolution identification of the selected "
            "regions only, fusion in holder millimetres."
        ),
    )
    parser.add_argument("--version", action="version", version=f"samplescout {__version__}")
    parser.add_argument(
        "--log-format", choices=("console", "json"), help="log line format on stderr"
    )
    parser.add_argument("--log-level", help="debug, info, warning (default), error")
    parser.add_argument(
        "--json",
        dest="log_format",
        action="store_const",
        const="json",
        help="JSON log lines on stderr (same as --log-format json); no progress bars",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress bars (they also stay off when stderr is not a terminal)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "simulate",
        help="render a simulated holder as a frame bundle plus ground truth",
        description="Render a simulated overview of a sample holder: writes OUT/manifest.json, "
        "the frames and OUT/ground_truth.json (a result in the SPEC format).",
    )
    p.add_argument("out", type=Path, help="bundle directory to write (replaced atomically)")
    p.add_argument("--carrier", choices=CARRIER_CHOICES, default="slide")
    p.add_argument(
        "--profile",
        choices=("wide", "narrow"),
        default="wide",
        help="wide: one 4000x3000 frame of the whole holder; narrow: many 1600x1200 frames",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--difficulty", choices=("easy", "hard"), default="easy")
    p.add_argument("--format", dest="image_format", choices=("png", "jpg", "tif"), default="png")
    p.add_argument(
        "--frame-scale",
        type=float,
        default=1.0,
        help="shrink frames by this factor (pixel size grows) for quick runs",
    )

    p = sub.add_parser(
        "localize",
        help="localize the samples of a frame bundle and write the result JSON",
        description="Run the whole pipeline on a frame bundle in this process (embedded "
        "default) and write the SPEC result document.",
    )
    p.add_argument(
        "bundle", type=Path, nargs="?", help="frame bundle directory (manifest.json + images)"
    )
    p.add_argument(
        "--microscope",
        help="run a live session instead: sim:CARRIER[:PROFILE], grpc://HOST:PORT or replay:BUNDLE",
    )
    p.add_argument(
        "--adaptive",
        action="store_true",
        help="with --microscope: choose frames adaptively (start where samples are likely, "
        "follow edges, stop when the localization is unambiguous) instead of a full raster",
    )
    p.add_argument("--out", type=Path, default=Path("result.json"), help="result JSON path")
    p.add_argument("--overlay", type=Path, help="also write an overlay PNG")
    p.add_argument(
        "--report", type=Path, help="also write a self-contained HTML report (docs/report.md)"
    )
    _pipeline_options(p)

    p = sub.add_parser(
        "demo",
        help="simulate a slide holder, localize it and write result.json and overlay.png",
        description="The main job end to end on the embedded default: simulate a holder, run "
        "the pipeline, print the localization and compare it with the simulator's truth.",
    )
    p.add_argument("--out-dir", type=Path, default=Path("demo-out"))
    p.add_argument("--carrier", choices=CARRIER_CHOICES, default="slide")
    p.add_argument("--profile", choices=("wide", "narrow"), default="wide")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--frame-scale", type=float, default=1.0)
    _pipeline_options(p, carrier=False)

    p = sub.add_parser(
        "serve",
        help="run a service: control (gRPC front door) or a pipeline worker",
        description="Run one service. `control` serves the LIMS-facing ControlService over "
        "gRPC, on the embedded pipeline in this process or, with --redis, as the front door "
        "of the distributed services. acquire/select/identify/fuse are workers on Redis "
        "Streams (they need --redis) with a gRPC health endpoint for probes. SIGTERM drains.",
    )
    p.add_argument(
        "service", choices=("control", "acquire", "select", "identify", "fuse", "microscope")
    )
    p.add_argument(
        "--sim",
        metavar="CARRIER[:PROFILE]",
        help="microscope: serve the simulator (e.g. slide, multiwell:wide)",
    )
    p.add_argument(
        "--redis",
        dest="redis_url",
        help="Redis URL, e.g. redis://host:6379/0 (default: $SAMPLESCOUT_REDIS_URL; "
        "control without it runs embedded)",
    )
    p.add_argument(
        "--grpc",
        help="listen address host:port (control default 127.0.0.1:50051; workers: health only)",
    )
    p.add_argument("--metrics-port", type=int, default=0, help="Prometheus /metrics port (0: off)")
    p.add_argument("--consumer", help="consumer name in the group (default: host name)")
    p.add_argument("--tls-cert", type=Path, help="control: server certificate (PEM)")
    p.add_argument("--tls-key", type=Path, help="control: server private key (PEM)")
    p.add_argument(
        "--tls-ca", type=Path, help="control: client CA (PEM); clients then need certificates"
    )
    p.add_argument(
        "--tokens",
        type=Path,
        help='control: JSON file {"<token>": "<identity>"}; calls need "authorization: Bearer"',
    )
    p.add_argument(
        "--insecure",
        action="store_true",
        help="control: allow plain text on a non-loopback address",
    )
    p.add_argument(
        "--bundle-root",
        type=Path,
        help="only bundles under this directory may be named in StartSession",
    )
    _pipeline_options(p, carrier=False)
    _add_train_parser(sub)
    _add_plan_parser(sub)
    _add_bench_parser(sub)

    p = sub.add_parser(
        "eval",
        help="score localization against simulator ground truth over a set of bundles",
        description="Localize every bundle of SET_DIR that holds ground_truth.json (or read "
        "its result.json with --precomputed), match samples greedily by IoU >= 0.5 and print "
        "recall, precision, mean IoU, median centre error and the share of holders with every "
        "sample found, per carrier, per carrier/profile and overall. With --make-set the set "
        "is simulated first (existing bundles are kept).",
    )
    p.add_argument("set_dir", type=Path, help="directory of bundles with ground_truth.json")
    p.add_argument("--out", type=Path, help="write the table (and per-holder rows) as JSON")
    p.add_argument("--precomputed", action="store_true", help="score <bundle>/result.json")
    p.add_argument(
        "--recognise-carrier",
        action="store_true",
        help="ignore the manifests' carrier, so carrier recognition is measured too",
    )
    p.add_argument(
        "--misses",
        action="store_true",
        help="also list every missed and every false sample, per holder (--out has them too)",
    )
    p.add_argument("--make-set", action="store_true", help="simulate the set into SET_DIR first")
    p.add_argument("--seeds", default="100-107", help="seeds for --make-set, e.g. 100-107,120")
    p.add_argument("--difficulty", choices=("easy", "hard"), default="hard")
    p.add_argument(
        "--profiles", default="wide,narrow", help="camera profiles for --make-set (comma list)"
    )
    p.add_argument("--carriers", default=",".join(CARRIER_CHOICES), help="carriers for --make-set")
    p.add_argument("--frame-scale", type=float, default=1.0, help="frame scale for --make-set")
    _pipeline_options(p, carrier=False)
    p = sub.add_parser(
        "fuzz",
        help="feed mutated images and manifests to the decoders for a bounded time",
        description="Bounded fuzz run of the image decoders and the manifest parser: every "
        "input must be decoded or refused with a named field, never crash.",
    )
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    return parser


def _pipeline_options(p: argparse.ArgumentParser, *, carrier: bool = True) -> None:
    p.add_argument(
        "--method",
        choices=[m.value for m in Method],
        help="coarse: selection on coarse data then identification of the selected "
        "crops (default); classical: the full-resolution classical baseline",
    )
    p.add_argument("--top-k", type=int, help="identify at most K regions per frame (0: all)")
    p.add_argument(
        "--read-budget",
        type=float,
        help="identify regions only while their crops stay within this share of a frame's "
        "full-resolution pixels (0: no budget)",
    )
    p.add_argument("--coarse-factor", type=int, help="coarse data reduction (default 8)")
    if carrier:
        p.add_argument(
            "--carrier",
            choices=CARRIER_CHOICES,
            help="override the bundle's carrier (default: manifest, else recognised)",
        )


def _settings(ns: argparse.Namespace) -> Settings:
    try:
        return Settings.from_env(
            method=getattr(ns, "method", None),
            top_k=getattr(ns, "top_k", None),
            read_budget=getattr(ns, "read_budget", None),
            coarse_factor=getattr(ns, "coarse_factor", None),
            redis_url=getattr(ns, "redis_url", None),
            consumer=getattr(ns, "consumer", None),
            log_format=ns.log_format,
            log_level=ns.log_level,
        )
    except ValueError as exc:
        raise InputError("settings", "", str(exc)) from None


def cmd_simulate(ns: argparse.Namespace, settings: Settings) -> int:
    from samplescout.acquire.simulator import simulate
    from samplescout.progress import progress

    if ns.frame_scale <= 0 or ns.frame_scale > 1:
        raise InputError("simulate", "--frame-scale", "must be in (0, 1]")
    # simulate() has no per-frame hook yet: a spinner while it renders.
    with progress(None, f"simulating {ns.carrier}", enabled=_progress_enabled(ns, settings)):
        out = simulate(
            ns.out,
            carrier=ns.carrier,
            profile=ns.profile,
            seed=ns.seed,
            difficulty=ns.difficulty,
            image_format=ns.image_format,
            frame_scale=ns.frame_scale,
        )
    manifest = json.loads((out / "manifest.json").read_text())
    print(f"wrote {out}/ ({len(manifest['frames'])} frames, ground_truth.json)")
    return 0


def _localize(
    bundle_path: Path | None, ns: argparse.Namespace, settings: Settings
) -> dict[str, Any]:
    from samplescout.acquire.drivers import open_source
    from samplescout.app import EmbeddedPipeline, load_stages
    from samplescout.progress import progress

    microscope = getattr(ns, "microscope", None)
    if (bundle_path is None) == (microscope is None):
        raise InputError("localize", "BUNDLE", "give a bundle directory or --microscope, not both")
    if getattr(ns, "adaptive", False):
        from samplescout.acquire.drivers import open_microscope
        from samplescout.app import localize_adaptive

        if microscope is None:
            raise InputError("localize", "--adaptive", "needs --microscope")
        carrier = getattr(ns, "carrier", None)
        return localize_adaptive(open_microscope(microscope), settings, carrier=carrier)[0]
    source = open_source(
        bundle_path=None if bundle_path is None else str(bundle_path), microscope=microscope
    )
    pipeline = EmbeddedPipeline(settings=settings, stages=load_stages(settings, source.context))
    with progress(
        source.frame_count or None,
        f"localizing {source.name}",
        enabled=_progress_enabled(ns, settings),
    ) as bar:
        return pipeline.run(_ProgressSource(source, bar), carrier=getattr(ns, "carrier", None))


def _progress_enabled(ns: argparse.Namespace, settings: Settings) -> bool | None:
    """False with --quiet or JSON logs, else None (bars when stderr is a terminal)."""
    if getattr(ns, "quiet", False) or settings.log_format == "json":
        return False
    return None


class _ProgressSource:
    """A FrameSource that advances ``bar`` once the pipeline is done with each frame."""

    def __init__(self, source: Any, bar: ProgressBar) -> None:
        self._source = source
        self._bar = bar
        self.name: str = source.name
        self.carrier: str | None = source.carrier
        self.context: dict[str, str] = source.context
        self.frame_count: int = source.frame_count

    def frames(self) -> Iterator[Any]:
        for frame in self._source.frames():
            yield frame
            self._bar.advance()


def _summary(result: dict[str, Any]) -> str:
    lines = [f"carrier: {result['carrier']}, {len(result['samples'])} samples"]
    for s in result["samples"]:
        size = "x".join(f"{v:.2f}" for v in s["size_mm"])
        lines.append(
            f"  {s['element']} {s.get('label', '')}: {s['shape']} centre "
            f"({s['center_mm'][0]:.3f}, {s['center_mm'][1]:.3f}) mm, size {size} mm, "
            f"angle {s['angle_deg']:.2f} deg, confidence {s['confidence']:.2f}"
        )
    st = result["stats"]
    if st.get("full_res_pixels"):
        share = 100.0 * st.get("full_res_pixels_read", 0) / st["full_res_pixels"]
        lines.append(
            f"stats: {st['frames']} frames, read {share:.1f}% of full-res pixels, "
            f"{st.get('seconds', 0):.2f} s"
        )
    return "\n".join(lines)


def cmd_localize(ns: argparse.Namespace, settings: Settings) -> int:
    from samplescout.atomic import write_json_atomic
    from samplescout.bundle import open_bundle
    from samplescout.overlay import write_overlay

    result = _localize(ns.bundle, ns, settings)
    write_json_atomic(ns.out, result)
    if ns.overlay:
        if ns.bundle is None:
            raise InputError("localize", "--overlay", "needs a bundle (record one with simulate)")
        write_overlay(ns.overlay, open_bundle(ns.bundle, check_images=False), result)
    if ns.report:
        from samplescout.report import write_report

        bundle = None if ns.bundle is None else open_bundle(ns.bundle, check_images=False)
        write_report(ns.report, result, bundle=bundle, source=ns.microscope)
    print(_summary(result))
    written = [str(p) for p in (ns.out, ns.overlay, ns.report) if p]
    print("wrote " + ", ".join(written))
    return 0


def cmd_demo(ns: argparse.Namespace, settings: Settings) -> int:
    from samplescout.acquire.simulator import simulate
    from samplescout.atomic import write_json_atomic
    from samplescout.bundle import open_bundle
    from samplescout.geometry import polygon_iou
    from samplescout.overlay import write_overlay
    from samplescout.progress import progress
    from samplescout.report import write_report

    out: Path = ns.out_dir
    with progress(None, f"simulating {ns.carrier}", enabled=_progress_enabled(ns, settings)):
        bundle_dir = simulate(
            out / "bundle",
            carrier=ns.carrier,
            profile=ns.profile,
            seed=ns.seed,
            frame_scale=ns.frame_scale,
        )
    print(f"simulated {ns.carrier} holder ({ns.profile} camera) in {bundle_dir}/")
    result = _localize(bundle_dir, ns, settings)
    write_json_atomic(out / "result.json", result)
    bundle = open_bundle(bundle_dir, check_images=False)
    write_overlay(out / "overlay.png", bundle, result)
    write_report(out / "report.html", result, bundle=bundle)
    print(_summary(result))
    truth = json.loads((bundle_dir / "ground_truth.json").read_text())
    found = 0
    for gt in truth["samples"]:
        best = max(
            (polygon_iou(gt["polygon_mm"], s["polygon_mm"]) for s in result["samples"]), default=0.0
        )
        found += best >= 0.5
        print(f"  truth {gt['element']} {gt.get('label', '')}: best IoU {best:.3f}")
    print(f"found {found} of {len(truth['samples'])} samples (IoU >= 0.5)")
    print(f"wrote {out / 'result.json'}, {out / 'overlay.png'} and {out / 'report.html'}")
    return 0


def cmd_serve(ns: argparse.Namespace, settings: Settings) -> int:
    import signal
    import threading

    from samplescout import app
    from samplescout.metrics import serve_metrics

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    serve_metrics(ns.metrics_port)
    if ns.service == "microscope":
        from samplescout.acquire.drivers import SimulatedMicroscope
        from samplescout.acquire.remote import build_microscope_server

        if not ns.sim:
            raise InputError("serve", "--sim", "serve microscope needs --sim CARRIER[:PROFILE]")
        carrier, _, profile = ns.sim.partition(":")
        try:
            driver = SimulatedMicroscope(carrier=carrier, profile=profile or "narrow")
        except ValueError as exc:
            raise InputError("serve", "--sim", str(exc)) from None
        address = ns.grpc or "127.0.0.1:50070"
        server, _ = build_microscope_server(driver, address)
        server.start()
        print(
            f"samplescout MicroscopeService (simulator {ns.sim}) listening on {address}", flush=True
        )
        stop.wait()
        server.stop(10).wait()
        return 0
    if ns.service != "microscope":
        from samplescout.threads import set_threads

        threads = set_threads(settings.threads)
        app.log.info("cpu threads", service=ns.service, threads=threads)
    if ns.service == "control":
        from samplescout.control.server import serve_control

        runner: Any
        if settings.redis_url:
            runner = app.DistributedRunner(
                app.connect_redis(settings), settings=settings, bundle_root=ns.bundle_root
            )
        else:
            runner = app.SessionManager(
                app.EmbeddedPipeline(settings=settings), bundle_root=ns.bundle_root
            )
        from samplescout.security import TlsFiles, load_tokens

        if (ns.tls_cert is None) != (ns.tls_key is None):
            raise InputError("serve", "--tls-cert/--tls-key", "give both or neither")
        if ns.tls_ca is not None and ns.tls_cert is None:
            raise InputError("serve", "--tls-ca", "needs --tls-cert and --tls-key")
        tls = TlsFiles(ns.tls_cert, ns.tls_key, ns.tls_ca) if ns.tls_cert else None
        serve_control(
            runner,
            address=ns.grpc or "127.0.0.1:50051",
            stop=stop,
            tls=tls,
            tokens=load_tokens(ns.tokens) if ns.tokens else None,
            insecure=ns.insecure,
        )
        return 0
    if not settings.redis_url:
        raise InputError(
            "serve",
            "--redis",
            f"the {ns.service} worker needs a Redis URL (or SAMPLESCOUT_REDIS_URL)",
        )
    app.run_worker_service(ns.service, settings=settings, grpc_address=ns.grpc, stop=stop)
    return 0


def _add_train_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="train a selection or identification model on simulated data",
        description="Render simulator frames, auto-annotate them by image processing, train "
        "a model (Adam, fixed seeds) until --loss-threshold or --steps, and register it "
        "(name/version with metadata) in --registry.",
    )
    p.add_argument("task", choices=("select", "select-patch", "identify"))
    p.add_argument(
        "--registry", type=Path, default=None, help="registry directory (default: the shipped one)"
    )
    p.add_argument("--steps", type=int, default=None, help="max optimiser steps")
    p.add_argument("--loss-threshold", type=float, default=0.0, help="stop at this smoothed loss")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument(
        "--data-seeds", type=int, nargs="+", default=None, help="simulator scene seeds of the data"
    )
    p.add_argument("--narrow-frames", type=int, default=3, help="narrow-camera frames per scene")
    p.add_argument("--name", default=None, help="registry name (default per task)")
    p.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="context the model is for (microscope, camera, light, carriers=a,b); repeatable",
    )
    p.add_argument("--no-alias", action="store_true", help="do not move the <task>-default alias")
    p.add_argument(
        "--width", type=int, default=None, help="network width (default: the architecture's)"
    )
    p.add_argument(
        "--input-channels",
        type=int,
        choices=(2, 3),
        default=None,
        help="select: 3 adds the classical coherent-edge z-score to the intensity and "
        "high-pass channels",
    )
    p.add_argument(
        "--coarse-scales",
        type=int,
        nargs="+",
        default=[1],
        help="select: train on each frame reduced by the coarse factor times each of these "
        "(1 2: also coarse pixels twice as large, as half-scale frames give)",
    )
    p.add_argument(
        "--architecture",
        choices=("unet", "prior-unet"),
        default="unet",
        help="select: the plain U-Net, or the U-Net as a learned correction of the classical "
        "edge evidence (reads 3 channels)",
    )
    p.add_argument(
        "--ignore-markers",
        action="store_true",
        help="select: marker-pen strokes are ignored in the targets instead of background",
    )
    p.add_argument(
        "--ignore-band",
        type=int,
        default=0,
        metavar="PX",
        help="select: background within PX coarse pixels of an edge target is ignored",
    )
    p.add_argument(
        "--residual-weight",
        type=float,
        default=None,
        help="select prior-unet: weight of the penalty on the network's correction of the "
        "classical edge evidence (default 0.01)",
    )
    p.add_argument(
        "--eval-seeds",
        type=int,
        nargs="+",
        default=None,
        help="identify: scene seeds (never trained on) whose crops measure the accuracy "
        "stored in the model's metrics",
    )
    p.add_argument(
        "--balanced",
        action="store_true",
        help="identify: draw rare classes more often (about 1/sqrt of their count)",
    )
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where to train (auto: CUDA when available); the shipped weights came from cpu",
    )


def _train_device(name: str) -> Any:
    import torch

    if name == "auto":
        return None
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("train", "--device", "cuda was asked for but PyTorch sees no CUDA device")
    return torch.device(name)


def cmd_train(ns: argparse.Namespace, settings: Settings) -> int:
    context: dict[str, Any] = {}
    for item in ns.context:
        key, sep, value = item.partition("=")
        if not sep:
            raise InputError("train", "--context", f"{item!r}: expected KEY=VALUE")
        context[key] = value.split(",") if key == "carriers" else value
    for flag, value in (("--balanced", ns.balanced), ("--eval-seeds", ns.eval_seeds)):
        if value and ns.task != "identify":
            raise InputError("train", flag, "applies to the identification model only")
    if ns.task != "select":
        for flag, changed in (
            ("--architecture", ns.architecture != "unet"),
            ("--ignore-markers", ns.ignore_markers),
            ("--ignore-band", ns.ignore_band != 0),
            ("--residual-weight", ns.residual_weight is not None),
        ):
            if changed:
                raise InputError("train", flag, "applies to the select task only")
    if ns.ignore_band < 0:
        raise InputError("train", "--ignore-band", "must be >= 0")
    if ns.residual_weight is not None:
        if ns.architecture != "prior-unet":
            raise InputError("train", "--residual-weight", "applies to --architecture prior-unet")
        if not ns.residual_weight >= 0:
            raise InputError("train", "--residual-weight", "must be >= 0")
    if ns.architecture == "prior-unet" and ns.input_channels not in (None, 3):
        raise InputError("train", "--input-channels", "the prior U-Net reads 3 channels")
    channels = ns.input_channels or (3 if ns.architecture == "prior-unet" else 2)
    if ns.task == "identify":
        for flag, changed in (
            ("--input-channels", ns.input_channels is not None),
            ("--coarse-scales", ns.coarse_scales != [1]),
        ):
            if changed:
                raise InputError("train", flag, "applies to the selection models only")
    if any(m < 1 or m > 8 for m in ns.coarse_scales):
        raise InputError("train", "--coarse-scales", "multipliers must be between 1 and 8")
    common: dict[str, Any] = {
        "data_seeds": ns.data_seeds,
        "loss_threshold": ns.loss_threshold,
        "seed": ns.seed,
        "context": context or None,
        "narrow_frames": ns.narrow_frames,
        "device": _train_device(ns.device),
        "width": ns.width,
    }
    if ns.steps is not None:
        common["steps"] = ns.steps
    if ns.task == "identify":
        from samplescout.identify import train as identify_train

        kw: dict[str, Any] = {"name": ns.name} if ns.name else {}
        if ns.no_alias:
            kw["aliases"] = ()
        rec = identify_train.train(
            ns.registry, balanced=ns.balanced, eval_seeds=ns.eval_seeds, **common, **kw
        )
    else:
        from samplescout.select import train as select_train

        arch = "patch" if ns.task == "select-patch" else ns.architecture
        rec = select_train.train(
            ns.registry,
            architecture=arch,
            name=ns.name,
            aliases=() if ns.no_alias else None,
            channels=channels,
            scales=tuple(ns.coarse_scales),
            ignore_markers=ns.ignore_markers,
            ignore_band=ns.ignore_band,
            **({} if ns.residual_weight is None else {"residual_weight": ns.residual_weight}),
            **common,
        )
    t = rec.metadata["training"]
    print(
        f"registered {rec.ref} in {rec.path.parent.parent}: {t['steps']} steps, "
        f"loss {t['first_loss']:.3f} -> {t['final_loss']:.3f}, {t['seconds']:.0f}s"
    )
    metrics = rec.metadata.get("metrics") or {}
    if "shape_accuracy" in metrics:
        per = ", ".join(f"{k} {v['accuracy']:.2f}" for k, v in metrics["per_class"].items())
        print(f"held-out shape accuracy {metrics['shape_accuracy']:.3f} ({per})")
    return 0


def cmd_eval(ns: argparse.Namespace, settings: Settings) -> int:
    from samplescout import evaluate
    from samplescout.atomic import write_json_atomic

    if ns.make_set:
        try:
            seeds = evaluate.parse_seeds(ns.seeds)
        except ValueError as exc:
            raise InputError("eval", "--seeds", str(exc)) from None
        carriers = [c for c in ns.carriers.split(",") if c]
        profiles = [p for p in ns.profiles.split(",") if p]
        if not set(carriers) <= set(CARRIER_CHOICES):
            raise InputError("eval", "--carriers", f"one or more of {', '.join(CARRIER_CHOICES)}")
        if not set(profiles) <= {"wide", "narrow"}:
            raise InputError("eval", "--profiles", "wide and/or narrow")
        if not 0 < ns.frame_scale <= 1:
            raise InputError("eval", "--frame-scale", "must be in (0, 1]")
        made = evaluate.make_set(
            ns.set_dir,
            seeds=seeds,
            difficulty=ns.difficulty,
            profiles=profiles,
            carriers=carriers,
            frame_scale=ns.frame_scale,
        )
        print(f"set {ns.set_dir}/: {len(made)} bundles")
    if not ns.set_dir.is_dir():
        raise InputError(str(ns.set_dir), "set_dir", "not a directory")
    localizer = (
        None
        if ns.precomputed
        else evaluate.pipeline_localizer(settings, recognise_carrier=ns.recognise_carrier)
    )
    doc = evaluate.evaluate_set(ns.set_dir, localize=localizer, precomputed=ns.precomputed)
    print(evaluate.format_table(doc))
    if ns.misses:
        print(evaluate.format_misses(doc))
    if doc["models"]:
        print("models: " + ", ".join(doc["models"]))
    if ns.out:
        write_json_atomic(ns.out, doc)
        print(f"wrote {ns.out}")
    return 0


def cmd_fuzz(ns: argparse.Namespace, settings: Settings) -> int:
    from samplescout import fuzz

    counts = fuzz.run(seconds=ns.seconds, seed=ns.seed)
    print(
        f"fuzzed for {ns.seconds:.0f} s: {counts['images']} images, "
        f"{counts['manifests']} manifests, no contract violation"
    )
    return 0


def _add_plan_parser(sub: Any) -> None:
    p = sub.add_parser(
        "plan",
        help="the acquisition plan (positions per sample, plate wells) for a result JSON",
        description="From a localization result, the positions that tile every sample with "
        "the given field of view and overlap (holder mm, stage µm with --calibration), and "
        "for plates the selected wells and a useq-schema WellPlatePlan.",
    )
    p.add_argument("result", type=Path, help="result JSON (SPEC section 3)")
    p.add_argument("--fov-mm", type=float, default=0.5, help="objective field of view (mm)")
    p.add_argument("--overlap", type=float, default=0.1, help="overlap of neighbours, [0, 1)")
    p.add_argument("--wells", help="plates: wells to image, e.g. A1,B2, or 'occupied'")
    p.add_argument(
        "--calibration", help="holder mm -> stage µm affine: 6 numbers a,b,c,d,e,f (row-major)"
    )
    p.add_argument("--out", type=Path, help="write the plan JSON here (default: stdout)")


def cmd_plan(ns: argparse.Namespace, settings: Settings) -> int:
    from samplescout.atomic import write_json_atomic
    from samplescout.control.scanplan import scan_plan

    try:
        result = json.loads(ns.result.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(str(ns.result), "", f"cannot read the result JSON ({exc})") from None
    calibration = None
    if ns.calibration:
        try:
            calibration = [float(v) for v in ns.calibration.split(",")]
        except ValueError:
            raise InputError("plan", "--calibration", "must be 6 numbers") from None
    plan = scan_plan(
        result, fov_mm=ns.fov_mm, overlap=ns.overlap, wells=ns.wells, calibration=calibration
    )
    if ns.out is None:
        print(json.dumps(plan, indent=1))
        return 0
    write_json_atomic(ns.out, plan)
    for region in plan["regions"]:
        print(f"  {region['element']} {region['label']}: {len(region['positions_mm'])} positions")
    print(f"{plan['positions']} positions; wrote {ns.out}")
    return 0


def _add_bench_parser(sub: Any) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmark coarse-to-fine against the full-res CNN and the classical baseline",
        description="Time, memory, pixels read and accuracy of coarse-to-fine (coarse, "
        "coarse-cnn), the identification CNN dense over the full-res frame and the classical "
        "full-res baseline, on the same simulated frames, plus distributed throughput; "
        "writes JSON and a markdown table (docs/benchmarks.md).",
    )
    p.add_argument("--quick", action="store_true", help="small frames, few repeats (~1 min)")
    p.add_argument("--out", type=Path, default=Path("bench.json"), help="JSON document path")
    p.add_argument("--markdown", type=Path, help="write the tables into this markdown file")
    p.add_argument(
        "--load", action="store_true", help="also 20 concurrent sessions through the Control API"
    )
    p.add_argument(
        "--work-dir", type=Path, help="where the simulated set is kept (default: a temp dir)"
    )
    p.add_argument("--frame-scale", type=float, help="override the frames' scale (tests)")
    p.add_argument(
        "--no-distributed", action="store_true", help="skip the distributed (Redis) part"
    )
    p.add_argument(
        "--redis",
        dest="bench_redis_url",
        default=None,
        help="an empty Redis database for the distributed part, deleted afterwards "
        "(default: redis://127.0.0.1:6379/13; never $SAMPLESCOUT_REDIS_URL)",
    )


def cmd_bench(ns: argparse.Namespace, settings: Settings) -> int:
    from samplescout.bench import DEFAULT_REDIS_URL, BenchOptions, run_bench

    if ns.frame_scale is not None and not 0 < ns.frame_scale <= 1:
        raise InputError("bench", "--frame-scale", "must be in (0, 1]")
    options = BenchOptions(
        quick=ns.quick,
        out=ns.out,
        markdown=ns.markdown,
        load=ns.load,
        work_dir=ns.work_dir,
        frame_scale=ns.frame_scale,
        distributed=False if ns.no_distributed else None,
        redis_url=ns.bench_redis_url or DEFAULT_REDIS_URL,
        command="samplescout " + " ".join(sys.argv[1:]) if sys.argv[1:] else "samplescout bench",
    )
    doc = run_bench(options, settings)
    for t in doc["targets"]:
        print(f"{'ok  ' if t['met'] else 'MISS'} {t['target']}: {t['measured']}")
    written = [str(p) for p in (ns.out, ns.markdown) if p]
    print(f"bench done in {doc['seconds']:.0f} s; wrote " + ", ".join(written))
    return 0


COMMANDS = {
    "bench": cmd_bench,
    "plan": cmd_plan,
    "simulate": cmd_simulate,
    "localize": cmd_localize,
    "demo": cmd_demo,
    "serve": cmd_serve,
    "fuzz": cmd_fuzz,
    "train": cmd_train,
    "eval": cmd_eval,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    if ns.command is None:
        parser.print_help()
        return 2
    try:
        settings = _settings(ns)
        from samplescout.logs import configure_logging

        configure_logging(settings.log_format, settings.log_level)
        return COMMANDS[ns.command](ns, settings)
    except SampleScoutError as exc:
        print(f"samplescout: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("samplescout: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"samplescout: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
