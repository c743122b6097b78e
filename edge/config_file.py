"""The config file's side of ``fer-edge run``: reading TOML, merging CLI overrides over it, and
warning about secrets in a world-readable file.

Validation is :mod:`edge.config`'s job; everything here works on plain dicts, before it.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from edge.errors import ConfigError
from edge.redact import is_secret_key

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 on older devices
    import tomli as tomllib

log = logging.getLogger(__name__)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file.

    Raises:
        ConfigError: if the file is missing, unreadable or not valid TOML.
    """
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"config file {p} cannot be read: {e}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {p} is not valid TOML: {e}") from None


def merge_overrides(data: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``data``.

    A ``sinks`` list is appended to the file's sinks, replacing a same-type entry; a ``source``
    or ``detector`` table of another ``type`` replaces the file's (keeping the detector keys the
    new type shares); other tables merge key by key.
    """
    out = dict(data)
    for key, value in overrides.items():
        if key == "sinks" and isinstance(value, list) and all(isinstance(v, dict) for v in value):
            # Malformed sink lists fall through to plain assignment: validation names them.
            out["sinks"] = _merge_sinks(out.get("sinks"), value)
        elif key == "source" and isinstance(value, dict) and "type" in value:
            out["source"] = _switch_source(out.get("source"), value)
        elif key == "detector" and isinstance(value, dict) and "type" in value:
            out["detector"] = _switch_detector(out.get("detector"), value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = value
    return out


def _merge_sinks(old: Any, new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The file's sinks with each new one appended, replacing a file sink of its type."""
    sinks = [s for s in old if isinstance(s, dict)] if isinstance(old, list) else []
    for sink in new:
        sinks = [s for s in sinks if s.get("type") != sink.get("type")]
        sinks.append(sink)
    return sinks


def _switch_source(old: Any, new: dict[str, Any]) -> dict[str, Any]:
    """``--source`` over a file's ``[source]`` table: same type merges, another replaces."""
    if isinstance(old, dict) and old.get("type") == new["type"]:
        return {**old, **new}
    return dict(new)


def _switch_detector(old: Any, new: dict[str, Any]) -> dict[str, Any]:
    """``--detector TYPE`` over a file's ``[detector]`` table: keep the keys the new type also
    has (the schedule: motion gate, min_face, ...), drop the old type's own (a Haar cascade
    means nothing to BlazeFace), with a warning naming them."""
    if not isinstance(old, dict):
        return dict(new)
    from edge.detect.config import DEFAULT_DETECTOR, detector_types

    model = detector_types().get(str(new["type"]))
    if old.get("type", DEFAULT_DETECTOR) == new["type"] or model is None:
        return {**old, **new}  # same type (or an unknown one: validation names it)
    valid = set(model.model_fields)
    dropped = sorted(k for k in old if k not in valid)
    if dropped:
        log.warning(
            "detector type %r from the command line: ignoring the config file's %s keys %s",
            new["type"],
            old.get("type", DEFAULT_DETECTOR),
            ", ".join(dropped),
        )
    return {**{k: v for k, v in old.items() if k in valid}, **new}


def find_secrets(data: Any, prefix: str = "") -> list[str]:
    """Dotted keys of non-empty secret-looking values (password, token, ...) in a config dict."""
    found: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if _is_inline_secret(k, v):
                found.append(key)
            else:
                found.extend(find_secrets(v, key))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            found.extend(find_secrets(v, f"{prefix}[{i}]"))
    elif isinstance(data, str) and _url_has_password(data):
        found.append(prefix)
    return found


def _is_inline_secret(key: Any, value: Any) -> bool:
    """A secret-named key holding the secret itself (not a ``*_file``/``*_env`` reference)."""
    return (
        is_secret_key(key)
        and isinstance(value, str)
        and bool(value)
        and not str(key).lower().endswith(("_file", "_env"))
    )


def _url_has_password(text: str) -> bool:
    """``scheme://user:password@host...``."""
    if "://" not in text:
        return False
    netloc = text.split("://", 1)[1].split("/")[0]
    return "@" in netloc and ":" in netloc.split("@")[0]


def warn_if_exposed_secrets(path: str | Path, data: dict[str, Any]) -> list[str]:
    """Log a warning when a world-readable config file holds secrets; return their keys."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return []
    if not mode & 0o004:
        return []
    keys = find_secrets(data)
    if keys:
        log.warning(
            "config file %s is world-readable and contains secrets (%s): chmod 640 it, or move "
            "them to a password_file / the environment",
            path,
            ", ".join(keys),
        )
    return keys
