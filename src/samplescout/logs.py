"""structlog set-up: console lines for people, JSON for log collectors."""

from __future__ import annotations

import contextlib
import logging
import sys

import structlog


def configure_logging(fmt: str = "console", level: str = "warning") -> None:
    """Configure structlog once at the entry point; logs go to stderr."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.WARNING)
        ),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing.

    Binding the stream at configuration time breaks when it is later replaced and
    closed (test capture, daemonisation): a log call must never raise.
    """

    def write(self, text: str) -> int:
        try:
            return sys.stderr.write(text)
        except (ValueError, OSError):
            return 0

    def flush(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            sys.stderr.flush()


def get_logger(**bound: object) -> structlog.typing.FilteringBoundLogger:
    # Lazy: the logger follows configure_logging() calls made after this one.
    return structlog.get_logger(**bound)


# Quiet by default for library use; entry points call configure_logging() again.
configure_logging()
