"""The one validated configuration tree of ``fer-edge run``.

Sources, in increasing precedence: built-in defaults, a TOML file (``/etc/fer-edge/config.toml``
on a device), command-line flags. Every table rejects unknown keys, every field has a
description (``fer-edge validate-config`` and the docs show them), and any problem becomes one
:class:`~edge.errors.ConfigError` naming the key and the valid choices. Secrets (the MQTT
password) belong in a credentials file or the environment; a world-readable config file that
contains one is reported with a warning.

Example::

    device_id = "door-cam"
    [source]
    type = "opencv"
    device = 0
    [detector]
    type = "haar"
    min_face = 48
    [[sinks]]
    type = "mqtt"
    url = "mqtts://broker.local:8883"
    password_file = "${CREDENTIALS_DIRECTORY}/mqtt"
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.errors import ConfigError
from edge.publish.config import (
    SINK_CONFIG_MODELS,
    JsonlSinkConfig,
    MqttSinkConfig,
    SinkConfig,
    StdoutSinkConfig,
)
from edge.redact import is_secret_key, mask_url

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 on older devices
    import tomli as tomllib

log = logging.getLogger(__name__)

#: Where a device keeps its config (the systemd unit passes it explicitly).
DEFAULT_CONFIG_PATH = Path("/etc/fer-edge/config.toml")
#: Bundled model and sample, relative to the ``edge`` package.
DEFAULT_MODEL_RESOURCE = "models/default.tflite"
#: Models shipped inside the package, selectable by name with ``[model] bundled``.
BUNDLED_MODELS: dict[str, str] = {
    "cnn": DEFAULT_MODEL_RESOURCE,
    "cnn_lstm": "models/cnn_lstm.tflite",
}
DEFAULT_SAMPLE_RESOURCE = "samples/astronaut.avi"


def package_file(relative: str) -> Path:
    """Filesystem path of a file bundled inside the ``edge`` package."""
    return Path(str(resources.files("edge").joinpath(relative)))


def default_model_path(name: str = "cnn") -> Path:
    """A bundled model by name: ``cnn`` (the default ``edge/models/default.tflite``) or
    ``cnn_lstm``.

    Raises:
        ConfigError: naming the valid bundled models.
    """
    try:
        return package_file(BUNDLED_MODELS[name])
    except KeyError:
        raise ConfigError(
            f"unknown bundled model {name!r}; valid: {', '.join(BUNDLED_MODELS)}"
        ) from None


def default_sample_path() -> Path:
    """The bundled sample video ``edge/samples/astronaut.avi``."""
    return package_file(DEFAULT_SAMPLE_RESOURCE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------------- sources
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


class OpenCVSourceConfig(_Strict):
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
    open_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Retry opening (and reopening a lost stream) with backoff for this long "
        "before failing with a clear error.",
    )
    backoff_max_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="Upper bound of the doubling delay (from 0.25 s) between open attempts; a "
        "camera that comes back delivers frames again within about this long.",
    )

    @model_validator(mode="after")
    def _check_device(self) -> OpenCVSourceConfig:
        from edge.camera.opencv import device_kind
        from edge.errors import SourceError

        try:
            device_kind(self.device)
        except SourceError as e:
            raise ValueError(str(e)) from None
        return self


class Picamera2SourceConfig(_Strict):
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
    open_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Retry opening (and reopening a camera that fails while running) with "
        "backoff for this long before failing.",
    )
    backoff_max_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="Upper bound of the doubling delay (from 0.25 s) between open attempts.",
    )

    @model_validator(mode="after")
    def _check_sizes(self) -> Picamera2SourceConfig:
        if self.lores_size[0] > self.main_size[0] or self.lores_size[1] > self.main_size[1]:
            raise ValueError(
                f"lores_size {list(self.lores_size)} must not exceed main_size "
                f"{list(self.main_size)}"
            )
        return self


SourceConfig = Annotated[
    FileSourceConfig | OpenCVSourceConfig | Picamera2SourceConfig, Field(discriminator="type")
]


# ------------------------------------------------------------------------------------- stages
class DetectorConfig(_Strict):
    """Face detection."""

    type: Literal["haar", "yunet"] = Field(
        "haar",
        description="haar: OpenCV's bundled frontal-face cascade (default); yunet: "
        "cv2.FaceDetectorYN with the ONNX file given in 'model' (not shipped).",
    )
    detect_width: int = Field(
        320,
        ge=0,
        le=4096,
        description="Frames wider than this are downscaled to this width for detection "
        "(0: never downscale). Smaller is faster; too small misses small faces.",
    )
    min_face: int = Field(
        40, ge=8, le=4096, description="Smallest face side to detect, in full-frame pixels."
    )
    detect_every: int = Field(
        # Periodic schedule only. 5 keeps detection recall when faces come and go (0.992 on
        # bench/recall_scene.py's staggered scene); 15 halves the CPU per frame but reports a
        # newly entering face up to 14 frames late. The motion gate (the default) beats both.
        5,
        ge=1,
        le=1000,
        description="Periodic schedule (motion_gate = false): while faces are followed, "
        "full-frame detection runs every N frames (and on the frame after a followed face was "
        "lost); in between, faces are re-detected only inside an enlarged region around each "
        "track. With no face followed every frame is a full detection. A new face next to a "
        "followed one waits up to N frames (1: always full; see docs/PERFORMANCE.md for the "
        "cost of each choice). With motion_gate = true it only sets the budget of "
        "motion-triggered searches while faces are followed: at most one frame's area per N "
        "frames on average.",
    )
    motion_gate: bool = Field(
        # On by default: on bench/recall_scene.py's realistic scenes (noise, exposure drift,
        # a lamp step, a pan) it keeps or beats the recall of detect_every = 5 with new faces
        # found in the frame they appear or walk in, at 3.1-3.2 ms/frame on the benchmark
        # video (7.6 ms for detect_every = 5, same session), and an empty room costs
        # ~1.1 ms/frame instead of ~11.
        True,
        description="Run full-frame detection only where and when the picture changed: a cheap "
        "motion detector (~0.15 ms) compares each frame with the previous one outside the "
        "followed faces, and only the moving regions are searched for new faces (a full pass "
        "when they cover most of the frame), plus a full pass every 'full_every' frames. "
        "false: the periodic schedule of 'detect_every' (a full pass on every frame while no "
        "face is followed). See docs/PERFORMANCE.md.",
    )
    full_every: int = Field(
        30,
        ge=1,
        le=10000,
        description="motion_gate: a full-frame pass at least every N frames even without "
        "motion (a still face whose track was lost, a face turned towards the camera slowly); "
        "replaces the periodic pass of detect_every.",
    )
    motion_width: int = Field(
        160,
        ge=32,
        le=1024,
        description="motion_gate: width of the downscale the motion detector works on "
        "(rounded down to a multiple of 4); one pixel there is its spatial tolerance for "
        "camera shake (4 px at 640 wide).",
    )
    motion_threshold: int = Field(
        16,
        ge=2,
        le=255,
        description="motion_gate: gray-level change, after brightness normalisation, for a "
        "pixel of the downscale to count as changed (sensor noise there is ~1-2 levels).",
    )
    motion_min_area: float = Field(
        0.002,
        ge=0.0,
        le=0.5,
        description="motion_gate: fraction of the frame that must change (in 16x16-pixel "
        "blocks at 640 wide, outside the followed faces) before the changed regions are "
        "searched for faces.",
    )
    motion_full_area: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="motion_gate: when the changed regions, expanded to fit a face, cover this "
        "fraction of the frame, one full-frame pass runs instead of searching them.",
    )
    roi_scale: float = Field(
        1.6, ge=1.2, le=6.0, description="Re-detection region side as a multiple of the face box."
    )
    roi_face_px: int = Field(
        32,
        ge=0,
        le=512,
        description="Region search: resize the region so the followed face is about this many "
        "pixels wide (0: use the full-frame downscale). Smaller is cheaper; below 24 the Haar "
        "window no longer fits.",
    )
    num_threads: int = Field(
        2,
        ge=0,
        le=64,
        description="OpenCV worker threads for detection and resizing (cv2.setNumThreads; 0: "
        "OpenCV's default, all cores). 2 on a 4-core Pi leaves a core each for capture and "
        "the MQTT client while spreading a full-frame pass over two cores.",
    )
    cascade: str = Field(
        "haarcascade_frontalface_default.xml",
        description="haar: cascade file name in OpenCV's data folder, or a path.",
    )
    scale_factor: float = Field(
        1.1, gt=1.0, le=2.0, description="haar: pyramid step (smaller: slower, more recall)."
    )
    min_neighbors: int = Field(
        5, ge=0, le=50, description="haar: overlapping hits required (more: fewer false faces)."
    )
    equalize: bool = Field(False, description="haar: histogram-equalize before detecting.")
    model: Path | None = Field(
        None, description="yunet: path of the YuNet ONNX file (face_detection_yunet_2023mar.onnx)."
    )
    score_threshold: float = Field(0.7, ge=0, le=1, description="yunet: minimum face score.")
    nms_threshold: float = Field(0.3, ge=0, le=1, description="yunet: NMS IoU threshold.")

    @model_validator(mode="after")
    def _check_yunet(self) -> DetectorConfig:
        if self.type == "yunet" and self.model is None:
            raise ValueError("detector.type 'yunet' needs detector.model (path of the ONNX file)")
        return self


class ModelConfig(_Strict):
    """The expression classifier."""

    path: Path | None = Field(
        None,
        description="int8 .tflite model with fer-edge metadata (from fer-convert); when unset, "
        "the bundled model chosen by 'bundled'. CNN and CNN-LSTM models run the same way.",
    )
    bundled: Literal["cnn", "cnn_lstm"] = Field(
        "cnn",
        description="Which bundled model to run when 'path' is unset: 'cnn' (the default, best "
        "accuracy within the latency budget) or 'cnn_lstm' (the best CNN-LSTM).",
    )
    num_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="Interpreter threads (1 is best on a 4-core Pi: capture and "
        "detection use the other cores).",
    )
    tta: Literal["none", "flip", "flip_shift"] = Field(
        "flip",
        description="Test-time augmentation: classify each face as is ('none'), also mirrored "
        "('flip', twice the classifier time), or mirrored and shifted by 2 pixels four ways "
        "('flip_shift', six times); the views' probabilities are averaged.",
    )
    ensemble: list[str] = Field(
        default_factory=list,
        description="Several models whose probabilities are averaged: bundled names ('cnn', "
        "'cnn_lstm') or .tflite paths, first one first (its metadata may carry the "
        "calibration). They must share one preprocessing contract and label list. When set, "
        "it replaces 'path'/'bundled'.",
    )
    temperature: float | None = Field(
        None,
        gt=0,
        le=100,
        description="Calibration temperature applied to the averaged probabilities; unset: the "
        "one fitted for this very setting (tta, ensemble) stored in the first model's metadata "
        "by 'fer-train calibrate', else 1 (uncalibrated).",
    )

    @model_validator(mode="after")
    def _one_model_source(self) -> ModelConfig:
        if self.ensemble and self.path is not None:
            raise ValueError("set either 'path' or 'ensemble', not both")
        return self

    def resolved_path(self) -> Path:
        """The first model file: ``ensemble[0]``, ``path`` or the bundled model ``bundled``."""
        return self.resolved_paths()[0]

    def resolved_paths(self) -> list[Path]:
        """Every model file, first one first: the ``ensemble`` entries (bundled names resolved),
        else ``path``, else the bundled model named by ``bundled``."""
        if self.ensemble:
            return [
                default_model_path(m) if m in BUNDLED_MODELS else Path(m) for m in self.ensemble
            ]
        return [self.path if self.path is not None else default_model_path(self.bundled)]


class TrackingConfig(_Strict):
    """Face tracking and event generation."""

    iou_threshold: float = Field(
        0.3, gt=0, lt=1, description="Minimum box overlap (IoU) to continue a track."
    )
    max_missed: int = Field(
        10, ge=0, le=10000, description="Frames a face may go undetected before 'end'."
    )
    min_hits: int = Field(
        2, ge=1, le=1000, description="Detections before a track is announced with 'start'."
    )
    alpha: float = Field(
        0.3, gt=0, le=1, description="EMA weight of each new prediction (1: no smoothing)."
    )
    change_frames: int = Field(
        3, ge=1, le=1000, description="Frames a new dominant emotion must hold before 'change'."
    )
    update_interval_s: float = Field(
        2.0, ge=0, description="Seconds between 'update' events per track (0: off)."
    )
    update_every_frames: int = Field(
        0, ge=0, description="Frames between 'update' events per track (0: off)."
    )


class EdgeConfig(_Strict):
    """Everything ``fer-edge run`` needs."""

    device_id: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._-]+$",
        description="Device name in events and MQTT topics (default: the host name). Letters, "
        "digits, '.', '_' and '-' only, so it is a safe topic level.",
    )
    source: SourceConfig = Field(
        default_factory=FileSourceConfig,
        description="Frame source; type is one of file, opencv, picamera2.",
    )
    detector: DetectorConfig = Field(default_factory=DetectorConfig, description="Face detection.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Expression classifier.")
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig, description="Tracking and event generation."
    )
    sinks: list[SinkConfig] = Field(
        default_factory=list,
        description="Event sinks ([[sinks]] tables; type: stdout, jsonl, mqtt). Without an mqtt "
        "sink, stdout is added.",
    )
    stats_interval_s: float = Field(
        30.0, gt=0, description="Seconds between stats snapshots published to the sinks."
    )
    broker_wait_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description="At start, wait this long for MQTT brokers before reporting READY; an "
        "unreachable broker is retried in the background and events queue meanwhile.",
    )
    shutdown_timeout_s: float = Field(
        5.0, gt=0, le=300, description="Upper bound for flushing sinks on shutdown."
    )
    max_frames: int | None = Field(
        None, ge=1, description="Stop after this many frames (tests, benchmarks)."
    )
    max_frame_pixels: int = Field(
        4096 * 4096,
        ge=64,
        description="Frames with more pixels are skipped as corrupt (protects memory).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level (logs go to stderr / the journal)."
    )

    def effective_sinks(self) -> list[StdoutSinkConfig | JsonlSinkConfig | MqttSinkConfig]:
        """The configured sinks, plus stdout when no MQTT broker (and no stdout) is configured.

        Without a broker the events must still be visible somewhere live, so a JSONL file alone
        gets stdout added; a device that publishes to MQTT keeps stdout (the journal) quiet.
        """
        sinks = list(self.sinks)
        if not any(s.type in ("mqtt", "stdout") for s in sinks):
            sinks.insert(0, StdoutSinkConfig())
        return sinks

    def summary(self) -> str:
        """One-line, secret-free description for logs and ``validate-config``."""
        src = self.source
        if isinstance(src, FileSourceConfig):
            s = f"file {src.resolved_path()}"
        elif isinstance(src, OpenCVSourceConfig):
            s = f"opencv {mask_url(str(src.device))}"
        else:
            s = f"picamera2 camera {src.camera_num}"
        sinks = []
        for k in self.effective_sinks():
            if isinstance(k, MqttSinkConfig):
                sinks.append(f"mqtt {k.safe_url()}")
            elif isinstance(k, JsonlSinkConfig):
                sinks.append(f"jsonl {k.path}")
            else:
                sinks.append(k.type)
        return (
            f"device_id={self.device_id} source={s} detector={self.detector.type} "
            f"model={self.model.resolved_path()} sinks=[{', '.join(sinks)}]"
        )


# ------------------------------------------------------------------------------------- loading
def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> EdgeConfig:
    """Load and validate the config: defaults < TOML file < ``overrides``.

    Args:
        path: TOML file, or ``None`` for defaults only.
        overrides: Nested dict merged over the file's content (CLI flags). A ``sinks`` list in
            overrides is appended to the file's sinks, replacing a same-type entry.

    Raises:
        ConfigError: naming the file, the key and the valid choices.
    """
    data: dict[str, Any] = {}
    if path is not None:
        data = read_toml(path)
        warn_if_exposed_secrets(path, data)
    if overrides:
        data = merge_overrides(data, overrides)
    return validate_config(data, source=str(path) if path is not None else "config")


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
    """Deep-merge ``overrides`` into a copy of ``data`` (see :func:`load_config`)."""
    out = dict(data)
    for key, value in overrides.items():
        if key == "sinks" and isinstance(value, list) and all(isinstance(v, dict) for v in value):
            # Malformed sink lists fall through to plain assignment: validation names them.
            old_sinks = out.get("sinks")
            sinks = (
                [s for s in old_sinks if isinstance(s, dict)] if isinstance(old_sinks, list) else []
            )
            for new in value:
                sinks = [s for s in sinks if s.get("type") != new.get("type")]
                sinks.append(new)
            out["sinks"] = sinks
        elif key == "source" and isinstance(value, dict) and "type" in value:
            old = out.get("source")
            if isinstance(old, dict) and old.get("type") == value["type"]:
                out["source"] = {**old, **value}
            else:
                out["source"] = dict(value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = value
    return out


def validate_config(data: dict[str, Any], source: str = "config") -> EdgeConfig:
    """Validate a config dict.

    Raises:
        ConfigError: one readable message listing every problem.
    """
    try:
        return EdgeConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None


def format_validation_error(err: ValidationError, source: str = "config") -> str:
    """Turn a pydantic error into lines like ``source.type: 'usb' is not one of [...]``."""
    lines = []
    for e in err.errors():
        loc = _display_loc(e["loc"])
        kind = e["type"]
        if kind == "extra_forbidden":
            valid = _valid_keys(e["loc"][:-1])
            hint = f"; valid keys: {', '.join(valid)}" if valid else ""
            lines.append(f"{loc}: unknown key{hint}")
        elif kind == "union_tag_invalid":
            ctx = e.get("ctx", {})
            lines.append(f"{loc}: type {ctx.get('tag')!r} is not one of {ctx.get('expected_tags')}")
        elif kind == "union_tag_not_found":
            choices = _SINK_TAGS if "sinks" in e["loc"] else _SOURCE_TAGS
            lines.append(f"{loc}: missing 'type' key (one of {', '.join(choices)})")
        elif kind == "literal_error":
            ctx = e.get("ctx", {})
            lines.append(f"{loc}: {e['input']!r} is not one of {ctx.get('expected')}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            lines.append(f"{loc}: {msg}" + (f" (got {e['input']!r})" if _short(e) else ""))
    head = f"{source}: invalid configuration" if len(lines) > 1 else f"{source}:"
    return head + ("\n  " if len(lines) > 1 else " ") + "\n  ".join(lines)


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


_SOURCE_TAGS = ("file", "opencv", "picamera2")
_SINK_TAGS = tuple(sorted(SINK_CONFIG_MODELS))


def _display_loc(loc: tuple[Any, ...]) -> str:
    """``('source', 'opencv', 'device')`` -> ``source.device`` (drop union tags)."""
    parts: list[str] = []
    model: Any = EdgeConfig
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
            continue
        if model is _TAGGED:
            model = _TAG_MODELS.get(part)
            if model is not None:
                continue  # a union tag, not a key
        parts.append(("." if parts else "") + str(part))
        model = _field_model(model, part)
    return "".join(parts) or "config"


_TAGGED = object()
_TAG_MODELS: dict[str, type[BaseModel]] = {
    "file": FileSourceConfig,
    "opencv": OpenCVSourceConfig,
    "picamera2": Picamera2SourceConfig,
    **SINK_CONFIG_MODELS,
}
_FIELD_MODELS: dict[tuple[type[BaseModel], str], Any] = {
    (EdgeConfig, "source"): _TAGGED,
    (EdgeConfig, "sinks"): _TAGGED,
    (EdgeConfig, "detector"): DetectorConfig,
    (EdgeConfig, "model"): ModelConfig,
    (EdgeConfig, "tracking"): TrackingConfig,
}


def _field_model(model: Any, name: str) -> Any:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return _FIELD_MODELS.get((model, name))
    return None


def _valid_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = EdgeConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if model is _TAGGED:
            model = _TAG_MODELS.get(part)
            continue
        model = _field_model(model, part)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(model.model_fields)
    return []


def find_secrets(data: Any, prefix: str = "") -> list[str]:
    """Dotted keys of non-empty secret-looking values (password, token, ...) in a config dict."""
    found: list[str] = []
    if isinstance(data, dict):
        for k, v in data.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if (
                is_secret_key(k)
                and isinstance(v, str)
                and v
                and not str(k).lower().endswith(("_file", "_env"))
            ):
                found.append(key)
            else:
                found.extend(find_secrets(v, key))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            found.extend(find_secrets(v, f"{prefix}[{i}]"))
    elif isinstance(data, str) and "://" in data and "@" in data.split("://", 1)[1].split("/")[0]:
        if ":" in data.split("://", 1)[1].split("@")[0]:
            found.append(prefix)  # user:password@ inside a URL
    return found


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
