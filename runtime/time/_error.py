"""The error every timeout in the project raises."""

from __future__ import annotations


class Elapsed(TimeoutError):
    """A deadline passed before the operation finished.

    A subclass of the built-in :class:`TimeoutError`, so ``except TimeoutError`` catches it.
    Raised by :func:`runtime.time.timeout` and by the ``Timeout`` middleware.
    """
