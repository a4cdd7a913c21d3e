"""CancellationToken: a cancel signal that can be passed around and nested.

Trio's own cancellation is structured: a cancel scope cancels the code inside it. A token is
the complement for the cases where the one who decides to stop is not the one who opened the
scope: a server that tells every connection handler to wind down, a request whose client went
away. ``token.scope()`` turns the signal back into a Trio cancel scope, so the code that obeys
it needs no polling.

A token holds its parent strongly and its children and scopes weakly, so a child token or a
scope that nobody references any more is simply forgotten and a long-lived parent does not
accumulate them. A scope is registered with its token *and every ancestor*, so
``with parent.child_token().scope():`` is cancelled by the parent even though nothing keeps the
child token itself alive.
"""

from __future__ import annotations

import weakref
from typing import final

import trio

from ._lowlevel import checkpoint, try_consume_budget

__all__ = ["CancellationToken"]


@final
class CancellationToken:
    """A signal that is cancelled once, wakes everyone waiting on it, and cancels its children.

    ``with token.scope(): ...`` runs a block that the token cancels; ``await
    token.cancelled()`` waits for it; ``token.child_token()`` makes a token that is cancelled
    with this one (but can also be cancelled alone).
    """

    __slots__ = ("__weakref__", "_cancelled", "_children", "_lot", "_parent", "_scopes")

    def __init__(self) -> None:
        self._cancelled = False
        self._parent: CancellationToken | None = None
        self._children: weakref.WeakSet[CancellationToken] = weakref.WeakSet()
        self._scopes: weakref.WeakSet[trio.CancelScope] = weakref.WeakSet()
        self._lot: trio.lowlevel.ParkingLot | None = None

    @trio.lowlevel.enable_ki_protection
    def cancel(self) -> None:
        """Cancel this token, its scopes and its children (recursively). Idempotent."""
        if self._cancelled:
            return
        self._cancelled = True
        scopes, self._scopes = list(self._scopes), weakref.WeakSet()
        for scope in scopes:
            scope.cancel()
        if self._lot is not None:
            self._lot.unpark_all()
        children, self._children = list(self._children), weakref.WeakSet()
        for child in children:
            child.cancel()

    def is_cancelled(self) -> bool:
        """Whether the token was cancelled."""
        return self._cancelled

    async def cancelled(self) -> None:
        """Wait until the token is cancelled (returns at once if it is).

        Cancellation: safe; nothing changes.
        """
        if self._cancelled:
            if not try_consume_budget():
                await checkpoint()
            return
        if self._lot is None:
            self._lot = trio.lowlevel.ParkingLot()
        await self._lot.park()

    def child_token(self) -> CancellationToken:
        """A new token cancelled when this one is (cancelling the child leaves this one alone).

        Returns:
            The child; already cancelled if this token is.
        """
        child = CancellationToken()
        if self._cancelled:
            child._cancelled = True
        else:
            child._parent = self
            self._children.add(child)
        return child

    def scope(self) -> trio.CancelScope:
        """A Trio cancel scope that this token cancels.

        Returns:
            A new ``trio.CancelScope`` (enter it with ``with``); already cancelled if the
            token is. Like any scope it can also be cancelled directly or given a deadline.
        """
        scope = trio.CancelScope()
        token: CancellationToken | None = self
        while token is not None:
            if token._cancelled:
                scope.cancel()
                break
            token._scopes.add(scope)
            token = token._parent
        return scope

    def __repr__(self) -> str:
        return f"<CancellationToken {'cancelled' if self._cancelled else 'active'}>"
