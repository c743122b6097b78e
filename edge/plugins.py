"""Typed plugins: a backend class per ``type`` key, a pydantic config class per backend.

Every pluggable stage (camera, face detector, event sink) follows one pattern, after Frigate's
detector plugins: each backend class declares its ``type`` and its config class, the config
classes form a union discriminated by ``type`` (the TOML table's ``type`` key picks the class),
and ``create_*(cfg)`` is ``REGISTRY[cfg.type].from_config(cfg)`` with the validated config.
Error messages (valid types, valid keys) are read off the unions here, never from a hand-kept
list, so adding a backend is one config class in the union plus one registered class.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar, get_args, get_origin

from pydantic import BaseModel

P = TypeVar("P", bound=type)


def union_members(union: Any) -> dict[str, type[BaseModel]]:
    """``type`` tag -> model class of a discriminated union such as
    :data:`edge.camera.config.SourceConfig`, read off the union itself (so error messages never
    drift from the real choices)."""
    args = get_args(union)
    while args and get_origin(union) is Annotated:  # Annotated[Annotated[A | B, ...], ...]
        union = args[0]
        args = get_args(union)
    out: dict[str, type[BaseModel]] = {}
    for member in args:
        if member is type(None):  # an optional union: None is no member
            continue
        (tag,) = get_args(member.model_fields["type"].annotation)
        out[str(tag)] = member
    return out


def build_registry(classes: list[P], union: Any, what: str) -> dict[str, P]:
    """The registry ``type`` -> backend class, checked against the config union.

    Every backend must name its config class (``config_class``), that class must be the union's
    member for the backend's ``type``, and every union member must have exactly one backend, so
    a config that validates always has a backend to build.

    Raises:
        RuntimeError: naming the mismatch (a programming error, found at import).
    """
    members = union_members(union)
    registry: dict[str, P] = {}
    for cls in classes:
        kind = getattr(cls, "type", "")
        if not kind or kind in registry:
            raise RuntimeError(f"{what} type {kind!r} is empty or registered twice")
        if members.get(kind) is not getattr(cls, "config_class", None):
            raise RuntimeError(
                f"{what} {cls.__name__}.config_class is not the {what} config union's {kind!r}"
            )
        registry[kind] = cls
    missing = sorted(set(members) - set(registry))
    if missing:
        raise RuntimeError(f"{what} types without a backend: {', '.join(missing)}")
    return registry
