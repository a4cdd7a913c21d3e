"""docs/reference/proxy-config.md against the validator: the same keys, the same defaults;
and examples/proxy.toml is a valid config."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import attrs
import pytest

from runtime.proxy import _config as config
from runtime.proxy import load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent.parent
DOC = (ROOT / "docs" / "reference" / "proxy-config.md").read_text(encoding="utf-8")
TABLES = {
    "Top level": config.ProxyConfig,
    "`[admin]`": config.AdminConfig,
    "`[[listeners]]`": config.ListenerConfig,
    "`[listeners.tls]`": config.TlsConfig,
    "`[[routes]]`": config.RouteConfig,
    "`[[upstreams]]`": config.UpstreamConfig,
}


def documented(section: str) -> dict[str, str]:
    """``key: default`` from the section's table."""
    body = DOC.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \| [^|]+ \| ([^|]+) \|", body, re.MULTILINE)
    return {key: default.strip() for key, default in rows}


def toml_default(field: attrs.Attribute[Any]) -> str | None:
    """How the doc writes the field's default (None: not a literal)."""
    default = field.default
    if default is attrs.NOTHING:
        return "required"
    if default is None:
        return "none"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, str):
        return f'`"{default}"`'
    if isinstance(default, int | float):
        return f"`{default}`"
    if default == ():
        return "`[]`"
    return None


@pytest.mark.parametrize("section", list(TABLES))
def test_every_key_is_documented_with_its_default(section: str) -> None:
    cls = TABLES[section]
    rows = documented(section)
    fields = {f.name: f for f in attrs.fields(cls)}
    assert set(rows) == set(fields), f"{section}: documented keys differ from the validator's"
    for name, field in fields.items():
        expected = toml_default(field)
        if expected is not None and not rows[name].startswith("required"):
            assert rows[name] == expected, f"{section} {name}: {rows[name]} != {expected}"


def test_the_example_config_is_valid() -> None:
    loaded = load_config(ROOT / "examples" / "proxy.toml")
    assert [r.upstream for r in loaded.routes] == ["api", "web"]


def test_the_issue_shape_is_accepted() -> None:
    parse_config(
        """
[admin]
listen = "127.0.0.1:9901"
[[listeners]]
name = "web"
listen = "127.0.0.1:8080"
[[routes]]
listener = "web"
path_prefix = "/"
upstream = "backend"
timeout = 5.0
per_try_timeout = 1.0
retries = 2
max_concurrency = 1000
[[upstreams]]
name = "backend"
endpoints = ["127.0.0.1:9000", "127.0.0.1:9001"]
"""
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[[listeners]]\nname = "w"\nlisten = "nohost"',
            "listeners[0].listen: expected HOST:PORT",
        ),
        ('[[listeners]]\nname = "w"\nlisten = "a:1"\ntypo = 1', "listeners[0].typo: unknown key"),
        ("grace = -1", "grace: must be a positive number of seconds"),
        ("", "listeners: at least one [[listeners]] table is needed"),
        (
            '[[listeners]]\nname = "w"\nlisten = "a:1"\n[[routes]]\nlistener = "w"\n'
            'upstream = "u"',
            "routes[0].upstream: no upstream named 'u'",
        ),
        (
            '[[listeners]]\nname = "w"\nlisten = "a:1"\n[[upstreams]]\nname = "u"',
            "upstreams[0]: give either endpoints",
        ),
        (
            '[[listeners]]\nname = "w"\nlisten = "a:1"\n[[listeners]]\nname = "w"\nlisten = "a:2"',
            "listeners[1].name: 'w' is used twice",
        ),
        (
            '[[listeners]]\nname = "w"\nlisten = "a:1"\nmax_connections = "many"',
            "expected an integer",
        ),
        ("[admin]\nlisten = 5", "admin.listen: expected a string"),
        ("access_log = 1", "access_log: expected true or false"),
    ],
)
def test_bad_configs_name_the_key(text: str, problem: str) -> None:
    with pytest.raises(config.ConfigError) as info:
        parse_config(text, "t.toml")
    assert any(p.startswith(problem) or problem in p for p in info.value.problems), info.value
