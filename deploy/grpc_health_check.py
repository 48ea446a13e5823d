#!/usr/bin/env python3
"""Container health check: ask a gRPC server's ``grpc.health.v1.Health`` for SERVING.

Usage: ``samplescout-healthcheck [HOST:PORT] [--service NAME] [--timeout SECONDS]``
(default ``127.0.0.1:50051``). Exit 0 when the server answers SERVING, 1 otherwise.
Used by deploy/compose.yaml; Kubernetes uses native gRPC probes instead.
"""

from __future__ import annotations

import argparse
import sys


def check(target: str, service: str = "", timeout: float = 3.0) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            print(f"{target}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return False
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        print(
            f"{target}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}",
            file=sys.stderr,
        )
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="samplescout-healthcheck", description=__doc__.splitlines()[0])
    p.add_argument("target", nargs="?", default="127.0.0.1:50051")
    p.add_argument("--service", default="", help="health service name ('' = the whole server)")
    p.add_argument("--timeout", type=float, default=3.0)
    ns = p.parse_args(argv)
    return 0 if check(ns.target, ns.service, ns.timeout) else 1


if __name__ == "__main__":
    sys.exit(main())
