from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Carrier(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CARRIER_UNSPECIFIED: _ClassVar[Carrier]
    CARRIER_SLIDE: _ClassVar[Carrier]
    CARRIER_MULTIWELL: _ClassVar[Carrier]
    CARRIER_CHAMBER_SLIDE: _ClassVar[Carrier]
    CARRIER_PETRI_DISH: _ClassVar[Carrier]
    CARRIER_UNKNOWN: _ClassVar[Carrier]

class StructureClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STRUCTURE_CLASS_UNSPECIFIED: _ClassVar[StructureClass]
    STRUCTURE_CLASS_NO_STRUCTURE: _ClassVar[StructureClass]
    STRUCTURE_CLASS_STRAIGHT_STRUCTURE: _ClassVar[StructureClass]
    STRUCTURE_CLASS_ROUND_STRUCTURE: _ClassVar[StructureClass]
    STRUCTURE_CLASS_POLYGONAL_STRUCTURE: _ClassVar[StructureClass]
    STRUCTURE_CLASS_STRAIGHT_COVER_GLASS_EDGE: _ClassVar[StructureClass]
    STRUCTURE_CLASS_ROUND_COVER_GLASS_EDGE: _ClassVar[StructureClass]
    STRUCTURE_CLASS_POLYGONAL_COVER_GLASS_EDGE: _ClassVar[StructureClass]
    STRUCTURE_CLASS_SAMPLE_CARRIER_EDGE: _ClassVar[StructureClass]
    STRUCTURE_CLASS_SPACER: _ClassVar[StructureClass]
    STRUCTURE_CLASS_HOLDING_FRAME: _ClassVar[StructureClass]
    STRUCTURE_CLASS_PLATE_EDGE: _ClassVar[StructureClass]
    STRUCTURE_CLASS_WELL: _ClassVar[StructureClass]
    STRUCTURE_CLASS_SAMPLE_CHAMBER_EDGE: _ClassVar[StructureClass]
    STRUCTURE_CLASS_SAMPLE_CHAMBER: _ClassVar[StructureClass]
    STRUCTURE_CLASS_LABEL: _ClassVar[StructureClass]
CARRIER_UNSPECIFIED: Carrier
CARRIER_SLIDE: Carrier
CARRIER_MULTIWELL: Carrier
CARRIER_CHAMBER_SLIDE: Carrier
CARRIER_PETRI_DISH: Carrier
CARRIER_UNKNOWN: Carrier
STRUCTURE_CLASS_UNSPECIFIED: StructureClass
STRUCTURE_CLASS_NO_STRUCTURE: StructureClass
STRUCTURE_CLASS_STRAIGHT_STRUCTURE: StructureClass
STRUCTURE_CLASS_ROUND_STRUCTURE: StructureClass
STRUCTURE_CLASS_POLYGONAL_STRUCTURE: StructureClass
STRUCTURE_CLASS_STRAIGHT_COVER_GLASS_EDGE: StructureClass
STRUCTURE_CLASS_ROUND_COVER_GLASS_EDGE: StructureClass
STRUCTURE_CLASS_POLYGONAL_COVER_GLASS_EDGE: StructureClass
STRUCTURE_CLASS_SAMPLE_CARRIER_EDGE: StructureClass
STRUCTURE_CLASS_SPACER: StructureClass
STRUCTURE_CLASS_HOLDING_FRAME: StructureClass
STRUCTURE_CLASS_PLATE_EDGE: StructureClass
STRUCTURE_CLASS_WELL: StructureClass
STRUCTURE_CLASS_SAMPLE_CHAMBER_EDGE: StructureClass
STRUCTURE_CLASS_SAMPLE_CHAMBER: StructureClass
STRUCTURE_CLASS_LABEL: StructureClass

class Point2(_message.Message):
    __slots__ = ("x", "y")
    X_FIELD_NUMBER: _ClassVar[int]
    Y_FIELD_NUMBER: _ClassVar[int]
    x: float
    y: float
    def __init__(self, x: _Optional[float] = ..., y: _Optional[float] = ...) -> None: ...

class Pose(_message.Message):
    __slots__ = ("center_mm", "pixel_size_mm", "rotation_deg")
    CENTER_MM_FIELD_NUMBER: _ClassVar[int]
    PIXEL_SIZE_MM_FIELD_NUMBER: _ClassVar[int]
    ROTATION_DEG_FIELD_NUMBER: _ClassVar[int]
    center_mm: Point2
    pixel_size_mm: float
    rotation_deg: float
    def __init__(self, center_mm: _Optional[_Union[Point2, _Mapping]] = ..., pixel_size_mm: _Optional[float] = ..., rotation_deg: _Optional[float] = ...) -> None: ...

class PixelBox(_message.Message):
    __slots__ = ("x0", "y0", "x1", "y1")
    X0_FIELD_NUMBER: _ClassVar[int]
    Y0_FIELD_NUMBER: _ClassVar[int]
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    x0: int
    y0: int
    x1: int
    y1: int
    def __init__(self, x0: _Optional[int] = ..., y0: _Optional[int] = ..., x1: _Optional[int] = ..., y1: _Optional[int] = ...) -> None: ...

class FrameRef(_message.Message):
    __slots__ = ("store_key",)
    STORE_KEY_FIELD_NUMBER: _ClassVar[int]
    store_key: str
    def __init__(self, store_key: _Optional[str] = ...) -> None: ...

class Frame(_message.Message):
    __slots__ = ("index", "pose", "width", "height", "image", "ref", "file")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    POSE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    REF_FIELD_NUMBER: _ClassVar[int]
    FILE_FIELD_NUMBER: _ClassVar[int]
    index: int
    pose: Pose
    width: int
    height: int
    image: bytes
    ref: FrameRef
    file: str
    def __init__(self, index: _Optional[int] = ..., pose: _Optional[_Union[Pose, _Mapping]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., image: _Optional[bytes] = ..., ref: _Optional[_Union[FrameRef, _Mapping]] = ..., file: _Optional[str] = ...) -> None: ...

class StructureRegion(_message.Message):
    __slots__ = ("frame_index", "region_index", "box_px", "polygon_mm", "probability", "orientation_deg", "kind")
    FRAME_INDEX_FIELD_NUMBER: _ClassVar[int]
    REGION_INDEX_FIELD_NUMBER: _ClassVar[int]
    BOX_PX_FIELD_NUMBER: _ClassVar[int]
    POLYGON_MM_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    ORIENTATION_DEG_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    frame_index: int
    region_index: int
    box_px: PixelBox
    polygon_mm: _containers.RepeatedCompositeFieldContainer[Point2]
    probability: float
    orientation_deg: float
    kind: str
    def __init__(self, frame_index: _Optional[int] = ..., region_index: _Optional[int] = ..., box_px: _Optional[_Union[PixelBox, _Mapping]] = ..., polygon_mm: _Optional[_Iterable[_Union[Point2, _Mapping]]] = ..., probability: _Optional[float] = ..., orientation_deg: _Optional[float] = ..., kind: _Optional[str] = ...) -> None: ...

class Segment(_message.Message):
    __slots__ = ("p0", "p1")
    P0_FIELD_NUMBER: _ClassVar[int]
    P1_FIELD_NUMBER: _ClassVar[int]
    p0: Point2
    p1: Point2
    def __init__(self, p0: _Optional[_Union[Point2, _Mapping]] = ..., p1: _Optional[_Union[Point2, _Mapping]] = ...) -> None: ...

class Arc(_message.Message):
    __slots__ = ("center", "radius", "start_deg", "end_deg")
    CENTER_FIELD_NUMBER: _ClassVar[int]
    RADIUS_FIELD_NUMBER: _ClassVar[int]
    START_DEG_FIELD_NUMBER: _ClassVar[int]
    END_DEG_FIELD_NUMBER: _ClassVar[int]
    center: Point2
    radius: float
    start_deg: float
    end_deg: float
    def __init__(self, center: _Optional[_Union[Point2, _Mapping]] = ..., radius: _Optional[float] = ..., start_deg: _Optional[float] = ..., end_deg: _Optional[float] = ...) -> None: ...

class IdentifiedStructure(_message.Message):
    __slots__ = ("region", "shape_class", "probability", "class_probabilities", "element", "size_class", "segment", "arc", "contrast", "marker", "crossing")
    REGION_FIELD_NUMBER: _ClassVar[int]
    SHAPE_CLASS_FIELD_NUMBER: _ClassVar[int]
    PROBABILITY_FIELD_NUMBER: _ClassVar[int]
    CLASS_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    ELEMENT_FIELD_NUMBER: _ClassVar[int]
    SIZE_CLASS_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    ARC_FIELD_NUMBER: _ClassVar[int]
    CONTRAST_FIELD_NUMBER: _ClassVar[int]
    MARKER_FIELD_NUMBER: _ClassVar[int]
    CROSSING_FIELD_NUMBER: _ClassVar[int]
    region: StructureRegion
    shape_class: StructureClass
    probability: float
    class_probabilities: _containers.RepeatedScalarFieldContainer[float]
    element: str
    size_class: str
    segment: Segment
    arc: Arc
    contrast: float
    marker: bool
    crossing: bool
    def __init__(self, region: _Optional[_Union[StructureRegion, _Mapping]] = ..., shape_class: _Optional[_Union[StructureClass, str]] = ..., probability: _Optional[float] = ..., class_probabilities: _Optional[_Iterable[float]] = ..., element: _Optional[str] = ..., size_class: _Optional[str] = ..., segment: _Optional[_Union[Segment, _Mapping]] = ..., arc: _Optional[_Union[Arc, _Mapping]] = ..., contrast: _Optional[float] = ..., marker: _Optional[bool] = ..., crossing: _Optional[bool] = ...) -> None: ...

class Sample(_message.Message):
    __slots__ = ("element", "shape", "center_mm", "size_mm", "angle_deg", "polygon_mm", "confidence", "label", "occupied")
    ELEMENT_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    CENTER_MM_FIELD_NUMBER: _ClassVar[int]
    SIZE_MM_FIELD_NUMBER: _ClassVar[int]
    ANGLE_DEG_FIELD_NUMBER: _ClassVar[int]
    POLYGON_MM_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    OCCUPIED_FIELD_NUMBER: _ClassVar[int]
    element: str
    shape: str
    center_mm: Point2
    size_mm: _containers.RepeatedScalarFieldContainer[float]
    angle_deg: float
    polygon_mm: _containers.RepeatedCompositeFieldContainer[Point2]
    confidence: float
    label: str
    occupied: float
    def __init__(self, element: _Optional[str] = ..., shape: _Optional[str] = ..., center_mm: _Optional[_Union[Point2, _Mapping]] = ..., size_mm: _Optional[_Iterable[float]] = ..., angle_deg: _Optional[float] = ..., polygon_mm: _Optional[_Iterable[_Union[Point2, _Mapping]]] = ..., confidence: _Optional[float] = ..., label: _Optional[str] = ..., occupied: _Optional[float] = ...) -> None: ...

class Plate(_message.Message):
    __slots__ = ("wells", "rows", "cols", "a1_center_mm", "rotation_deg", "well_spacing_mm", "well_size_mm", "circular_wells")
    WELLS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    A1_CENTER_MM_FIELD_NUMBER: _ClassVar[int]
    ROTATION_DEG_FIELD_NUMBER: _ClassVar[int]
    WELL_SPACING_MM_FIELD_NUMBER: _ClassVar[int]
    WELL_SIZE_MM_FIELD_NUMBER: _ClassVar[int]
    CIRCULAR_WELLS_FIELD_NUMBER: _ClassVar[int]
    wells: int
    rows: int
    cols: int
    a1_center_mm: Point2
    rotation_deg: float
    well_spacing_mm: Point2
    well_size_mm: float
    circular_wells: bool
    def __init__(self, wells: _Optional[int] = ..., rows: _Optional[int] = ..., cols: _Optional[int] = ..., a1_center_mm: _Optional[_Union[Point2, _Mapping]] = ..., rotation_deg: _Optional[float] = ..., well_spacing_mm: _Optional[_Union[Point2, _Mapping]] = ..., well_size_mm: _Optional[float] = ..., circular_wells: _Optional[bool] = ...) -> None: ...

class Barcode(_message.Message):
    __slots__ = ("format", "text", "polygon_mm")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    POLYGON_MM_FIELD_NUMBER: _ClassVar[int]
    format: str
    text: str
    polygon_mm: _containers.RepeatedCompositeFieldContainer[Point2]
    def __init__(self, format: _Optional[str] = ..., text: _Optional[str] = ..., polygon_mm: _Optional[_Iterable[_Union[Point2, _Mapping]]] = ...) -> None: ...

class LocalizationResult(_message.Message):
    __slots__ = ("json", "carrier", "samples", "plate", "barcodes", "stats")
    JSON_FIELD_NUMBER: _ClassVar[int]
    CARRIER_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    PLATE_FIELD_NUMBER: _ClassVar[int]
    BARCODES_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    json: str
    carrier: Carrier
    samples: _containers.RepeatedCompositeFieldContainer[Sample]
    plate: Plate
    barcodes: _containers.RepeatedCompositeFieldContainer[Barcode]
    stats: _struct_pb2.Struct
    def __init__(self, json: _Optional[str] = ..., carrier: _Optional[_Union[Carrier, str]] = ..., samples: _Optional[_Iterable[_Union[Sample, _Mapping]]] = ..., plate: _Optional[_Union[Plate, _Mapping]] = ..., barcodes: _Optional[_Iterable[_Union[Barcode, _Mapping]]] = ..., stats: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
