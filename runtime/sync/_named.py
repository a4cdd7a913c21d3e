"""Channels given a name, for the metrics to find: a weak table, so naming one keeps nothing
alive, and an unnamed channel is not in it at all (it costs nothing)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import attrs

_named: weakref.WeakKeyDictionary[Any, tuple[str, str, Callable[[Any], Any]]] = (
    weakref.WeakKeyDictionary()
)


@attrs.frozen
class NamedChannel:
    """A live channel that was given a name, with a snapshot of its statistics.

    Attributes:
        kind: ``"mpsc"`` or ``"broadcast"``.
        name: The name it was opened with.
        statistics: Its ``statistics()`` record at the time of the snapshot.
    """

    kind: str
    name: str
    statistics: Any


def remember(state: Any, kind: str, name: str, statistics: Callable[[Any], Any]) -> None:
    """Enter a named channel's shared state (weakly)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a channel's name must be a non-empty str, got {name!r}")
    _named[state] = (kind, name, statistics)


def named_channels() -> list[NamedChannel]:
    """Every live channel opened with ``name=``, with its statistics now."""
    return [
        NamedChannel(kind, name, statistics(state))
        for state, (kind, name, statistics) in list(_named.items())
    ]
