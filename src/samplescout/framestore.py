"""Frame store: full-resolution frames written once, read as coarse data or crops.

Selection reads only the coarse version; identification reads only the crops of
its regions. The store counts what each reader takes, so every result can report
the full-resolution pixels that were actually read.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from samplescout.coarse import make_coarse, to_gray_float


@dataclass(frozen=True, slots=True)
class StoredFrame:
    width: int
    height: int
    factor: int


@runtime_checkable
class FrameStore(Protocol):
    """Holds frames of running sessions.

    Contract
    --------
    - ``put`` stores a decoded full-resolution frame (8/16-bit, grey or BGR) under
      ``key`` together with its coarse version (reduction ``factor``); it is idempotent.
    - ``coarse`` returns the grey ``float32`` coarse image and never touches full-res data.
    - ``crop`` returns the grey ``float32`` full-res pixels of ``box = (x0, y0, x1, y1)``
      (clipped to the frame) and adds their number to ``pixels_read(key)``.
    - ``delete_session`` removes every frame whose key starts with ``f"{session}/"``;
      ``release_full_res`` drops one frame's full-resolution pixels once its crops are
      read (``crop`` fails after it); its coarse data and ``info`` stay until
      ``delete_session``, for fusion's whole-outline checks.
    - ``bytes_moved(key)`` is ``(written, read)``: the bytes ``put`` stored for the
      frame and the bytes ``coarse``/``crop`` fetched for it in this process.
    """

    def put(self, key: str, image: np.ndarray, factor: int) -> StoredFrame: ...

    def info(self, key: str) -> StoredFrame: ...

    def coarse(self, key: str) -> np.ndarray: ...

    def crop(self, key: str, box: tuple[int, int, int, int]) -> np.ndarray: ...

    def pixels_read(self, key: str) -> int: ...

    def delete_session(self, session: str) -> None: ...

    def release_full_res(self, key: str) -> None: ...

    def bytes_moved(self, key: str) -> tuple[int, int]: ...


def frame_key(session: str, index: int) -> str:
    return f"{session}/{index}"


class InMemoryFrameStore:
    """:class:`FrameStore` in process memory (embedded default)."""

    def __init__(self) -> None:
        self._full: dict[str, np.ndarray] = {}
        self._coarse: dict[str, np.ndarray] = {}
        self._info: dict[str, StoredFrame] = {}
        self._read: dict[str, int] = {}
        self._moved: dict[str, list[int]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, image: np.ndarray, factor: int) -> StoredFrame:
        info = StoredFrame(int(image.shape[1]), int(image.shape[0]), factor)
        coarse = make_coarse(image, factor)
        with self._lock:
            self._full[key] = image
            self._coarse[key] = coarse
            self._info[key] = info
            self._read.setdefault(key, 0)
            self._moved[key] = [image.nbytes + coarse.nbytes, 0]
        return info

    def info(self, key: str) -> StoredFrame:
        with self._lock:
            return self._info[key]

    def coarse(self, key: str) -> np.ndarray:
        with self._lock:
            coarse = self._coarse[key]
            self._moved[key][1] += coarse.nbytes
            return coarse

    def crop(self, key: str, box: tuple[int, int, int, int]) -> np.ndarray:
        with self._lock:
            full = self._full[key]
        h, w = full.shape[:2]
        x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
        if x1 <= x0 or y1 <= y0:
            return np.zeros((0, 0), np.float32)
        raw = full[y0:y1, x0:x1]
        out = to_gray_float(raw)
        with self._lock:
            self._read[key] = self._read.get(key, 0) + out.size
            self._moved[key][1] += raw.nbytes
        return out

    def pixels_read(self, key: str) -> int:
        with self._lock:
            return self._read.get(key, 0)

    def bytes_moved(self, key: str) -> tuple[int, int]:
        with self._lock:
            written, read = self._moved.get(key, (0, 0))
            return written, read

    def release_full_res(self, key: str) -> None:
        with self._lock:
            self._full.pop(key, None)

    def delete_session(self, session: str) -> None:
        prefix = f"{session}/"
        with self._lock:
            for d in (self._full, self._coarse, self._info, self._read, self._moved):
                for k in [k for k in d if k.startswith(prefix)]:
                    del d[k]
