from samplescout.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeResponse(_message.Message):
    __slots__ = ("name", "camera_width", "camera_height", "pixel_size_mm", "rotation_deg", "stage_min_mm", "stage_max_mm", "carrier", "context", "bit_depth", "channels")
    class ContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    CAMERA_WIDTH_FIELD_NUMBER: _ClassVar[int]
    CAMERA_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PIXEL_SIZE_MM_FIELD_NUMBER: _ClassVar[int]
    ROTATION_DEG_FIELD_NUMBER: _ClassVar[int]
    STAGE_MIN_MM_FIELD_NUMBER: _ClassVar[int]
    STAGE_MAX_MM_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    BIT_DEPTH_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    name: str
    camera_width: int
    camera_height: int
    pixel_size_mm: float
    rotation_deg: float
    stage_min_mm: _types_pb2.Point2
    stage_max_mm: _types_pb2.Point2
    carrier: _types_pb2.Carrier
    context: _containers.ScalarMap[str, str]
    bit_depth: int
    channels: int
    def __init__(self, name: _Optional[str] = ..., camera_width: _Optional[int] = ..., camera_height: _Optional[int] = ..., pixel_size_mm: _Optional[float] = ..., rotation_deg: _Optional[float] = ..., stage_min_mm: _Optional[_Union[_types_pb2.Point2, _Mapping]] = ..., stage_max_mm: _Optional[_Union[_types_pb2.Point2, _Mapping]] = ..., carrier: _Optional[_Union[_types_pb2.Carrier, str]] = ..., context: _Optional[_Mapping[str, str]] = ..., bit_depth: _Optional[int] = ..., channels: _Optional[int] = ...) -> None: ...

class MoveToRequest(_message.Message):
    __slots__ = ("center_mm",)
    CENTER_MM_FIELD_NUMBER: _ClassVar[int]
    center_mm: _types_pb2.Point2
    def __init__(self, center_mm: _Optional[_Union[_types_pb2.Point2, _Mapping]] = ...) -> None: ...

class MoveToResponse(_message.Message):
    __slots__ = ("center_mm",)
    CENTER_MM_FIELD_NUMBER: _ClassVar[int]
    center_mm: _types_pb2.Point2
    def __init__(self, center_mm: _Optional[_Union[_types_pb2.Point2, _Mapping]] = ...) -> None: ...

class SnapRequest(_message.Message):
    __slots__ = ("encoding",)
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    encoding: str
    def __init__(self, encoding: _Optional[str] = ...) -> None: ...

class SnapHeader(_message.Message):
    __slots__ = ("pose", "width", "height", "encoding", "total_bytes", "dtype", "channels")
    POSE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    pose: _types_pb2.Pose
    width: int
    height: int
    encoding: str
    total_bytes: int
    dtype: str
    channels: int
    def __init__(self, pose: _Optional[_Union[_types_pb2.Pose, _Mapping]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., encoding: _Optional[str] = ..., total_bytes: _Optional[int] = ..., dtype: _Optional[str] = ..., channels: _Optional[int] = ...) -> None: ...

class SnapResponse(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: SnapHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[SnapHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...
