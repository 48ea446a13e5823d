"""``samplescout.v1.ControlService``: the LIMS-facing front door."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator

import grpc
import numpy as np
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from samplescout.bundle import MAX_FRAMES, decode_image_bytes
from samplescout.contracts import PROTO_TO_CARRIER, pose_from_proto
from samplescout.errors import DeadlineExceeded, InputError, SampleScoutError
from samplescout.geometry import Pose
from samplescout.security import current_identity
from samplescout.sessions import SessionRequest, SessionRunner, SessionState
from samplescout.v1 import control_pb2, control_pb2_grpc, pipeline_pb2, types_pb2

STATE_TO_PROTO = {
    SessionState.RUNNING: control_pb2.SESSION_STATE_RUNNING,
    SessionState.DONE: control_pb2.SESSION_STATE_DONE,
    SessionState.FAILED: control_pb2.SESSION_STATE_FAILED,
    SessionState.CANCELLED: control_pb2.SESSION_STATE_CANCELLED,
    SessionState.UNKNOWN: control_pb2.SESSION_STATE_UNSPECIFIED,
}


def invalid_argument(context: grpc.ServicerContext, exc: InputError) -> None:
    """Abort with ``INVALID_ARGUMENT`` and a ``google.rpc.BadRequest`` naming the field."""
    detail = any_pb2.Any()
    detail.Pack(
        error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=exc.field or exc.source, description=exc.message
                )
            ]
        )
    )
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=str(exc), details=[detail])
    context.abort_with_status(rpc_status.to_status(status))


def result_to_proto(doc: dict[str, object]) -> types_pb2.LocalizationResult:
    msg = types_pb2.LocalizationResult(json=json.dumps(doc))
    carrier = doc.get("carrier")
    for value, name in PROTO_TO_CARRIER.items():
        if name == carrier:
            msg.carrier = value
    for s in doc.get("samples", []):  # type: ignore[attr-defined]
        sample = msg.samples.add(
            element=s["element"],
            shape=s["shape"],
            size_mm=s["size_mm"],
            angle_deg=s["angle_deg"],
            confidence=s["confidence"],
            label=s.get("label", ""),
        )
        sample.center_mm.x, sample.center_mm.y = s["center_mm"]
        for x, y in s["polygon_mm"]:
            sample.polygon_mm.add(x=x, y=y)
        if s.get("occupied") is not None:
            sample.occupied = s["occupied"]
    plate = doc.get("plate")
    if isinstance(plate, dict):
        msg.plate.wells, msg.plate.rows, msg.plate.cols = (
            plate["wells"],
            plate["rows"],
            plate["cols"],
        )
        msg.plate.a1_center_mm.x, msg.plate.a1_center_mm.y = plate["a1_center_mm"]
        msg.plate.rotation_deg = plate["rotation_deg"]
        msg.plate.well_spacing_mm.x, msg.plate.well_spacing_mm.y = plate["well_spacing_mm"]
        msg.plate.well_size_mm = plate["well_size_mm"]
        msg.plate.circular_wells = plate["circular_wells"]
    for b in doc.get("barcodes", []):  # type: ignore[attr-defined]
        code = msg.barcodes.add(format=b["format"], text=b["text"])
        for x, y in b["polygon_mm"]:
            code.polygon_mm.add(x=x, y=y)
    msg.stats.update(doc.get("stats", {}))
    return msg


def frame_from_proto(frame: types_pb2.Frame, where: str) -> tuple[np.ndarray, Pose]:
    """Decode and validate one frame of a request; ``where`` names it in errors."""
    if frame.WhichOneof("data") != "image":
        raise InputError("request", f"{where}.image", "frames must carry image bytes")
    pose = pose_from_proto(frame.pose)
    values = (*pose.center_mm, pose.pixel_size_mm, pose.rotation_deg)
    if not all(math.isfinite(v) for v in values):
        raise InputError("request", f"{where}.pose", "must be finite")
    if pose.pixel_size_mm <= 0:
        raise InputError("request", f"{where}.pose.pixel_size_mm", "must be > 0")
    return decode_image_bytes(frame.image, "request", f"{where}.image"), pose


class ControlServicer(control_pb2_grpc.ControlServiceServicer):
    """Thin gRPC layer over a :class:`~samplescout.sessions.SessionRunner`."""

    def __init__(self, runner: SessionRunner) -> None:
        self._runner = runner

    def _session(self, session_id: str, context: grpc.ServicerContext) -> tuple[SessionState, str]:
        """The session's state, if it exists and belongs to the caller (else abort)."""
        state, message = self._runner.state(session_id)
        if state is SessionState.UNKNOWN:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no session {session_id!r}")
        identity = current_identity.get()
        if identity is not None and self._runner.owner(session_id) != identity:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, f"session {session_id!r} is not yours")
        return state, message

    def StartSession(
        self, request: control_pb2.StartSessionRequest, context: grpc.ServicerContext
    ) -> control_pb2.StartSessionResponse:
        which = request.WhichOneof("source")
        req = SessionRequest(
            bundle_path=request.bundle_path if which == "bundle_path" else None,
            microscope=request.microscope.address if which == "microscope" else None,
            adaptive=which == "microscope" and request.microscope.adaptive,
            upload_frames=request.upload.frame_count if which == "upload" else 0,
            carrier=PROTO_TO_CARRIER.get(request.carrier),
            context=dict(request.context),
            method=request.method or None,
            owner=current_identity.get(),
        )
        try:
            if which == "upload" and not 1 <= request.upload.frame_count <= MAX_FRAMES:
                raise InputError("request", "upload.frame_count", f"must be in [1, {MAX_FRAMES}]")
            sid = self._runner.start(req)
        except InputError as exc:
            invalid_argument(context, exc)
            raise  # unreachable: abort raises
        return control_pb2.StartSessionResponse(session_id=sid)

    def WatchSession(
        self, request: control_pb2.WatchSessionRequest, context: grpc.ServicerContext
    ) -> Iterator[control_pb2.WatchSessionResponse]:
        self._session(request.session_id, context)
        gone = threading.Event()
        context.add_callback(gone.set)
        for event in self._runner.events.follow(request.session_id, stop=gone):
            yield control_pb2.WatchSessionResponse(event=event)

    def GetResult(
        self, request: control_pb2.GetResultRequest, context: grpc.ServicerContext
    ) -> control_pb2.GetResultResponse:
        state, message = self._session(request.session_id, context)
        response = control_pb2.GetResultResponse(state=STATE_TO_PROTO[state], message=message)
        doc = self._runner.result(request.session_id) if state is SessionState.DONE else None
        if doc is not None:
            response.result.CopyFrom(result_to_proto(doc))
        return response

    def CancelSession(
        self, request: control_pb2.CancelSessionRequest, context: grpc.ServicerContext
    ) -> control_pb2.CancelSessionResponse:
        self._session(request.session_id, context)
        state = self._runner.cancel(request.session_id)
        return control_pb2.CancelSessionResponse(state=STATE_TO_PROTO[state])

    def UploadFrames(
        self,
        request_iterator: Iterator[control_pb2.UploadFramesRequest],
        context: grpc.ServicerContext,
    ) -> control_pb2.UploadFramesResponse:
        received = 0
        checked: set[str] = set()
        try:
            for request in request_iterator:
                if request.session_id not in checked:
                    self._session(request.session_id, context)
                    checked.add(request.session_id)
                image, pose = frame_from_proto(request.frame, "frame")
                received = self._runner.upload(request.session_id, request.frame.index, image, pose)
        except InputError as exc:
            invalid_argument(context, exc)
            raise
        return control_pb2.UploadFramesResponse(frames_received=received)

    def LocalizeFrames(
        self, request: control_pb2.LocalizeFramesRequest, context: grpc.ServicerContext
    ) -> control_pb2.LocalizeFramesResponse:
        try:
            if not request.frames:
                raise InputError("request", "frames", "must not be empty")
            req = SessionRequest(
                frames=tuple(
                    frame_from_proto(f, f"frames[{i}]") for i, f in enumerate(request.frames)
                ),
                carrier=PROTO_TO_CARRIER.get(request.carrier),
                context=dict(request.context),
                method=request.method or None,
                owner=current_identity.get(),
            )
            doc = self._runner.run(req, timeout_s=context.time_remaining())
        except InputError as exc:
            invalid_argument(context, exc)
            raise
        except DeadlineExceeded as exc:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, str(exc))
        except SampleScoutError as exc:
            context.abort(grpc.StatusCode.INTERNAL, str(exc))
        return control_pb2.LocalizeFramesResponse(result=result_to_proto(doc))

    def GetScanPlan(
        self, request: control_pb2.GetScanPlanRequest, context: grpc.ServicerContext
    ) -> control_pb2.GetScanPlanResponse:
        from samplescout.control.scanplan import scan_plan

        state, message = self._runner.state(request.session_id)
        if state is SessionState.UNKNOWN:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no session {request.session_id!r}")
        doc = self._runner.result(request.session_id) if state is SessionState.DONE else None
        if doc is None:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"session {request.session_id} has no result ({state.value}) {message}".strip(),
            )
        try:
            plan = scan_plan(
                doc,
                fov_mm=request.fov_mm,
                overlap=request.overlap,
                wells=",".join(request.wells) or None,
                calibration=list(request.calibration) or None,
            )
        except InputError as exc:
            invalid_argument(context, exc)
            raise
        return control_pb2.GetScanPlanResponse(
            plan_json=json.dumps(plan), positions=int(plan["positions"])
        )


__all__ = ["ControlServicer", "pipeline_pb2", "result_to_proto"]
