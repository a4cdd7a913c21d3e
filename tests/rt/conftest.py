"""Run the task tests through both ways of entering a task's cancel scope."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from runtime.rt import _scope


@pytest.fixture(params=["fast", "public"])
def task_scope_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """Switch runtime.rt._scope to the direct path or to Trio's public ``with scope:``."""
    _scope.use_fast_path(request.param == "fast")
    try:
        yield request.param
    finally:
        _scope.use_fast_path(True)
