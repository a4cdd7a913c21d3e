"""Import examples/mini_redis as the package ``mini_redis`` (the examples are not installed)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mini_redis"

if "mini_redis" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "mini_redis", EXAMPLE / "__init__.py", submodule_search_locations=[str(EXAMPLE)]
    )
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["mini_redis"] = _module
    _spec.loader.exec_module(_module)
