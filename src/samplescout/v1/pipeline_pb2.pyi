from samplescout.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SessionEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_EVENT_KIND_UNSPECIFIED: _ClassVar[SessionEventKind]
    SESSION_EVENT_KIND_STARTED: _ClassVar[SessionEventKind]
    SESSION_EVENT_KIND_FRAME_ACQUIRED: _ClassVar[SessionEventKind]
    SESSION_EVENT_KIND_REGIONS_SELECTED: _ClassVar[SessionEventKind]
    SESSION_EVENT_KIND_STRUCTURES_IDENTIFIED: _ClassVar[SessionEventKind]
    SESSION_EVENT_KIND_LOCALIZATION_UPDATED: _ClassVar[SessionEventKind]
    SESSION_EVENT_KIND_DONE: _ClassVar[SessionEventKind]
    SESSION_EVENT_KIND_FAILED: _ClassVar[SessionEventKind]
    SESSION_EVENT_KIND_CANCELLED: _ClassVar[SessionEventKind]
SESSION_EVENT_KIND_UNSPECIFIED: SessionEventKind
SESSION_EVENT_KIND_STARTED: SessionEventKind
SESSION_EVENT_KIND_FRAME_ACQUIRED: SessionEventKind
SESSION_EVENT_KIND_REGIONS_SELECTED: SessionEventKind
SESSION_EVENT_KIND_STRUCTURES_IDENTIFIED: SessionEventKind
SESSION_EVENT_KIND_LOCALIZATION_UPDATED: SessionEventKind
SESSION_EVENT_KIND_DONE: SessionEventKind
SESSION_EVENT_KIND_FAILED: SessionEventKind
SESSION_EVENT_KIND_CANCELLED: SessionEventKind

class SessionSpec(_message.Message):
    __slots__ = ("session_id", "carrier", "context", "frame_count", "method", "started_unix", "source", "progressive")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    STARTED_UNIX_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PROGRESSIVE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    carrier: _types_pb2.Carrier
    context: _containers.ScalarMap[str, str]
    frame_count: int
    method: str
    started_unix: float
    source: str
    progressive: bool
    def __init__(self, session_id: _Optional[str] = ..., carrier: _Optional[_Union[_types_pb2.Carrier, str]] = ..., context: _Optional[_Mapping[str, str]] = ..., frame_count: _Optional[int] = ..., method: _Optional[str] = ..., started_unix: _Optional[float] = ..., source: _Optional[str] = ..., progressive: _Optional[bool] = ...) -> None: ...

class FrameStats(_message.Message):
    __slots__ = ("decode_seconds", "coarse_seconds", "select_seconds", "identify_seconds", "full_res_pixels", "coarse_pixels", "full_res_pixels_read", "regions", "regions_identified", "bytes_written", "select_bytes_read", "identify_bytes_read", "select_model", "identify_model")
    DECODE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    COARSE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SELECT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    IDENTIFY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    FULL_RES_PIXELS_FIELD_NUMBER: _ClassVar[int]
    COARSE_PIXELS_FIELD_NUMBER: _ClassVar[int]
    FULL_RES_PIXELS_READ_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    REGIONS_IDENTIFIED_FIELD_NUMBER: _ClassVar[int]
    BYTES_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    SELECT_BYTES_READ_FIELD_NUMBER: _ClassVar[int]
    IDENTIFY_BYTES_READ_FIELD_NUMBER: _ClassVar[int]
    SELECT_MODEL_FIELD_NUMBER: _ClassVar[int]
    IDENTIFY_MODEL_FIELD_NUMBER: _ClassVar[int]
    decode_seconds: float
    coarse_seconds: float
    select_seconds: float
    identify_seconds: float
    full_res_pixels: int
    coarse_pixels: int
    full_res_pixels_read: int
    regions: int
    regions_identified: int
    bytes_written: int
    select_bytes_read: int
    identify_bytes_read: int
    select_model: str
    identify_model: str
    def __init__(self, decode_seconds: _Optional[float] = ..., coarse_seconds: _Optional[float] = ..., select_seconds: _Optional[float] = ..., identify_seconds: _Optional[float] = ..., full_res_pixels: _Optional[int] = ..., coarse_pixels: _Optional[int] = ..., full_res_pixels_read: _Optional[int] = ..., regions: _Optional[int] = ..., regions_identified: _Optional[int] = ..., bytes_written: _Optional[int] = ..., select_bytes_read: _Optional[int] = ..., identify_bytes_read: _Optional[int] = ..., select_model: _Optional[str] = ..., identify_model: _Optional[str] = ...) -> None: ...

