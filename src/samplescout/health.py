"""gRPC health service set-up shared by the control front door and the workers."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def add_health(server: grpc.Server, services: Iterable[str] = ()) -> health.HealthServicer:
    """Register the standard health service; ``""`` and ``services`` report SERVING."""
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for name in ("", *services):
        servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return servicer


def start_health_server(address: str) -> tuple[grpc.Server, health.HealthServicer]:
    """A gRPC server with only the health service (for a worker's probes), started."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="health"))
    servicer = add_health(server)
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot listen on {address}")
    server.start()
    return server, servicer
