"""Progress bars for long command-line work, drawn with ``rich`` on stderr.

Typical use::

    from samplescout.progress import progress

    with progress(len(frames), "localizing", enabled=None) as bar:
        for frame in frames:
            work(frame)
            bar.advance()

Bars are drawn only when ``enabled`` is true, or, with ``enabled=None``, when stderr is
a terminal; otherwise :func:`progress` hands out a no-op bar, so callers never branch.
A ``total`` of ``None`` shows a spinner with a running count instead of a bar.
Bars are transient: they disappear when done, so printed results stay readable.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol, TextIO, TypeVar

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

T = TypeVar("T")


class ProgressBar(Protocol):
    """What :func:`progress` yields."""

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units of work as done."""

    def describe(self, description: str) -> None:
        """Replace the text shown before the bar."""


class _NullBar:
    """A bar that draws nothing (quiet mode, stderr not a terminal)."""

    def __init__(self) -> None:
        self.done = 0

    def advance(self, n: int = 1) -> None:
        self.done += n

    def describe(self, description: str) -> None:
        del description


class _RichBar:
    def __init__(self, bar: Progress, task: TaskID) -> None:
        self._bar = bar
        self._task = task
        self.done = 0

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._bar.advance(self._task, n)

    def describe(self, description: str) -> None:
        self._bar.update(self._task, description=description)


def wanted(enabled: bool | None, stream: TextIO | None = None) -> bool:
    """Whether to draw: ``enabled`` if given, else whether ``stream`` (stderr) is a terminal."""
    if enabled is not None:
        return enabled
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


@contextmanager
def progress(
    total: int | None,
    description: str,
    *,
    enabled: bool | None = None,
    stream: TextIO | None = None,
) -> Iterator[ProgressBar]:
    """A progress bar for ``total`` units of work, as a context manager.

    Parameters
    ----------
    total
        Number of units (frames...); ``None`` or 0 when unknown (spinner and count).
    description
        Text shown before the bar.
    enabled
        ``True`` draws, ``False`` never draws, ``None`` draws when ``stream`` is a
        terminal.
    stream
        Where to draw (default ``sys.stderr``).

    Yields
    ------
    ProgressBar
        An object with ``advance(n=1)`` and ``describe(text)``.
    """
    target = sys.stderr if stream is None else stream
    if not wanted(enabled, target):
        yield _NullBar()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    known = bool(total)
    columns = (
        [
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        ]
        if known
        else [SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()]
    )
    console = Console(file=target, stderr=target is sys.stderr)
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(description, total=total if known else None)
        yield _RichBar(bar, task)


def track(
    items: Iterable[T],
    total: int | None,
    description: str,
    *,
    enabled: bool | None = None,
) -> Iterator[T]:
    """Yield ``items``, advancing a bar after each one has been processed.

    The bar advances when the consumer asks for the next item, i.e. after it has
    finished with the previous one.
    """
    with progress(total, description, enabled=enabled) as bar:
        for item in items:
            yield item
            bar.advance()
