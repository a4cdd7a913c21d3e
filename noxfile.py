"""Developer sessions: nox -s tests | lint | typecheck | docs | bench."""

from __future__ import annotations

from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package."""
    session.install("-e", ".[test,dev]")
    session.run("mypy", "--strict", "runtime")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with --strict (warnings are errors)."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs, env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def bench(session: nox.Session) -> None:
    """Run every benchmark (not timed tests: read the printed ratios).

    Arguments after ``--`` go to every script, so only pass flags they all take. CI
    smoke-runs each script in its shortest mode through tests/test_benchmarks_smoke.py.
    """
    session.install("-e", ".[bench]")
    scripts = [p for p in sorted(Path("benchmarks").glob("*.py")) if not p.name.startswith("_")]
    for script in scripts:
        session.run("python", str(script), *session.posargs)
