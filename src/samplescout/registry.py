"""Model registry: ``<root>/<name>/<version>/{weights.pt, metadata.json}`` plus aliases.

Layout::

    models/
      aliases.json                 {"select-default": "select-unet@1", ...}
      select-unet/1/weights.pt     a torch state_dict
      select-unet/1/metadata.json  architecture, context, data hash, metrics, date

``metadata.json`` holds ``context`` (what the model was trained for: any of
``microscope``, ``camera``, ``light`` as strings and ``carriers`` as a list) and
``task`` (``select`` / ``identify``). :func:`Registry.resolve` picks the most specific
model of a task whose context agrees with the run's context and falls back to the
task's ``default`` alias, saying so.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from samplescout.atomic import write_bytes_atomic

WEIGHTS = "weights.pt"
METADATA = "metadata.json"
ALIASES = "aliases.json"

#: Context keys that select a model; other keys (user, filters...) are ignored.
CONTEXT_KEYS: tuple[str, ...] = ("microscope", "camera", "light", "carrier")


def shipped_root() -> Path:
    """The registry shipped inside the package."""
    return Path(__file__).resolve().parent / "models"


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """One registered model version."""

    name: str
    version: int
    path: Path
    metadata: dict[str, Any] = field(default_factory=dict)
    fallback: bool = False  # True when resolve() found no context match and used the default

    @property
    def ref(self) -> str:
        """``name@version``, the provenance string of SPEC section 3."""
        return f"{self.name}@{self.version}"

    @property
    def task(self) -> str:
        return str(self.metadata.get("task", ""))

    def load_state_dict(self, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """The weights (tensors only; never executes pickled code)."""
        return torch.load(self.path / WEIGHTS, weights_only=True, map_location=device)


def data_hash(items: Any) -> str:
    """A short stable hash of a JSON-able description of the training data."""
    blob = json.dumps(items, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _matches(model_ctx: dict[str, Any], ctx: dict[str, str]) -> int | None:
    """Specificity (number of agreeing keys) or ``None`` when a key contradicts."""
    score = 0
    for key in CONTEXT_KEYS:
        want = ctx.get(key)
        have = model_ctx.get(key) if key != "carrier" else model_ctx.get("carriers")
        if have in (None, "", [], "*"):
            continue
        if want is None:
            return None  # a specialised model needs the run to say it matches
        ok = want in have if isinstance(have, list) else want == have
        if not ok:
            return None
        score += 1
    return score


class Registry:
    """A model registry rooted at a directory (see module doc)."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else shipped_root()

    # ------------------------------------------------------------------ reading
    def aliases(self) -> dict[str, str]:
        p = self.root / ALIASES
        return json.loads(p.read_text()) if p.is_file() else {}

    def versions(self, name: str) -> list[int]:
        d = self.root / name
        if not d.is_dir():
            return []
        return sorted(
            int(p.name) for p in d.iterdir() if p.name.isdigit() and (p / WEIGHTS).is_file()
        )

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self.versions(p.name))

    def get(self, ref: str) -> ModelRecord:
        """A model by ``name@version``, ``name`` (latest version) or alias.

        Raises
        ------
        KeyError
            When nothing of that name is registered.
        """
        ref = self.aliases().get(ref, ref)
        name, _, ver = ref.partition("@")
        versions = self.versions(name)
        if not versions:
            raise KeyError(f"no model {ref!r} in registry {self.root}")
        version = int(ver) if ver else versions[-1]
        if version not in versions:
            raise KeyError(f"no version {version} of model {name!r} in registry {self.root}")
        path = self.root / name / str(version)
        return ModelRecord(name, version, path, json.loads((path / METADATA).read_text()))

    def resolve(self, task: str, context: dict[str, str] | None = None) -> ModelRecord:
        """The best model of ``task`` for ``context``, else the ``<task>-default`` alias.

        A model matches when every context key it names (``microscope``, ``camera``,
        ``light``, ``carriers``) agrees with ``context``; among matches the most specific
        (most keys) wins, then the newest. ``fallback`` on the record is True when no
        specialised model matched and the default was used.
        """
        ctx = {k: str(v) for k, v in (context or {}).items()}
        default_ref = f"{task}-default"
        best: tuple[int, str, int] | None = None
        for name in self.names():
            for v in self.versions(name):
                meta = json.loads((self.root / name / str(v) / METADATA).read_text())
                if meta.get("task") != task:
                    continue
                score = _matches(meta.get("context", {}), ctx)
                if score is None or score == 0:
                    continue
                key = (score, name, v)
                if best is None or key > best:
                    best = key
        if best is not None:
            return self.get(f"{best[1]}@{best[2]}")
        rec = self.get(default_ref)
        return ModelRecord(rec.name, rec.version, rec.path, rec.metadata, fallback=True)

    # ------------------------------------------------------------------ writing
    def save(
        self,
        name: str,
        state_dict: dict[str, torch.Tensor],
        metadata: dict[str, Any],
        *,
        version: int | None = None,
        aliases: tuple[str, ...] = (),
    ) -> ModelRecord:
        """Register weights as the next version of ``name`` (or ``version``)."""
        existing = self.versions(name)
        v = version if version is not None else (existing[-1] + 1 if existing else 1)
        path = self.root / name / str(v)
        path.mkdir(parents=True, exist_ok=True)
        meta = dict(metadata)
        meta.setdefault("date", _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        meta["name"], meta["version"] = name, v
        tmp = path / (WEIGHTS + ".tmp")
        torch.save({k: t.detach().cpu().contiguous() for k, t in state_dict.items()}, tmp)
        os.replace(tmp, path / WEIGHTS)
        write_bytes_atomic(
            path / METADATA, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
        )
        (path / METADATA).chmod(0o644)
        for alias in aliases:
            self.set_alias(alias, f"{name}@{v}")
        return ModelRecord(name, v, path, meta)

    def set_alias(self, alias: str, ref: str) -> None:
        al = self.aliases()
        al[alias] = ref
        self.root.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(
            self.root / ALIASES, (json.dumps(al, indent=2, sort_keys=True) + "\n").encode()
        )
        (self.root / ALIASES).chmod(0o644)
