"""The ``MicroscopeService`` over gRPC: a server for any driver, and a client driver.

This module needs only grpcio, protobuf and numpy (no torch, no OpenCV), so the
server side runs on a microscope PC: ``pip install --no-deps samplescout`` plus
``pip install grpcio protobuf numpy`` and a driver for the local microscope.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import numpy as np

from samplescout.geometry import Pose
from samplescout.microscope import Microscope, MicroscopeInfo
from samplescout.v1 import microscope_pb2, microscope_pb2_grpc, types_pb2

#: Frames are streamed in chunks well below gRPC's default message limit.
CHUNK_BYTES = 1 << 20
#: Both ends set this explicitly: a header or a chunk never comes near it.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
RAW = "raw-zlib"
SERVICE_NAME = microscope_pb2.DESCRIPTOR.services_by_name["MicroscopeService"].full_name
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


def encode_frame(image: np.ndarray, encoding: str) -> tuple[bytes, str]:
    """Image bytes in ``encoding`` (PNG/TIFF need OpenCV; raw-zlib always works)."""
    if encoding in ("png", "tiff"):
        try:
            import cv2
        except ImportError:  # a lean microscope PC: fall back to raw pixels
            encoding = RAW
        else:
            ok, data = cv2.imencode(".png" if encoding == "png" else ".tiff", image)
            if not ok:
                raise ValueError(f"cannot encode a {image.dtype} {image.shape} frame as {encoding}")
            return data.tobytes(), encoding
    return zlib.compress(np.ascontiguousarray(image).tobytes(), 1), RAW


def decode_frame(data: bytes, header: microscope_pb2.SnapHeader) -> np.ndarray:
    """Inverse of :func:`encode_frame`; raises ``ValueError`` for inconsistent data."""
    if header.encoding == RAW:
        raw = zlib.decompress(data)
        dtype = np.dtype(header.dtype)
        if dtype not in (np.dtype(np.uint8), np.dtype(np.uint16)):
            raise ValueError(f"unsupported dtype {header.dtype!r}")
        shape = (header.height, header.width) + ((header.channels,) if header.channels > 1 else ())
        if len(raw) != int(np.prod(shape)) * dtype.itemsize:
            raise ValueError("frame size does not match its header")
        return np.frombuffer(raw, dtype).reshape(shape).copy()
    from samplescout.bundle import decode_image_bytes

    return decode_image_bytes(data, "microscope", "snap.image")


class MicroscopeServicer(microscope_pb2_grpc.MicroscopeServiceServicer):
    """Serves one :class:`Microscope` driver; calls are serialised (one stage, one camera)."""

    def __init__(self, driver: Microscope) -> None:
        self._driver = driver
        self._lock = threading.Lock()

    def Describe(
        self, request: microscope_pb2.DescribeRequest, context: grpc.ServicerContext
    ) -> microscope_pb2.DescribeResponse:
        info = self._driver.describe()
        return microscope_pb2.DescribeResponse(
            name=info.name,
            camera_width=info.camera_width,
            camera_height=info.camera_height,
            pixel_size_mm=info.pixel_size_mm,
            rotation_deg=info.rotation_deg,
            stage_min_mm=types_pb2.Point2(x=info.stage_min_mm[0], y=info.stage_min_mm[1]),
            stage_max_mm=types_pb2.Point2(x=info.stage_max_mm[0], y=info.stage_max_mm[1]),
            carrier=_CARRIERS.get(info.carrier, types_pb2.CARRIER_UNSPECIFIED),
            context=info.context,
        )

    def MoveTo(
        self, request: microscope_pb2.MoveToRequest, context: grpc.ServicerContext
    ) -> microscope_pb2.MoveToResponse:
        x, y = request.center_mm.x, request.center_mm.y
        if not (np.isfinite(x) and np.isfinite(y)):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "center_mm: must be finite")
        with self._lock:
            rx, ry = self._driver.move_to((x, y))
        return microscope_pb2.MoveToResponse(center_mm=types_pb2.Point2(x=rx, y=ry))

    def Snap(
        self, request: microscope_pb2.SnapRequest, context: grpc.ServicerContext
    ) -> Iterator[microscope_pb2.SnapResponse]:
        encoding = request.encoding or RAW
        if encoding not in (RAW, "png", "tiff"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"encoding: unknown {encoding!r}")
        with self._lock:
            image, pose = self._driver.snap()
        data, used = encode_frame(image, encoding)
        yield microscope_pb2.SnapResponse(
            header=microscope_pb2.SnapHeader(
                pose=types_pb2.Pose(
                    center_mm=types_pb2.Point2(x=pose.center_mm[0], y=pose.center_mm[1]),
                    pixel_size_mm=pose.pixel_size_mm,
                    rotation_deg=pose.rotation_deg,
                ),
                width=int(image.shape[1]),
                height=int(image.shape[0]),
                encoding=used,
                total_bytes=len(data),
                dtype=image.dtype.str,
                channels=1 if image.ndim == 2 else int(image.shape[2]),
            )
        )
        for start in range(0, len(data), CHUNK_BYTES):
            yield microscope_pb2.SnapResponse(chunk=data[start : start + CHUNK_BYTES])


_CARRIERS: dict[str | None, Any] = {
    "slide": types_pb2.CARRIER_SLIDE,
    "multiwell": types_pb2.CARRIER_MULTIWELL,
    "chamber_slide": types_pb2.CARRIER_CHAMBER_SLIDE,
    "petri_dish": types_pb2.CARRIER_PETRI_DISH,
}
_CARRIER_NAMES = {v: k for k, v in _CARRIERS.items()}


def build_microscope_server(driver: Microscope, address: str) -> tuple[grpc.Server, int]:
    """A server for ``driver`` with the health service; not started."""
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="microscope"),
        options=_CHANNEL_OPTIONS,
    )
    microscope_pb2_grpc.add_MicroscopeServiceServicer_to_server(MicroscopeServicer(driver), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ("", SERVICE_NAME):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return server, port


class GrpcMicroscope:
    """A :class:`Microscope` on the other end of a ``MicroscopeService`` connection."""

    def __init__(self, address: str, *, timeout_s: float = 60.0, encoding: str = RAW) -> None:
        self.address = address
        self._channel = grpc.insecure_channel(address, options=_CHANNEL_OPTIONS)
        self._stub = microscope_pb2_grpc.MicroscopeServiceStub(self._channel)
        self._timeout = timeout_s
        self._encoding = encoding

    def describe(self) -> MicroscopeInfo:
        r = self._stub.Describe(microscope_pb2.DescribeRequest(), timeout=self._timeout)
        return MicroscopeInfo(
            name=r.name or f"grpc://{self.address}",
            camera_width=r.camera_width,
            camera_height=r.camera_height,
            pixel_size_mm=r.pixel_size_mm,
            rotation_deg=r.rotation_deg,
            stage_min_mm=(r.stage_min_mm.x, r.stage_min_mm.y),
            stage_max_mm=(r.stage_max_mm.x, r.stage_max_mm.y),
            carrier=_CARRIER_NAMES.get(r.carrier),
            context=dict(r.context),
        )

    def move_to(self, center_mm: tuple[float, float]) -> tuple[float, float]:
        r = self._stub.MoveTo(
            microscope_pb2.MoveToRequest(
                center_mm=types_pb2.Point2(x=center_mm[0], y=center_mm[1])
            ),
            timeout=self._timeout,
        )
        return (r.center_mm.x, r.center_mm.y)

    def snap(self) -> tuple[np.ndarray, Pose]:
        header: microscope_pb2.SnapHeader | None = None
        parts: list[bytes] = []
        for reply in self._stub.Snap(
            microscope_pb2.SnapRequest(encoding=self._encoding), timeout=self._timeout
        ):
            if reply.WhichOneof("part") == "header":
                header = reply.header
            else:
                parts.append(reply.chunk)
        if header is None:
            raise ValueError(f"microscope {self.address} sent no frame header")
        data = b"".join(parts)
        if len(data) != header.total_bytes:
            raise ValueError(
                f"microscope {self.address} sent {len(data)} of {header.total_bytes} bytes"
            )
        p = header.pose
        pose = Pose((p.center_mm.x, p.center_mm.y), p.pixel_size_mm, p.rotation_deg)
        return decode_frame(data, header), pose

    def close(self) -> None:
        self._channel.close()
