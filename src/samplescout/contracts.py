"""The message contracts between stages, as Python values with protobuf conversion.

Stages compute with these dataclasses; buses carry them as ``samplescout.v1``
protobuf bytes, so the embedded in-memory bus and Redis Streams carry exactly
the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from samplescout.geometry import Pose
from samplescout.v1 import types_pb2

#: SPEC section 3 class names, in the order of the ``StructureClass`` enum (value = index + 1).
STRUCTURE_CLASSES: tuple[str, ...] = (
    "no_structure",
    "straight_structure",
    "round_structure",
    "polygonal_structure",
    "straight_cover_glass_edge",
    "round_cover_glass_edge",
    "polygonal_cover_glass_edge",
    "sample_carrier_edge",
    "spacer",
    "holding_frame",
    "plate_edge",
    "well",
    "sample_chamber_edge",
    "sample_chamber",
    "label",
)

CARRIER_TO_PROTO = {
    None: types_pb2.CARRIER_UNSPECIFIED,
    "slide": types_pb2.CARRIER_SLIDE,
    "multiwell": types_pb2.CARRIER_MULTIWELL,
    "chamber_slide": types_pb2.CARRIER_CHAMBER_SLIDE,
    "petri_dish": types_pb2.CARRIER_PETRI_DISH,
    "unknown": types_pb2.CARRIER_UNKNOWN,
}
PROTO_TO_CARRIER = {v: k for k, v in CARRIER_TO_PROTO.items() if k != "unknown"}
PROTO_TO_CARRIER[types_pb2.CARRIER_UNKNOWN] = None


def class_to_proto(name: str) -> int:
    return STRUCTURE_CLASSES.index(name) + 1


def class_from_proto(value: int) -> str:
    if not 1 <= value <= len(STRUCTURE_CLASSES):
        raise ValueError(f"unknown structure class {value}")
    return STRUCTURE_CLASSES[value - 1]


def model_name(model: object) -> str:
    """Provenance name of a stage model: its ``name`` (registry ``name@version``)."""
    name = getattr(model, "name", None)
    return name if isinstance(name, str) and name else type(model).__name__


def pose_to_proto(pose: Pose) -> types_pb2.Pose:
    return types_pb2.Pose(
        center_mm=types_pb2.Point2(x=pose.center_mm[0], y=pose.center_mm[1]),
        pixel_size_mm=pose.pixel_size_mm,
        rotation_deg=pose.rotation_deg,
    )


def pose_from_proto(msg: types_pb2.Pose) -> Pose:
    return Pose((msg.center_mm.x, msg.center_mm.y), msg.pixel_size_mm, msg.rotation_deg)


Point = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Region:
    """A candidate structure region of one frame, chosen by the selection stage.

    ``box_px`` is ``(x0, y0, x1, y1)`` in full-resolution pixels, half-open.
    ``kind`` is the selection class: ``structure``, ``label`` or ``non_sample``.
    """

    frame_index: int
    region_index: int
    box_px: tuple[int, int, int, int]
    probability: float
    orientation_deg: float = 0.0
    kind: str = "structure"
    polygon_mm: tuple[Point, ...] = ()

    def to_proto(self) -> types_pb2.StructureRegion:
        x0, y0, x1, y1 = self.box_px
        return types_pb2.StructureRegion(
            frame_index=self.frame_index,
            region_index=self.region_index,
            box_px=types_pb2.PixelBox(x0=x0, y0=y0, x1=x1, y1=y1),
            polygon_mm=[types_pb2.Point2(x=x, y=y) for x, y in self.polygon_mm],
            probability=self.probability,
            orientation_deg=self.orientation_deg,
            kind=self.kind,
        )

    @classmethod
    def from_proto(cls, msg: types_pb2.StructureRegion) -> Region:
        b = msg.box_px
        return cls(
            frame_index=msg.frame_index,
            region_index=msg.region_index,
            box_px=(b.x0, b.y0, b.x1, b.y1),
            probability=msg.probability,
            orientation_deg=msg.orientation_deg,
            kind=msg.kind or "structure",
            polygon_mm=tuple((p.x, p.y) for p in msg.polygon_mm),
        )


@dataclass(frozen=True, slots=True)
class Structure:
    """What identification concluded about one region, with its geometry in holder mm.

    Exactly one of ``segment_mm`` (a straight edge piece ``(p0, p1)``) and ``arc_mm``
    (``(cx, cy, radius, start_deg, end_deg)``) is set for edge classes; both are
    ``None`` for ``no_structure`` and ``label``.
    """

    region: Region
    shape_class: str
    probability: float
    class_probabilities: dict[str, float] = field(default_factory=dict)
    element: str = ""
    size_class: str = ""
    segment_mm: tuple[Point, Point] | None = None
    arc_mm: tuple[float, float, float, float, float] | None = None
    contrast: float = 0.0
    #: A flank of a marker-pen stroke (identification's judgement), not a sample's edge.
    marker: bool = False
    #: A line across a wall that filled its region (see ``IdentifiedStructure.crossing``).
    crossing: bool = False

    def to_proto(self) -> types_pb2.IdentifiedStructure:
        msg = types_pb2.IdentifiedStructure(
            region=self.region.to_proto(),
            shape_class=class_to_proto(self.shape_class),  # type: ignore[arg-type]
            probability=self.probability,
            class_probabilities=[
                self.class_probabilities.get(name, 0.0) for name in STRUCTURE_CLASSES
            ]
            if self.class_probabilities
            else [],
            element=self.element,
            size_class=self.size_class,
            contrast=self.contrast,
            marker=self.marker,
            crossing=self.crossing,
        )
        if self.segment_mm is not None:
            (x0, y0), (x1, y1) = self.segment_mm
            msg.segment.p0.x, msg.segment.p0.y = x0, y0
            msg.segment.p1.x, msg.segment.p1.y = x1, y1
        elif self.arc_mm is not None:
            cx, cy, r, a0, a1 = self.arc_mm
            msg.arc.center.x, msg.arc.center.y = cx, cy
            msg.arc.radius, msg.arc.start_deg, msg.arc.end_deg = r, a0, a1
        return msg

    @classmethod
    def from_proto(cls, msg: types_pb2.IdentifiedStructure) -> Structure:
        seg = arc = None
        which = msg.WhichOneof("geometry")
        if which == "segment":
            s = msg.segment
            seg = ((s.p0.x, s.p0.y), (s.p1.x, s.p1.y))
        elif which == "arc":
            a = msg.arc
            arc = (a.center.x, a.center.y, a.radius, a.start_deg, a.end_deg)
        probs = (
            dict(zip(STRUCTURE_CLASSES, msg.class_probabilities, strict=True))
            if msg.class_probabilities
            else {}
        )
        return cls(
            region=Region.from_proto(msg.region),
            shape_class=class_from_proto(msg.shape_class),
            probability=msg.probability,
            class_probabilities=probs,
            element=msg.element,
            size_class=msg.size_class,
            segment_mm=seg,
            arc_mm=arc,
            contrast=msg.contrast,
            marker=msg.marker,
            crossing=msg.crossing,
        )