class AcquireRequest(_message.Message):
    __slots__ = ("session", "bundle_path", "microscope", "adaptive")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_PATH_FIELD_NUMBER: _ClassVar[int]
    MICROSCOPE_FIELD_NUMBER: _ClassVar[int]
    ADAPTIVE_FIELD_NUMBER: _ClassVar[int]
    session: SessionSpec
    bundle_path: str
    microscope: str
    adaptive: bool
    def __init__(self, session: _Optional[_Union[SessionSpec, _Mapping]] = ..., bundle_path: _Optional[str] = ..., microscope: _Optional[str] = ..., adaptive: _Optional[bool] = ...) -> None: ...

class FrameAcquired(_message.Message):
    __slots__ = ("session", "frame", "stats")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    session: SessionSpec
    frame: _types_pb2.Frame
    stats: FrameStats
    def __init__(self, session: _Optional[_Union[SessionSpec, _Mapping]] = ..., frame: _Optional[_Union[_types_pb2.Frame, _Mapping]] = ..., stats: _Optional[_Union[FrameStats, _Mapping]] = ...) -> None: ...

class RegionsSelected(_message.Message):
    __slots__ = ("session", "frame", "regions", "stats")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    REGIONS_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    session: SessionSpec
    frame: _types_pb2.Frame
    regions: _containers.RepeatedCompositeFieldContainer[_types_pb2.StructureRegion]
    stats: FrameStats
    def __init__(self, session: _Optional[_Union[SessionSpec, _Mapping]] = ..., frame: _Optional[_Union[_types_pb2.Frame, _Mapping]] = ..., regions: _Optional[_Iterable[_Union[_types_pb2.StructureRegion, _Mapping]]] = ..., stats: _Optional[_Union[FrameStats, _Mapping]] = ...) -> None: ...

class StructuresIdentified(_message.Message):
    __slots__ = ("session", "frame", "structures", "stats", "barcodes", "end_of_session", "path_json")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    STRUCTURES_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    BARCODES_FIELD_NUMBER: _ClassVar[int]
    END_OF_SESSION_FIELD_NUMBER: _ClassVar[int]
    PATH_JSON_FIELD_NUMBER: _ClassVar[int]
    session: SessionSpec
    frame: _types_pb2.Frame
    structures: _containers.RepeatedCompositeFieldContainer[_types_pb2.IdentifiedStructure]
    stats: FrameStats
    barcodes: _containers.RepeatedCompositeFieldContainer[_types_pb2.Barcode]
    end_of_session: bool
    path_json: str
    def __init__(self, session: _Optional[_Union[SessionSpec, _Mapping]] = ..., frame: _Optional[_Union[_types_pb2.Frame, _Mapping]] = ..., structures: _Optional[_Iterable[_Union[_types_pb2.IdentifiedStructure, _Mapping]]] = ..., stats: _Optional[_Union[FrameStats, _Mapping]] = ..., barcodes: _Optional[_Iterable[_Union[_types_pb2.Barcode, _Mapping]]] = ..., end_of_session: _Optional[bool] = ..., path_json: _Optional[str] = ...) -> None: ...

class SessionEvent(_message.Message):
    __slots__ = ("session_id", "sequence", "kind", "frame_index", "message", "count", "result")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    sequence: int
    kind: SessionEventKind
    frame_index: int
    message: str
    count: int
    result: _types_pb2.LocalizationResult
    def __init__(self, session_id: _Optional[str] = ..., sequence: _Optional[int] = ..., kind: _Optional[_Union[SessionEventKind, str]] = ..., frame_index: _Optional[int] = ..., message: _Optional[str] = ..., count: _Optional[int] = ..., result: _Optional[_Union[_types_pb2.LocalizationResult, _Mapping]] = ...) -> None: ...
