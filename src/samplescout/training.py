"""The optimisation loop's bookkeeping, shared by the selection and identification trainers."""

from __future__ import annotations

import math
import time
from contextlib import ExitStack
from typing import Any

import numpy as np
import torch

from samplescout.progress import progress

#: Steps before the loss threshold may stop training (the moving average must settle).
MIN_STEPS = 50


class LossMonitor:
    """Applies each optimisation step and decides when to stop.

    Keeps the loss history and its moving average, advances a progress bar that shows
    the loss, and stops once the average reaches ``loss_threshold`` (``0``: never early).
    Use as a context manager around the loop so the bar is closed.
    """

    def __init__(self, steps: int, *, loss_threshold: float, log: bool) -> None:
        self.loss_threshold = loss_threshold
        self.history: list[float] = []
        self.ema: float | None = None
        self.started = time.perf_counter()
        self._bars = ExitStack()
        self._bar = self._bars.enter_context(
            progress(steps, "training", enabled=None if log else False)
        )

    def __enter__(self) -> LossMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.close()

    def step(
        self,
        loss: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
    ) -> bool:
        """Back-propagate ``loss``, step the optimiser and schedule; ``True``: stop now."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        value = float(loss.detach())
        self.history.append(value)
        self.ema = value if self.ema is None else 0.95 * self.ema + 0.05 * value
        self._bar.advance()
        if len(self.history) % 10 == 0:
            self._bar.describe(f"training, loss {self.ema:.4f}")
        return (
            self.loss_threshold > 0
            and len(self.history) >= MIN_STEPS
            and self.ema <= self.loss_threshold
        )

    def summary(self) -> dict[str, Any]:
        """Steps, first/last/final loss and seconds, for the model's metadata."""
        h = self.history
        return {
            "steps": len(h),
            "first_loss": float(np.mean(h[:10])) if h else math.nan,
            "last_loss": float(np.mean(h[-10:])) if h else math.nan,
            "final_loss": float(self.ema if self.ema is not None else math.nan),
            "seconds": time.perf_counter() - self.started,
        }
