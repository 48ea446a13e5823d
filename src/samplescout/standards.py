"""Standard sample-carrier dimensions (mm) shared by the simulator, fusion and control."""

from __future__ import annotations

from dataclasses import dataclass

SLIDE_SIZE_MM = (75.0, 25.0)
SBS_SIZE_MM = (127.76, 85.48)

#: Rectangular cover glasses ``(short, long)``; they lie either way round.
COVER_GLASS_SIZES: tuple[tuple[float, float], ...] = (
    (18.0, 18.0),
    (22.0, 22.0),
    (24.0, 24.0),
    (24.0, 32.0),
    (24.0, 40.0),
    (24.0, 50.0),
    (24.0, 60.0),
)
#: Round cover-glass diameters.
COVER_GLASS_DIAMETERS: tuple[float, ...] = (10.0, 12.0, 13.0, 15.0, 16.0, 18.0, 20.0, 22.0, 25.0)


@dataclass(frozen=True)
class PlateFormat:
    """One SBS layout: ``rows x cols`` wells at ``pitch`` mm, well diameter (or side)."""

    wells: int
    rows: int
    cols: int
    pitch: float
    well_size: float
    circular: bool

    @property
    def a1_offset(self) -> tuple[float, float]:
        """A1 centre from the footprint's top-left corner (plate-local mm), grid centred."""
        return (
            (SBS_SIZE_MM[0] - (self.cols - 1) * self.pitch) / 2,
            (SBS_SIZE_MM[1] - (self.rows - 1) * self.pitch) / 2,
        )


PLATE_FORMATS: tuple[PlateFormat, ...] = (
    PlateFormat(6, 2, 3, 39.12, 34.8, True),
    PlateFormat(12, 3, 4, 26.0, 22.1, True),
    PlateFormat(24, 4, 6, 19.3, 15.6, True),
    PlateFormat(48, 6, 8, 13.0, 10.9, True),
    PlateFormat(96, 8, 12, 9.0, 6.4, True),
    PlateFormat(384, 16, 24, 4.5, 3.6, False),
)
PLATE_FORMAT_BY_WELLS = {f.wells: f for f in PLATE_FORMATS}


def well_name(row: int, col: int) -> str:
    """``A1``-style name; rows beyond Z continue as ``AA``, ``AB``..."""
    name = ""
    r = row
    while True:
        name = chr(ord("A") + r % 26) + name
        r = r // 26 - 1
        if r < 0:
            break
    return f"{name}{col + 1}"
