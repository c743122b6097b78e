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
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.detect.config import BlazeFaceConfig, DetectorConfig, default_detector_config
from edge.detect.config import HaarConfig as HaarConfig  # re-exported: the [detector] classes
from edge.detect.config import YuNetConfig as YuNetConfig
from edge.errors import ConfigError
from edge.publish.config import (
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
# The [detector] table: one class per detector type, next to the detectors (edge/detect/config.py).


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
    detector: DetectorConfig = Field(
        default_factory=default_detector_config,
        description="Face detection; type is one of haar, yunet, blazeface.",
    )
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
            f"device_id={self.device_id} source={s} detector={_detector_name(self.detector)} "
            f"model={self.model.resolved_path()} sinks=[{', '.join(sinks)}]"
        )


def _detector_name(det: Any) -> str:
    return f"blazeface-{det.variant}" if isinstance(det, BlazeFaceConfig) else str(det.type)


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
        elif key == "detector" and isinstance(value, dict) and "type" in value:
            out["detector"] = _switch_detector(out.get("detector"), value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = value
    return out


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
            tag = _union_tag(e["loc"][:-1])
            what = f"unknown key for type {tag!r}" if tag else "unknown key"
            hint = f"; valid keys: {', '.join(valid)}" if valid else ""
            lines.append(f"{loc}: {what}{hint}")
        elif kind == "union_tag_invalid":
            ctx = e.get("ctx", {})
            lines.append(f"{loc}.type: {ctx.get('tag')!r} is not one of {ctx.get('expected_tags')}")
        elif kind == "union_tag_not_found":
            lines.append(f"{loc}: missing 'type' key (one of {', '.join(_tag_choices(e['loc']))})")
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


def union_members(union: Any) -> dict[str, type[BaseModel]]:
    """``type`` tag -> model class of a discriminated union such as :data:`SourceConfig`, read
    off the union itself (so error messages never drift from the real choices)."""
    args = get_args(union)
    while args and get_origin(union) is Annotated:  # Annotated[Annotated[A | B, ...], ...]
        union = args[0]
        args = get_args(union)
    out: dict[str, type[BaseModel]] = {}
    for member in args:
        (tag,) = get_args(member.model_fields["type"].annotation)
        out[str(tag)] = member
    return out


class _Tagged:
    """A union field in the error tables: its members by tag."""

    def __init__(self, union: Any) -> None:
        self.members = union_members(union)


_FIELD_MODELS: dict[tuple[type[BaseModel], str], Any] = {
    (EdgeConfig, "source"): _Tagged(SourceConfig),
    (EdgeConfig, "sinks"): _Tagged(SinkConfig),
    (EdgeConfig, "detector"): _Tagged(DetectorConfig),
    (EdgeConfig, "model"): ModelConfig,
    (EdgeConfig, "tracking"): TrackingConfig,
}


def _display_loc(loc: tuple[Any, ...]) -> str:
    """``('source', 'opencv', 'device')`` -> ``source.device`` (drop union tags)."""
    parts: list[str] = []
    model: Any = EdgeConfig
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
            continue
        if isinstance(model, _Tagged):
            member = model.members.get(part)
            if member is not None:
                model = member
                continue  # a union tag, not a key
        parts.append(("." if parts else "") + str(part))
        model = _field_model(model, part)
    return "".join(parts) or "config"


def _tag_choices(loc: tuple[Any, ...]) -> list[str]:
    """The valid ``type`` values of the union field at ``loc`` (``source``, ``sinks``, ...)."""
    field = _FIELD_MODELS.get((EdgeConfig, str(loc[0]))) if loc else None
    return sorted(field.members) if isinstance(field, _Tagged) else []


def _union_tag(loc: tuple[Any, ...]) -> str | None:
    """The union tag inside ``loc`` (``('detector', 'haar', 'model')`` -> ``haar``)."""
    model: Any = EdgeConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if isinstance(model, _Tagged):
            return str(part) if part in model.members else None
        model = _field_model(model, part)
    return None


def _field_model(model: Any, name: str) -> Any:
    if isinstance(model, type) and issubclass(model, BaseModel):
        return _FIELD_MODELS.get((model, name))
    return None


def _valid_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = EdgeConfig
    for part in loc:
        if isinstance(part, int):
            continue
        if isinstance(model, _Tagged):
            model = model.members.get(part)
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
