"""Runtime configuration: one frozen record, validated at construction."""

from __future__ import annotations

from typing import Literal

import attrs


@attrs.frozen
class RuntimeConfig:
    """Settings for one runtime. Every field has a default that suits a server.

    Attributes:
        shutdown_grace: Seconds that tasks get to finish after a shutdown starts, before
            everything left is cancelled. Default 10: long enough for in-flight requests,
            short enough for a process supervisor's stop timeout.
        max_blocking_threads: Cap on worker threads used by :func:`spawn_blocking`. Default
            64, far above the core count because blocking work is mostly waiting on I/O.
        unhandled: What to do with a task failure that nobody observes. ``"log"`` (default)
            logs it with its traceback; ``"raise"`` crashes the runtime with it, which suits
            tests and programs that would rather stop than limp on.
        coop_budget: Operations a task may complete without yielding before the cooperative
            budget forces a schedule point. Default 128, as in Tokio. ``1`` gives back Trio's
            "every operation is a schedule point".
        timer_tick: Resolution of the timer wheel, in seconds. Default 1 ms.
        timer_levels: Levels of the timer wheel. Default 6.
        timer_slots: Slots per level (a power of two). Default 64.
        handle_signals: Turn SIGINT and SIGTERM into a graceful shutdown. Only honoured in
            the main thread. Default True.
    """

    shutdown_grace: float = attrs.field(default=10.0, validator=attrs.validators.ge(0))
    max_blocking_threads: int = attrs.field(default=64, validator=attrs.validators.gt(0))
    unhandled: Literal["log", "raise"] = attrs.field(
        default="log", validator=attrs.validators.in_(("log", "raise"))
    )
    coop_budget: int = attrs.field(default=128, validator=attrs.validators.gt(0))
    timer_tick: float = attrs.field(default=0.001, validator=attrs.validators.gt(0))
    timer_levels: int = attrs.field(default=6, validator=attrs.validators.gt(0))
    timer_slots: int = attrs.field(default=64, validator=attrs.validators.gt(0))
    handle_signals: bool = True

    @timer_slots.validator
    def _check_slots(self, attribute: attrs.Attribute[int], value: int) -> None:
        if value & (value - 1):
            raise ValueError(f"timer_slots must be a power of two, got {value}")
