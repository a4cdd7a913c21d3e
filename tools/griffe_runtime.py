"""A Griffe extension that makes the API reference render what the docstrings say.

mkdocstrings loads it through the Python handler's ``extensions`` option (see mkdocs.yml).
Once the whole ``runtime`` package is loaded it does three things:

1. Sphinx cross-reference roles (``:class:`~runtime.net.TcpStream```, ``:meth:`close```,
   ``:mod:`._scope```...) become mkdocs-autorefs references. Each target is resolved the way
   Sphinx would: against the object the docstring belongs to, its class, its module and the
   packages above, then as an absolute path. A resolved target becomes an *optional*
   autoref, so it is a link when the object is rendered somewhere in the site and plain
   inline code when it is not (a private helper, a filtered member); a target that resolves
   to nothing (``trio.Nursery``, ``random``) becomes plain inline code at once. No broken
   link, no warning under ``mkdocs build --strict``.
2. attrs classes (``@attrs.define``, ``@attrs.frozen``...) get the ``__init__`` that attrs
   generates at import time, so ``merge_init_into_class`` has a signature to show.
3. Protocol dunders that carry no docstring of their own (``JoinHandle.__await__``,
   ``JoinSet.__aiter__``...) get a one-line docstring naming the syntax they enable, since
   mkdocstrings hides members without docstrings.

The docstrings in ``runtime/`` are not changed: only the copy that Griffe holds.
"""

from __future__ import annotations

import html
import re
from typing import Any

from griffe import (
    Alias,
    Attribute,
    Class,
    Docstring,
    Expr,
    ExprCall,
    ExprKeyword,
    Extension,
    Function,
    Module,
    Object,
    Parameter,
    ParameterKind,
    Parameters,
)

ROLE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|attr|data|exc|mod|obj|const|type):`(?P<content>[^`]+)`"
)
EXPLICIT_TITLE = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^<>]+)>$")
CALLABLE_ROLES = frozenset({"func", "meth"})

PROTOCOL_DOCS = {
    "__call__": "Call the object: `obj(...)`.",
    "__await__": "Make the object awaitable: `await obj`.",
    "__aiter__": "Iterate with `async for item in obj`.",
    "__anext__": "The next item of `async for`.",
    "__aenter__": "Enter `async with obj as value`.",
    "__enter__": "Enter `with obj as value`.",
    "__iter__": "Iterate with `for item in obj`.",
    "__next__": "The next item of `for`.",
    "__len__": "`len(obj)`.",
    "__contains__": "`item in obj`.",
    "__getitem__": "`obj[key]`.",
    "__bool__": "`bool(obj)`.",
}

ATTRS_DECORATORS = frozenset(
    {"attrs.define", "attrs.frozen", "attrs.mutable", "attr.s", "attr.attrs", "attr.define"}
    | {"attr.frozen", "attr.mutable", "attr.dataclass"}
)
ATTRS_FIELDS = frozenset({"attrs.field", "attr.ib", "attr.attrib", "attr.field"})


def _walk(obj: Module | Class) -> list[Object]:
    """Every object defined under ``obj`` (aliases are left out: their target is visited)."""
    found: list[Object] = []
    for member in obj.members.values():
        if isinstance(member, Alias):
            continue
        found.append(member)
        if isinstance(member, Module | Class):
            found.extend(_walk(member))
    return found


# --- 1. Sphinx roles -------------------------------------------------------------------------


def _lookup(scope: Object | Alias, dotted: str) -> Object | Alias | None:
    current: Object | Alias = scope
    for part in dotted.split("."):
        try:
            members = current.all_members if current.is_class else current.members
            current = members[part]
        except Exception:  # a missing member or an alias Griffe cannot resolve
            return None
    return current


def resolve(obj: Object, target: str) -> str | None:
    """The canonical path that ``target``, written in ``obj``'s docstring, names, or None."""
    name = target.lstrip(".")
    if not name:
        return None
    scopes: list[Object] = []
    scope: Object | None = obj if isinstance(obj, Module | Class) else obj.parent
    while scope is not None:
        scopes.append(scope)
        scope = scope.parent
    found: Object | Alias | None = None
    for scope in scopes:
        found = _lookup(scope, name)
        if found is not None:
            break
    else:
        try:
            found = obj.modules_collection[name]
        except Exception:  # not loaded: an outside name
            return None
    try:
        return found.canonical_path
    except Exception:  # an alias to a package that is not loaded (trio...)
        return None


def _title(role: str, content: str) -> tuple[str, str, bool]:
    """``(title, target, link)`` for a role's content, as Sphinx would show it."""
    explicit = EXPLICIT_TITLE.match(content)
    if explicit:
        return explicit["title"], explicit["target"], True
    link = not content.startswith("!")
    content = content.lstrip("!")
    target = content.lstrip("~")
    title = target.lstrip(".")
    if content.startswith("~"):
        title = title.rpartition(".")[2]
    if role in CALLABLE_ROLES and not title.endswith(")"):
        title += "()"
    return title, target.removesuffix("()"), link


def rewrite_roles(obj: Object, text: str) -> tuple[str, int, int]:
    """``text`` with every role rewritten; also how many became links and how many code."""
    linked = plain = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal linked, plain
        title, target, link = _title(match["role"], match["content"])
        code = f"`{title}`" if "`" not in title else f"`` {title} ``"
        path = resolve(obj, target) if link else None
        if path is None:
            plain += 1
            return code
        linked += 1
        identifier = html.escape(path)
        return f'<autoref identifier="{identifier}" class="sphinx-role" optional>{code}</autoref>'

    return ROLE.sub(replace, text), linked, plain


