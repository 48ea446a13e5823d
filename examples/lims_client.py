"""A LIMS talking to samplescout: start a session, watch its progress, print the result.

Usage::

    samplescout serve control --grpc 127.0.0.1:50051 &      # embedded, or with --redis
    python examples/lims_client.py --bundle /data/run42       # a bundle the server can read
    python examples/lims_client.py --microscope sim:slide:wide

Only grpcio and the generated ``samplescout.v1`` stubs are needed on the client side.
"""

from __future__ import annotations

import argparse
import json
import sys

import grpc

from samplescout.v1 import control_pb2, control_pb2_grpc, pipeline_pb2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:50051")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--bundle", help="frame bundle path as the server sees it")
    source.add_argument("--microscope", help="microscope address, e.g. sim:slide:wide")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait")
    ns = parser.parse_args(argv)

    with grpc.insecure_channel(ns.server) as channel:
        stub = control_pb2_grpc.ControlServiceStub(channel)
        request = control_pb2.StartSessionRequest(context={"lims": "example"})
        if ns.bundle:
            request.bundle_path = ns.bundle
        else:
            request.microscope.address = ns.microscope
        try:
            session_id = stub.StartSession(request, timeout=30).session_id
        except grpc.RpcError as err:
            print(f"StartSession failed: {err.code().name}: {err.details()}", file=sys.stderr)
            return 2 if err.code() == grpc.StatusCode.INVALID_ARGUMENT else 1
        print(f"session {session_id}")
        watch = control_pb2.WatchSessionRequest(session_id=session_id)
        for reply in stub.WatchSession(watch, timeout=ns.timeout):
            event = reply.event
            kind = pipeline_pb2.SessionEventKind.Name(event.kind).removeprefix(
                "SESSION_EVENT_KIND_"
            )
            print(
                f"  #{event.sequence:<4} {kind.lower():<24} frame {event.frame_index} "
                f"count {event.count} {event.message}"
            )
        got = stub.GetResult(control_pb2.GetResultRequest(session_id=session_id), timeout=30)
        if got.state != control_pb2.SESSION_STATE_DONE:
            print(f"session ended {control_pb2.SessionState.Name(got.state)}: {got.message}")
            return 1
        result = json.loads(got.result.json)
        print(f"carrier: {result['carrier']}")
        for sample in result["samples"]:
            x, y = sample["center_mm"]
            print(
                f"  {sample['element']} {sample.get('label', '')}: centre ({x:.2f}, {y:.2f}) mm, "
                f"size {sample['size_mm']} mm, confidence {sample['confidence']:.2f}"
            )
        for code in result["barcodes"]:
            print(f"  barcode {code['format']}: {code['text']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
