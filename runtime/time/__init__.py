"""runtime.time: the timer wheel and the time API on top of it."""

from __future__ import annotations

from ._error import Elapsed as Elapsed

__all__ = ["Elapsed"]
