"""Redis backends for the frame store, session state and session events."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import redis

from samplescout.coarse import make_coarse, to_gray_float
from samplescout.framestore import StoredFrame
from samplescout.sessions import TERMINAL_EVENTS
from samplescout.v1 import pipeline_pb2

PREFIX = "samplescout"
DEFAULT_TTL_S = 3600
DEFAULT_TILE = 256


class RedisFrameStore:
    """:class:`~samplescout.framestore.FrameStore` in Redis: full-res tiles + coarse image.

    Each frame is written once: its coarse version and its full-resolution pixels cut
    into ``tile`` x ``tile`` tiles (raw, native dtype), all with a TTL. ``coarse`` reads
    only the coarse key; ``crop`` fetches only the tiles a box touches. ``bytes_read``
    and ``bytes_written`` count what crossed the network per frame.
    """

    def __init__(
        self, client: redis.Redis, *, tile: int = DEFAULT_TILE, ttl_s: int = DEFAULT_TTL_S
    ) -> None:
        self._r: Any = client
        self.tile = tile
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self.bytes_read: dict[str, int] = {}
        self.bytes_written: dict[str, int] = {}
        self._tile_lock = threading.Lock()
        self._cache_key: str | None = None
        self._cache: dict[tuple[int, int], bytes] = {}

    def _k(self, key: str, part: str) -> str:
        return f"{PREFIX}:frame:{key}:{part}"

    def put(self, key: str, image: np.ndarray, factor: int) -> StoredFrame:
        h, w = image.shape[:2]
        channels = 1 if image.ndim == 2 else image.shape[2]
        coarse = make_coarse(image, factor)
        meta = {
            "width": w,
            "height": h,
            "factor": factor,
            "dtype": image.dtype.str,
            "channels": channels,
            "tile": self.tile,
            "coarse_shape": list(coarse.shape),
        }
        pipe = self._r.pipeline(transaction=False)
        written = 0
        t = self.tile
        for ty in range(0, h, t):
            for tx in range(0, w, t):
                data = np.ascontiguousarray(image[ty : ty + t, tx : tx + t]).tobytes()
                pipe.set(self._k(key, f"t:{ty // t}:{tx // t}"), data, ex=self.ttl_s)
                written += len(data)
        cbytes = coarse.astype(np.float32).tobytes()
        pipe.set(self._k(key, "coarse"), cbytes, ex=self.ttl_s)
        # The meta key last: a reader that sees it sees the whole frame.
        pipe.set(self._k(key, "meta"), json.dumps(meta), ex=self.ttl_s)
        pipe.sadd(f"{PREFIX}:frames:{key.split('/')[0]}", key)
        pipe.expire(f"{PREFIX}:frames:{key.split('/')[0]}", self.ttl_s)
        pipe.execute()
        with self._lock:
            self.bytes_written[key] = written + len(cbytes)
        return StoredFrame(w, h, factor)

    def _meta(self, key: str) -> dict[str, Any]:
        raw = self._r.get(self._k(key, "meta"))
        if raw is None:
            raise KeyError(f"frame {key!r} is not in the frame store (expired or never written)")
        return json.loads(raw)

    def info(self, key: str) -> StoredFrame:
        m = self._meta(key)
        return StoredFrame(int(m["width"]), int(m["height"]), int(m["factor"]))

    def coarse(self, key: str) -> np.ndarray:
        m = self._meta(key)
        raw = self._r.get(self._k(key, "coarse"))
        if raw is None:
            raise KeyError(f"coarse data of frame {key!r} expired")
        self._count_read(key, len(raw))
        return np.frombuffer(raw, np.float32).reshape(m["coarse_shape"]).copy()

    def crop(self, key: str, box: tuple[int, int, int, int]) -> np.ndarray:
        m = self._meta(key)
        w, h, t = int(m["width"]), int(m["height"]), int(m["tile"])
        channels = int(m["channels"])
        dtype = np.dtype(str(m["dtype"]))
        x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
        if x1 <= x0 or y1 <= y0:
            return np.zeros((0, 0), np.float32)
        tys = range(y0 // t, (y1 - 1) // t + 1)
        txs = range(x0 // t, (x1 - 1) // t + 1)
        blobs = self._tiles(key, [(ty, tx) for ty in tys for tx in txs])
        shape_c = () if channels == 1 else (channels,)
        out = np.zeros((y1 - y0, x1 - x0, *shape_c), dtype)
        i = 0
        for ty in tys:
            for tx in txs:
                blob = blobs[i]
                i += 1
                th = min(t, h - ty * t)
                tw = min(t, w - tx * t)
                tile = np.frombuffer(blob, dtype).reshape((th, tw, *shape_c))
                gy0, gx0 = ty * t, tx * t
                sy0, sx0 = max(y0, gy0), max(x0, gx0)
                sy1, sx1 = min(y1, gy0 + th), min(x1, gx0 + tw)
                out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = tile[
                    sy0 - gy0 : sy1 - gy0, sx0 - gx0 : sx1 - gx0
                ]
        self._r.incrby(self._k(key, "read"), int(out.shape[0] * out.shape[1]))
        self._r.expire(self._k(key, "read"), self.ttl_s)
        return to_gray_float(out)

    def _tiles(self, key: str, wanted: list[tuple[int, int]]) -> list[bytes]:
        """Tiles of one frame, each fetched from Redis at most once while that frame is
        being worked on (overlapping crops share tiles)."""
        with self._tile_lock:
            if self._cache_key != key:
                self._cache_key, self._cache = key, {}
            missing = [yx for yx in dict.fromkeys(wanted) if yx not in self._cache]
            if missing:
                blobs = self._r.mget([self._k(key, f"t:{ty}:{tx}") for ty, tx in missing])
                for (ty, tx), blob in zip(missing, blobs, strict=True):
                    if blob is None:
                        raise KeyError(f"tile {ty},{tx} of frame {key!r} expired")
                self._count_read(key, sum(len(b) for b in blobs))
                self._cache.update(zip(missing, blobs, strict=True))
            return [self._cache[yx] for yx in wanted]

    def pixels_read(self, key: str) -> int:
        raw = self._r.get(self._k(key, "read"))
        return int(raw) if raw else 0

    def release_full_res(self, key: str) -> None:
        with self._tile_lock:
            if self._cache_key == key:
                self._cache_key, self._cache = None, {}
        names = list(self._r.scan_iter(match=self._k(key, "t:*"), count=1000))
        if names:
            self._r.delete(*names)

    def delete_session(self, session: str) -> None:
        members = self._r.smembers(f"{PREFIX}:frames:{session}")
        for member in members:
            key = member.decode()
            names = list(self._r.scan_iter(match=self._k(key, "*"), count=1000))
            if names:
                self._r.delete(*names)
        self._r.delete(f"{PREFIX}:frames:{session}")

    def bytes_moved(self, key: str) -> tuple[int, int]:
        with self._lock:
            return self.bytes_written.get(key, 0), self.bytes_read.get(key, 0)

    def _count_read(self, key: str, n: int) -> None:
        with self._lock:
            self.bytes_read[key] = self.bytes_read.get(key, 0) + n


class RedisStateStore:
    """:class:`~samplescout.sessions.StateStore` in Redis, with a per-key lock for updates."""

    def __init__(self, client: redis.Redis, *, ttl_s: int = DEFAULT_TTL_S) -> None:
        self._r: Any = client
        self.ttl_s = ttl_s

    def get(self, key: str) -> bytes | None:
        value = self._r.get(key)
        return None if value is None else bytes(value)

    def set(self, key: str, value: bytes) -> None:
        self._r.set(key, value, ex=self.ttl_s)

    def delete(self, key: str) -> None:
        self._r.delete(key)

    def lock(self, key: str, *, timeout_s: float = 120.0) -> AbstractContextManager[object]:
        """A lock that expires on its own if its holder dies (so a replica can take over)."""
        return self._r.lock(f"{key}:lock", timeout=timeout_s, blocking_timeout=timeout_s)


class RedisEventLog:
    """Session events in one Redis stream per session, followed with ``XREAD BLOCK``."""

    def __init__(self, client: redis.Redis, *, ttl_s: int = DEFAULT_TTL_S) -> None:
        self._r: Any = client
        self.ttl_s = ttl_s

    def _stream(self, session_id: str) -> str:
        return f"{PREFIX}:events:{session_id}"

    def emit(self, event: pipeline_pb2.SessionEvent) -> pipeline_pb2.SessionEvent:
        stamped = pipeline_pb2.SessionEvent()
        stamped.CopyFrom(event)
        stream = self._stream(event.session_id)
        stamped.sequence = int(self._r.incr(f"{stream}:seq"))
        pipe = self._r.pipeline(transaction=True)
        pipe.xadd(stream, {b"e": stamped.SerializeToString()})
        pipe.expire(stream, self.ttl_s)
        pipe.expire(f"{stream}:seq", self.ttl_s)
        pipe.execute()
        return stamped

    def events(self, session_id: str) -> list[pipeline_pb2.SessionEvent]:
        rows = self._r.xrange(self._stream(session_id))
        return [pipeline_pb2.SessionEvent.FromString(f[b"e"]) for _, f in rows]

    def known(self, session_id: str) -> bool:
        return bool(self._r.exists(self._stream(session_id)))

    def follow(
        self,
        session_id: str,
        *,
        timeout_s: float | None = None,
        stop: threading.Event | None = None,
    ) -> Iterator[pipeline_pb2.SessionEvent]:
        stream = self._stream(session_id)
        last = "0-0"
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not (stop is not None and stop.is_set()):
            if deadline is not None and time.monotonic() > deadline:
                return
            reply = self._r.xread({stream: last}, block=500, count=100)
            for _name, rows in reply or []:
                for eid, fields in rows:
                    last = eid
                    event = pipeline_pb2.SessionEvent.FromString(fields[b"e"])
                    yield event
                    if event.kind in TERMINAL_EVENTS:
                        return
                    if timeout_s is not None:
                        deadline = time.monotonic() + timeout_s
