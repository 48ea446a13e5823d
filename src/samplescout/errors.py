"""Error types with the one-line messages the CLI and the gRPC API report."""

from __future__ import annotations


class SampleScoutError(Exception):
    """Base class of errors that are reported as one clear line, never a traceback."""

    exit_code = 1


class InputError(SampleScoutError):
    """Bad input (SPEC section 2): exit status 2 / gRPC ``INVALID_ARGUMENT``.

    Parameters
    ----------
    source
        What was read: a bundle directory (shown with a trailing ``/``) or a request.
    field
        The offending field, e.g. ``frames[3].pixel_size_mm``.
    message
        What is wrong with it, e.g. ``must be > 0``.
    """

    exit_code = 2

    def __init__(self, source: str, field: str, message: str) -> None:
        self.source = source
        self.field = field
        self.message = message
        super().__init__(f"{source}: {field}: {message}" if field else f"{source}: {message}")


class OperationalError(SampleScoutError):
    """The run could not be done (e.g. Redis unreachable): exit status 1."""


class DeadlineExceeded(OperationalError):
    """The caller's deadline passed before the work was done."""
