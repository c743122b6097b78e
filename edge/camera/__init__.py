"""Frame sources as typed plugins, selected by the ``type`` key of the ``[source]`` table.

Each source type has a :class:`~edge.camera.base.FrameSource` subclass registered here under its
``type`` and its own config class in :mod:`edge.camera.config` (the members of
:data:`~edge.camera.config.SourceConfig`); :func:`create_source` is
``SOURCES[cfg.type].from_config(cfg)``. Hardware backends import their drivers only inside
``open()``, so this package imports anywhere.
"""

from __future__ import annotations

from edge.camera.base import Frame, FrameSource
from edge.camera.config import (
    FileSourceConfig,
    OpenCVSourceConfig,
    Picamera2SourceConfig,
    SourceConfig,
    source_override,
)
from edge.camera.file import FileSource
from edge.camera.opencv import OpenCVSource
from edge.camera.picamera2 import Picamera2Source
from edge.errors import ConfigError
from edge.plugins import build_registry

#: Registry: ``type`` key -> source class (checked against :data:`SourceConfig` at import).
SOURCES: dict[str, type[FrameSource]] = build_registry(
    [FileSource, OpenCVSource, Picamera2Source], SourceConfig, "source"
)


def create_source(
    cfg: FileSourceConfig | OpenCVSourceConfig | Picamera2SourceConfig,
) -> FrameSource:
    """Build a (not yet opened) source from its validated ``[source]`` config.

    Raises:
        ConfigError: for a config whose ``type`` has no backend, naming the valid types.
    """
    try:
        cls = SOURCES[cfg.type]
    except (KeyError, AttributeError):
        kind = getattr(cfg, "type", None)
        raise ConfigError(f"source.type {kind!r} is not one of {sorted(SOURCES)}") from None
    return cls.from_config(cfg)


__all__ = [
    "SOURCES",
    "FileSource",
    "FileSourceConfig",
    "Frame",
    "FrameSource",
    "OpenCVSource",
    "OpenCVSourceConfig",
    "Picamera2Source",
    "Picamera2SourceConfig",
    "SourceConfig",
    "create_source",
    "source_override",
]
