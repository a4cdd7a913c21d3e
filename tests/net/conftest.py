"""Fixtures for the network tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime.rt import _coop


@pytest.fixture
def trio_checkpoints() -> Iterator[None]:
    """Budget 1: every operation is a full Trio checkpoint, as Trio's conformance suite expects."""
    previous = _coop.set_budget(1)
    yield
    _coop.set_budget(previous)
