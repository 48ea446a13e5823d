from samplescout.v1 import pipeline_pb2 as _pipeline_pb2
from samplescout.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SessionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_STATE_UNSPECIFIED: _ClassVar[SessionState]
    SESSION_STATE_RUNNING: _ClassVar[SessionState]
    SESSION_STATE_DONE: _ClassVar[SessionState]
    SESSION_STATE_FAILED: _ClassVar[SessionState]
    SESSION_STATE_CANCELLED: _ClassVar[SessionState]
SESSION_STATE_UNSPECIFIED: SessionState
SESSION_STATE_RUNNING: SessionState
SESSION_STATE_DONE: SessionState
SESSION_STATE_FAILED: SessionState
SESSION_STATE_CANCELLED: SessionState

class MicroscopeSource(_message.Message):
    __slots__ = ("address", "adaptive")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ADAPTIVE_FIELD_NUMBER: _ClassVar[int]
    address: str
    adaptive: bool
    def __init__(self, address: _Optional[str] = ..., adaptive: _Optional[bool] = ...) -> None: ...

class UploadSource(_message.Message):
    __slots__ = ("frame_count",)
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    frame_count: int
    def __init__(self, frame_count: _Optional[int] = ...) -> None: ...

class StartSessionRequest(_message.Message):
    __slots__ = ("bundle_path", "microscope", "upload", "carrier", "context", "method")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUNDLE_PATH_FIELD_NUMBER: _ClassVar[int]
    MICROSCOPE_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    bundle_path: str
    microscope: MicroscopeSource
    upload: UploadSource
    carrier: _types_pb2.Carrier
    context: _containers.ScalarMap[str, str]
    method: str
    def __init__(self, bundle_path: _Optional[str] = ..., microscope: _Optional[_Union[MicroscopeSource, _Mapping]] = ..., upload: _Optional[_Union[UploadSource, _Mapping]] = ..., carrier: _Optional[_Union[_types_pb2.Carrier, str]] = ..., context: _Optional[_Mapping[str, str]] = ..., method: _Optional[str] = ...) -> None: ...

class StartSessionResponse(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class WatchSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class WatchSessionResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _pipeline_pb2.SessionEvent
    def __init__(self, event: _Optional[_Union[_pipeline_pb2.SessionEvent, _Mapping]] = ...) -> None: ...

class GetResultRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class GetResultResponse(_message.Message):
    __slots__ = ("state", "result", "message")
    STATE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    state: SessionState
    result: _types_pb2.LocalizationResult
    message: str
    def __init__(self, state: _Optional[_Union[SessionState, str]] = ..., result: _Optional[_Union[_types_pb2.LocalizationResult, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...

class CancelSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CancelSessionResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: SessionState
    def __init__(self, state: _Optional[_Union[SessionState, str]] = ...) -> None: ...

class UploadFramesRequest(_message.Message):
    __slots__ = ("session_id", "frame")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    frame: _types_pb2.Frame
    def __init__(self, session_id: _Optional[str] = ..., frame: _Optional[_Union[_types_pb2.Frame, _Mapping]] = ...) -> None: ...

class UploadFramesResponse(_message.Message):
    __slots__ = ("frames_received",)
    FRAMES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    frames_received: int
    def __init__(self, frames_received: _Optional[int] = ...) -> None: ...

class LocalizeFramesRequest(_message.Message):
    __slots__ = ("carrier", "context", "frames", "method")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    carrier: _types_pb2.Carrier
    context: _containers.ScalarMap[str, str]
    frames: _containers.RepeatedCompositeFieldContainer[_types_pb2.Frame]
    method: str
    def __init__(self, carrier: _Optional[_Union[_types_pb2.Carrier, str]] = ..., context: _Optional[_Mapping[str, str]] = ..., frames: _Optional[_Iterable[_Union[_types_pb2.Frame, _Mapping]]] = ..., method: _Optional[str] = ...) -> None: ...

class LocalizeFramesResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: _types_pb2.LocalizationResult
    def __init__(self, result: _Optional[_Union[_types_pb2.LocalizationResult, _Mapping]] = ...) -> None: ...

class GetScanPlanRequest(_message.Message):
    __slots__ = ("session_id", "fov_mm", "overlap", "wells", "calibration")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FOV_MM_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_FIELD_NUMBER: _ClassVar[int]
    WELLS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    fov_mm: float
    overlap: float
    wells: _containers.RepeatedScalarFieldContainer[str]
    calibration: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, session_id: _Optional[str] = ..., fov_mm: _Optional[float] = ..., overlap: _Optional[float] = ..., wells: _Optional[_Iterable[str]] = ..., calibration: _Optional[_Iterable[float]] = ...) -> None: ...

class GetScanPlanResponse(_message.Message):
    __slots__ = ("plan_json", "positions")
    PLAN_JSON_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    plan_json: str
    positions: int
    def __init__(self, plan_json: _Optional[str] = ..., positions: _Optional[int] = ...) -> None: ...
