"""Frame sources selected by the ``type`` key of the ``[source]`` config table.

Hardware backends import their drivers only inside ``open()``, so this package imports anywhere.
"""

from __future__ import annotations

from typing import Any

from edge.camera.base import Frame, FrameSource
from edge.camera.file import FileSource
from edge.camera.opencv import OpenCVSource
from edge.camera.picamera2 import Picamera2Source
from edge.errors import ConfigError

#: Registry: ``type`` key -> source class.
SOURCES: dict[str, type[FrameSource]] = {
    FileSource.type: FileSource,
    OpenCVSource.type: OpenCVSource,
    Picamera2Source.type: Picamera2Source,
}


def create_source(cfg: Any) -> FrameSource:
    """Build a (not yet opened) source from a source config (see :mod:`edge.config`).

    Args:
        cfg: A ``FileSourceConfig``, ``OpenCVSourceConfig`` or ``Picamera2SourceConfig``.

    Raises:
        ConfigError: for an unknown ``type``.
    """
    kind = getattr(cfg, "type", None)
    if kind == "file":
        return FileSource(cfg.resolved_path(), realtime=cfg.realtime, loop=cfg.loop, fps=cfg.fps)
    if kind == "opencv":
        return OpenCVSource(
            cfg.device,
            width=cfg.width,
            height=cfg.height,
            fps=cfg.fps,
            open_timeout_s=cfg.open_timeout_s,
            backoff_max_s=cfg.backoff_max_s,
        )
    if kind == "picamera2":
        return Picamera2Source(
            cfg.camera_num,
            main_size=tuple(cfg.main_size),  # type: ignore[arg-type]
            lores_size=tuple(cfg.lores_size),  # type: ignore[arg-type]
            use_lores=cfg.use_lores,
            fps=cfg.fps,
            open_timeout_s=cfg.open_timeout_s,
            backoff_max_s=cfg.backoff_max_s,
        )
    raise ConfigError(f"source.type {kind!r} is not one of {sorted(SOURCES)}")


__all__ = [
    "SOURCES",
    "FileSource",
    "Frame",
    "FrameSource",
    "OpenCVSource",
    "Picamera2Source",
    "create_source",
]
