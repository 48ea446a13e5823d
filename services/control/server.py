"""gRPC server for the ControlService: health, reflection, message sizes, graceful drain."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from concurrent import futures

import grpc
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

from samplescout.control.servicer import ControlServicer
from samplescout.errors import InputError
from samplescout.health import add_health
from samplescout.logs import get_logger
from samplescout.security import AuthInterceptor, TlsFiles, is_loopback
from samplescout.sessions import SessionRunner
from samplescout.v1 import control_pb2, control_pb2_grpc

#: Large enough for a few 12 MP 16-bit frames in one LocalizeFrames request.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
SERVICE_NAME = control_pb2.DESCRIPTOR.services_by_name["ControlService"].full_name

log = get_logger(component="control")


def build_server(
    runner: SessionRunner,
    address: str,
    *,
    max_workers: int = 16,
    tls: TlsFiles | None = None,
    tokens: Mapping[str, str] | None = None,
    insecure: bool = False,
) -> tuple[grpc.Server, int, health.HealthServicer]:
    """Create (not start) a server; returns it, the bound port and its health servicer.

    Without ``tls`` the server listens in plain text, which is allowed only on a
    loopback address or when ``insecure`` is asked for explicitly. With ``tokens`` or
    a client CA (mTLS) every call needs an identity and sees only its own sessions.

    Raises
    ------
    InputError
        Plain text on a non-loopback address without ``insecure``; unreadable TLS files.
    """
    if tls is None and not insecure and not is_loopback(address):
        raise InputError(
            "serve",
            "--grpc",
            f"{address} is not a loopback address: give --tls-cert/--tls-key (and --tls-ca "
            "for mTLS), or --insecure to serve plain text anyway",
        )
    credentials = tls.server_credentials() if tls is not None else None
    mtls = tls is not None and tls.client_ca is not None
    interceptors = [AuthInterceptor(tokens, mtls=mtls)] if (tokens or mtls) else []
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="control"),
        interceptors=interceptors,
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    control_pb2_grpc.add_ControlServiceServicer_to_server(ControlServicer(runner), server)
    health_servicer = add_health(server, [SERVICE_NAME])
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = (
        server.add_secure_port(address, credentials)
        if credentials is not None
        else server.add_insecure_port(address)
    )
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port, health_servicer


def serve_control(
    runner: SessionRunner,
    *,
    address: str,
    stop: threading.Event,
    grace_s: float = 30.0,
    tls: TlsFiles | None = None,
    tokens: Mapping[str, str] | None = None,
    insecure: bool = False,
) -> None:
    """Serve until ``stop`` is set, then stop taking calls and drain running ones."""
    server, port, health_servicer = build_server(
        runner, address, tls=tls, tokens=tokens, insecure=insecure
    )
    server.start()
    log.warning("control service listening", address=address, port=port)
    print(f"samplescout ControlService listening on {address}", flush=True)
    stop.wait()
    health_servicer.enter_graceful_shutdown()
    server.stop(grace_s).wait()
