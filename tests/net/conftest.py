"""Fixtures for the network tests."""

from __future__ import annotations

import os
import resource
from collections.abc import Iterator

import pytest

from runtime.rt import _coop

# Spare descriptors beyond what a test says it opens: the epoll and eventfd of the reactor,
# Trio's own wakeup and I/O fds, pytest's captures, and fds opened by an import on the way.
_FD_MARGIN = 64


@pytest.fixture
def trio_checkpoints() -> Iterator[None]:
    """Budget 1: every operation is a full Trio checkpoint, as Trio's conformance suite expects."""
    previous = _coop.set_budget(1)
    yield
    _coop.set_budget(previous)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "open_files(count): the test holds about `count` file descriptors at once; the soft "
        "RLIMIT_NOFILE is raised to the hard limit for it, and it is skipped if that is too low",
    )


@pytest.fixture(autouse=True)
def _open_files_limit(request: pytest.FixtureRequest) -> Iterator[None]:
    """Make room for a test marked ``open_files(count)``.

    Raises the soft ``RLIMIT_NOFILE`` to the hard limit when the fds open now plus ``count``
    (plus a margin) would not fit under the soft one, and skips the test, with the numbers,
    when even the hard limit is too low. The soft limit is restored afterwards.
    """
    marker = request.node.get_closest_marker("open_files")
    if marker is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = len(os.listdir("/dev/fd")) + int(marker.args[0]) + _FD_MARGIN
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(
            f"needs {wanted} open files but the hard RLIMIT_NOFILE is {hard}; "
            "raise it (ulimit -Hn) to run this test"
        )
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new_soft = hard if hard != resource.RLIM_INFINITY else wanted
        resource.setrlimit(resource.RLIMIT_NOFILE, (new_soft, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
