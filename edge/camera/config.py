"""Validated ``[source]`` tables: one pydantic class per frame-source type (typed plugins).

:data:`SourceConfig` is the union of :class:`FileSourceConfig`, :class:`OpenCVSourceConfig` and
:class:`Picamera2SourceConfig` discriminated by ``type``; each class rejects unknown keys, so an
OpenCV key on a file source is an error naming the keys valid for ``file``. Each backend in
:mod:`edge.camera` names its class here (``config_class``) and is built from it by
:func:`edge.camera.create_source`. :func:`source_override` turns a ``--source`` value into a table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge.bundled import default_sample_path
from edge.redact import mask_url


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileSourceConfig(_Strict):
    """A video file or an image folder (replays, tests, the bundled sample)."""

    type: Literal["file"] = Field("file", description="Source type: a video file or image folder.")
    path: Path | None = Field(
        None,
        description="Video file or folder of images; default: the bundled sample video "
        "(public-domain NASA portrait).",
    )
    realtime: bool = Field(
        False,
        description="Pace frames at the file's native frame rate and keep only the newest "
        "frame, like a camera. Default: every frame, as fast as possible.",
    )
    loop: bool = Field(False, description="Replay from the start at the end instead of stopping.")
    fps: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="Frame rate of an image folder, or an override of the "
        "video's own rate (affects realtime pacing and frame timestamps).",
    )

    def resolved_path(self) -> Path:
        """``path`` or the bundled sample."""
        return self.path if self.path is not None else default_sample_path()

    def summary(self) -> str:
        """One-line description for logs (``file <path>``)."""
        return f"file {self.resolved_path()}"


class _LiveConfig(_Strict):
    """Keys of the live sources (cameras, streams), which reopen a device that fails."""

    open_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Retry opening (and reopening a camera or stream that fails while running) "
        "with backoff for this long before failing with a clear error.",
    )
    backoff_max_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="Upper bound of the doubling delay (from 0.25 s) between open attempts; a "
        "camera that comes back delivers frames again within about this long.",
    )


class OpenCVSourceConfig(_LiveConfig):
    """A USB camera, a GStreamer pipeline (Jetson CSI) or an RTSP/HTTP stream via OpenCV."""

    type: Literal["opencv"] = Field(description="Source type: cv2.VideoCapture.")
    device: int | str = Field(
        0,
        description="Camera index (0), a GStreamer pipeline ending in 'appsink' (Jetson CSI: "
        "'nvarguscamerasrc ! ... ! appsink drop=true max-buffers=1') or a stream URL "
        "(rtsp://..., http://...). Put stream credentials in the URL only if the file is "
        "not world-readable.",
    )
    width: int | None = Field(None, gt=0, le=8192, description="Requested capture width (USB).")
    height: int | None = Field(None, gt=0, le=8192, description="Requested capture height (USB).")
    fps: float | None = Field(None, gt=0, le=1000, description="Requested capture frame rate.")

    @model_validator(mode="after")
    def _check_device(self) -> OpenCVSourceConfig:
        # Imported here: edge.camera.opencv imports this module (its config class).
        from edge.camera.opencv import device_kind
        from edge.errors import SourceError

        try:
            device_kind(self.device)
        except SourceError as e:
            raise ValueError(str(e)) from None
        return self

    def summary(self) -> str:
        """One-line, secret-free description for logs (a stream URL's password masked)."""
        return f"opencv {mask_url(str(self.device))}"


class Picamera2SourceConfig(_LiveConfig):
    """A Raspberry Pi camera module through picamera2 (apt python3-picamera2)."""

    type: Literal["picamera2"] = Field(description="Source type: Raspberry Pi camera.")
    camera_num: int = Field(0, ge=0, description="Camera number on multi-camera boards.")
    main_size: tuple[int, int] = Field(
        (1280, 720), description="[width, height] of the main (BGR) stream."
    )
    lores_size: tuple[int, int] = Field(
        (640, 360),
        description="[width, height] of the lores YUV420 stream whose Y plane is used as free "
        "grayscale; must not exceed main_size.",
    )
    use_lores: bool = Field(
        True, description="Process the lores Y plane (fast) instead of the main BGR image."
    )
    fps: float | None = Field(None, gt=0, le=200, description="Requested frame rate.")

    @model_validator(mode="after")
    def _check_sizes(self) -> Picamera2SourceConfig:
        if self.lores_size[0] > self.main_size[0] or self.lores_size[1] > self.main_size[1]:
            raise ValueError(
                f"lores_size {list(self.lores_size)} must not exceed main_size "
                f"{list(self.main_size)}"
            )
        return self

    def summary(self) -> str:
        """One-line description for logs."""
        return f"picamera2 camera {self.camera_num}"


#: One ``[source]`` table: the class is chosen by ``type``.
SourceConfig = Annotated[
    FileSourceConfig | OpenCVSourceConfig | Picamera2SourceConfig, Field(discriminator="type")
]


def source_override(spec: str) -> dict[str, Any]:
    """Turn a ``--source`` value into a source table.

    ``0``/``1``.. -> USB camera, ``picamera2`` -> Pi camera, a URL or GStreamer pipeline ->
    opencv, anything else -> a file or image folder.
    """
    if spec.isdigit():
        return {"type": "opencv", "device": int(spec)}
    if spec == "picamera2":
        return {"type": "picamera2"}
    if "!" in spec or "://" in spec:
        return {"type": "opencv", "device": spec}
    return {"type": "file", "path": spec}
