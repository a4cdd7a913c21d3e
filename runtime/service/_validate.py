"""attrs validators shared by the middleware settings.

A bad setting fails when the middleware or its layer is built, not on the first request, and
the message names the field: ``ValueError: 'duration' must be > 0: -1``. A value of the wrong
type (a string of seconds) fails with ``TypeError``. NaN fails every comparison, so it is
refused too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import attrs
from attrs import validators

__all__ = ["at_least_one", "fraction", "non_negative", "positive"]

Validator: TypeAlias = Callable[[Any, "attrs.Attribute[Any]", Any], Any]

_number: Validator = validators.instance_of((int, float))

positive: Validator = validators.and_(_number, validators.gt(0.0))
"""A number > 0 (seconds, rates, multipliers)."""

non_negative: Validator = validators.and_(_number, validators.ge(0.0))
"""A number >= 0 (delays and fractions that may be zero)."""

at_least_one: Validator = validators.and_(validators.instance_of(int), validators.ge(1))
"""An int >= 1 (counts: attempts, limits, samples)."""

fraction: Validator = validators.and_(_number, validators.gt(0.0), validators.lt(1.0))
"""A number strictly between 0 and 1 (a percentile)."""
