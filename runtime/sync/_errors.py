"""The errors of runtime.sync: Trio's own types where they mean the same thing, plus Lagged.

=================  ===========================  =================================================
Name               Is                           Means
=================  ===========================  =================================================
``EndOfChannel``   ``trio.EndOfChannel``        Every sender is closed and nothing is left to
                                                receive. The normal end of a stream.
``Closed``         ``trio.ClosedResourceError`` *Your* handle was closed (by you) and then used.
``WouldBlock``     ``trio.WouldBlock``          A ``try_*`` call could not complete without
                                                waiting.
(Broken)           ``trio.BrokenResourceError`` The *other* side went away: a send to a channel
                                                whose receiver is closed.
``Lagged``         new                          A broadcast subscriber fell behind and ``missed``
                                                values were overwritten.
=================  ===========================  =================================================
"""

from __future__ import annotations

import trio

EndOfChannel = trio.EndOfChannel
Closed = trio.ClosedResourceError
WouldBlock = trio.WouldBlock


class Lagged(Exception):
    """A broadcast subscriber fell so far behind that values it had not seen were overwritten.

    The subscriber is not broken: its next receive returns the oldest value still retained.

    Attributes:
        missed: How many values this subscriber will never see.
    """

    def __init__(self, missed: int) -> None:
        super().__init__(
            f"subscriber lagged behind and missed {missed} value(s); it continues from the "
            "oldest retained value (receive faster, or give the channel more capacity)"
        )
        self.missed = missed


def closed_error(what: str) -> trio.ClosedResourceError:
    return trio.ClosedResourceError(
        f"this {what} was closed; it cannot be used after close() (open or clone another)"
    )


def broken_error(what: str) -> trio.BrokenResourceError:
    return trio.BrokenResourceError(
        f"the receiving side of this {what} is closed, so nothing sent can be delivered; "
        "stop sending, or keep a receiver open"
    )