def _set_docstring(obj: Object, value: str) -> None:
    assert obj.docstring is not None
    obj.docstring.value = value
    obj.docstring.__dict__.pop("parsed", None)  # a cached parse of the old text


# --- 2. attrs classes ------------------------------------------------------------------------


def _call_path(expr: object) -> str | None:
    if isinstance(expr, Expr):
        try:
            return expr.canonical_path
        except Exception:
            return None
    return None


def _attrs_decorator(cls: Class) -> dict[str, Any] | None:
    """The keyword arguments of ``cls``'s attrs decorator, or None if it has none."""
    for decorator in cls.decorators:
        value = decorator.value
        function = value.function if isinstance(value, ExprCall) else value
        if _call_path(function) in ATTRS_DECORATORS:
            return _keywords(value) if isinstance(value, ExprCall) else {}
    return None


def _keywords(call: ExprCall) -> dict[str, Any]:
    return {
        argument.name: argument.value
        for argument in call.arguments
        if isinstance(argument, ExprKeyword)
    }


def _attrs_parameters(cls: Class, kw_only: bool) -> list[Parameter]:
    parameters = []
    for member in cls.members.values():
        if not isinstance(member, Attribute) or member.annotation is None:
            continue
        if "instance-attribute" not in member.labels:  # a ClassVar
            continue
        value = member.value
        field: dict[str, Any] | None = None
        if isinstance(value, ExprCall) and _call_path(value.function) in ATTRS_FIELDS:
            field = _keywords(value)
        if field is not None and str(field.get("init")) == "False":
            continue
        default: str | Expr | None
        if field is None:
            default = value
        elif "factory" in field:
            default = ExprCall(function=field["factory"], arguments=[])
        else:
            default = field.get("default")
        alias = field.get("alias") if field else None
        name = str(alias).strip("'\"") if alias is not None else member.name.lstrip("_")
        keyword_only = kw_only or (field is not None and str(field.get("kw_only")) == "True")
        kind = ParameterKind.keyword_only if keyword_only else ParameterKind.positional_or_keyword
        parameters.append(
            Parameter(name, annotation=member.annotation, kind=kind, default=default)
        )
    return parameters


def add_attrs_init(cls: Class) -> bool:
    """Give an attrs class the ``__init__`` attrs generates; False if it is not one."""
    if "__init__" in cls.members:
        return False
    arguments = _attrs_decorator(cls)
    if arguments is None or str(arguments.get("init")) == "False":
        return False
    parameters: dict[str, Parameter] = {}
    try:
        lineage = [*reversed(cls.mro()), cls]
    except Exception:  # a base Griffe cannot resolve
        lineage = [cls]
    for ancestor in lineage:
        ancestor_arguments = _attrs_decorator(ancestor)
        if ancestor_arguments is None:
            continue
        kw_only = str(ancestor_arguments.get("kw_only")) == "True"
        for parameter in _attrs_parameters(ancestor, kw_only):
            parameters[parameter.name] = parameter
    ordered = sorted(parameters.values(), key=lambda p: p.kind is ParameterKind.keyword_only)
    init = Function(
        "__init__",
        lineno=cls.lineno,
        endlineno=cls.lineno,
        parent=cls,
        parameters=Parameters(
            Parameter("self", kind=ParameterKind.positional_or_keyword), *ordered
        ),
        returns="None",
    )
    cls.set_member("__init__", init)
    return True


# --- 3. protocol dunders ---------------------------------------------------------------------


def document_protocol(func: Function) -> bool:
    """Give an undocumented protocol dunder a one-line docstring; False if it has one."""
    summary = PROTOCOL_DOCS.get(func.name)
    if summary is None or func.docstring is not None or func.parent is None:
        return False
    if not isinstance(func.parent, Class):
        return False
    func.docstring = Docstring(summary, parent=func)
    return True


class RuntimeReference(Extension):
    """Sphinx roles to autorefs, attrs ``__init__`` signatures, documented protocol dunders."""

    def __init__(self) -> None:
        super().__init__()
        self.linked = 0
        self.plain = 0
        self.inits = 0
        self.dunders = 0

    def on_package(self, *, pkg: Module, **kwargs: Any) -> None:
        objects = [pkg, *_walk(pkg)]
        for obj in objects:
            if isinstance(obj, Class) and add_attrs_init(obj):
                self.inits += 1
            if isinstance(obj, Function) and document_protocol(obj):
                self.dunders += 1
        for obj in objects:
            if obj.docstring is None or ":" not in obj.docstring.value:
                continue
            text, linked, plain = rewrite_roles(obj, obj.docstring.value)
            if linked or plain:
                _set_docstring(obj, text)
                self.linked += linked
                self.plain += plain
