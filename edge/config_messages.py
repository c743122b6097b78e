"""Pydantic validation errors as readable lines that name the key and the valid choices.

``('source', 'opencv', 'path')`` becomes ``source.path: unknown key for type 'opencv'; valid
keys: ...``. Where a location leads (which model, which union, which keys) is read off the
config classes' own annotations, so the messages never drift from the schema: a new field, a
new table or a new plugin type in a union needs no change here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from edge.plugins import union_members
from edge.redact import is_secret_key


@dataclass(frozen=True)
class _Tagged:
    """A discriminated union in a location: its members by ``type`` tag."""

    members: dict[str, type[BaseModel]]


@dataclass(frozen=True)
class _Place:
    """Where an error location leads.

    Attributes:
        display: The location as the user writes it (``sinks[0].url``; union tags dropped).
        node: The model class or :class:`_Tagged` union there, or None past the known tables.
        tag: The union member the location entered last (``haar``), when ``node`` is it.
    """

    display: str
    node: Any
    tag: str | None


def format_validation_error(
    err: ValidationError, source: str = "config", *, root: type[BaseModel]
) -> str:
    """Turn a pydantic error into lines like ``source.type: 'usb' is not one of [...]``.

    Args:
        err: The error of ``root.model_validate``.
        source: What was validated (the file name), the message's first word.
        root: The model that was validated (its annotations map locations to tables).
    """
    lines = [_line(e, root) for e in err.errors()]
    head = f"{source}: invalid configuration" if len(lines) > 1 else f"{source}:"
    return head + ("\n  " if len(lines) > 1 else " ") + "\n  ".join(lines)


def _line(e: Any, root: type[BaseModel]) -> str:
    """One error as ``<key>: <problem>``."""
    loc = _locate(e["loc"], root).display
    kind = e["type"]
    ctx = e.get("ctx", {})
    if kind == "extra_forbidden":
        table = _locate(e["loc"][:-1], root)
        what = f"unknown key for type {table.tag!r}" if table.tag else "unknown key"
        valid = _valid_keys(table.node)
        return f"{loc}: {what}" + (f"; valid keys: {', '.join(valid)}" if valid else "")
    if kind == "union_tag_invalid":
        return f"{loc}.type: {ctx.get('tag')!r} is not one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        node = _locate(e["loc"], root).node
        choices = sorted(node.members) if isinstance(node, _Tagged) else []
        return f"{loc}: missing 'type' key (one of {', '.join(choices)})"
    if kind == "literal_error":
        return f"{loc}: {e['input']!r} is not one of {ctx.get('expected')}"
    msg = e["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg}" + (f" (got {e['input']!r})" if _short(e) else "")


def _short(e: Any) -> bool:
    """Whether echoing the offending value helps and cannot leak a secret."""
    v = e.get("input")
    if e["type"] == "missing" or not isinstance(v, (int, float, str, bool)):
        return False
    if isinstance(v, str):
        # Sink settings and URLs may carry credentials: never echo them.
        keys = " ".join(str(p) for p in e["loc"]).lower()
        if "sinks" in keys or "://" in v or "url" in keys or is_secret_key(keys):
            return False
    return len(repr(v)) < 60


def _locate(loc: tuple[Any, ...], root: type[BaseModel]) -> _Place:
    """Follow ``loc`` (keys, list indexes, union tags) from ``root``."""
    parts: list[str] = []
    node: Any = root
    tag: str | None = None
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
            continue
        if isinstance(node, _Tagged) and part in node.members:
            node, tag = node.members[part], str(part)  # a union tag, not a key
            continue
        parts.append(("." if parts else "") + str(part))
        node, tag = _field_node(node, str(part)), None
    return _Place("".join(parts) or "config", node, tag)


def _field_node(model: Any, name: str) -> Any:
    """The table behind field ``name`` of ``model``: a model class, a union, or None."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return None
    field = model.model_fields.get(name)
    return _node(field.annotation) if field is not None else None


def _node(annotation: Any) -> Any:
    """A model class, a :class:`_Tagged` union (also inside ``list[...]``/``Annotated``), or
    None for a plain value."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is list:
        return _node(get_args(annotation)[0])
    if isinstance(annotation, type):
        return annotation if issubclass(annotation, BaseModel) else None
    members = [a for a in get_args(annotation) if a is not type(None)]
    if len(members) == 1:
        return _node(members[0])
    if members and all(_is_plugin_config(m) for m in members):
        return _Tagged(union_members(annotation))
    return None


def _is_plugin_config(member: Any) -> bool:
    return (
        isinstance(member, type) and issubclass(member, BaseModel) and "type" in member.model_fields
    )


def _valid_keys(node: Any) -> list[str]:
    """The keys of a table (sorted), or none when ``node`` is not one."""
    if isinstance(node, type) and issubclass(node, BaseModel):
        return sorted(node.model_fields)
    return []
