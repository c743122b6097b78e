"""The one validated configuration tree of ``fer-edge run``.

Sources, in increasing precedence: built-in defaults, a TOML file (``/etc/fer-edge/config.toml``
on a device), command-line flags. Every table rejects unknown keys, every field has a
description (``fer-edge validate-config`` and the docs show them), and any problem becomes one
:class:`~edge.errors.ConfigError` naming the key and the valid choices. Secrets (the MQTT
password) belong in a credentials file or the environment; a world-readable config file that
contains one is reported with a warning.

Where the parts live: the ``[source]``, ``[detector]`` and ``[[sinks]]`` classes next to their
plugins (:mod:`edge.camera.config`, :mod:`edge.detect.config`, :mod:`edge.publish.config`), TOML
reading, CLI overrides and the secret scan in :mod:`edge.config_file`, error messages in
:mod:`edge.config_messages`, the bundled files in :mod:`edge.bundled`. This module holds the
tree itself and re-exports their public names.

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
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edge.bundled import BUNDLED_MODELS as BUNDLED_MODELS  # re-exported: public names
from edge.bundled import DEFAULT_MODEL_RESOURCE as DEFAULT_MODEL_RESOURCE
from edge.bundled import DEFAULT_MODELS as DEFAULT_MODELS
from edge.bundled import DEFAULT_SAMPLE_RESOURCE as DEFAULT_SAMPLE_RESOURCE
from edge.bundled import default_model_path
from edge.bundled import default_sample_path as default_sample_path
from edge.bundled import package_file as package_file
from edge.camera.config import FileSourceConfig, SourceConfig
from edge.camera.config import OpenCVSourceConfig as OpenCVSourceConfig  # re-exported
from edge.camera.config import Picamera2SourceConfig as Picamera2SourceConfig
from edge.camera.config import source_override as source_override
from edge.config_file import find_secrets as find_secrets  # re-exported: the TOML side
from edge.config_file import merge_overrides as merge_overrides
from edge.config_file import read_toml as read_toml
from edge.config_file import warn_if_exposed_secrets as warn_if_exposed_secrets
from edge.config_messages import format_validation_error as format_validation_error
from edge.detect.config import BlazeFaceConfig, DetectorConfig, default_detector_config
from edge.detect.config import HaarConfig as HaarConfig  # re-exported: the [detector] classes
from edge.detect.config import YuNetConfig as YuNetConfig
from edge.errors import ConfigError
from edge.plugins import union_members as union_members
from edge.publish.config import (
    JsonlSinkConfig,
    MqttSinkConfig,
    SinkConfig,
    StdoutSinkConfig,
)

log = logging.getLogger(__name__)

#: Where a device keeps its config (the systemd unit passes it explicitly).
DEFAULT_CONFIG_PATH = Path("/etc/fer-edge/config.toml")


def _types(union: Any) -> str:
    """``a, b, c``: the ``type`` values of a plugin union, for field descriptions."""
    return ", ".join(union_members(union))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------------- stages
# The [detector] table: one class per detector type, next to the detectors (edge/detect/config.py).


class ModelConfig(_Strict):
    """The expression classifier."""

    path: Path | None = Field(
        None,
        description="int8 .tflite model with fer-edge metadata (from fer-convert); when unset, "
        "the bundled model chosen by 'bundled', else the default pair. CNN and CNN-LSTM models "
        "run the same way.",
    )
    bundled: Literal["cnn", "cnn_lstm", "cnn_ferplus", "cnn_trainval", "cnn_distilled"] | None = (
        Field(
            None,
            description="Which one bundled model to run when 'path' is unset (unset, and no "
            "'ensemble': the default pair, 'cnn' and 'cnn_distilled' averaged): 'cnn' (the best "
            "single model on PublicTest and on the CK+48 hard scenes), 'cnn_lstm' (the best "
            "CNN-LSTM), 'cnn_ferplus' (trained on FERPlus vote distributions, the same 7 labels: "
            "86 % FERPlus majority accuracy, calibrated for tta = 'flip'), 'cnn_trainval' "
            "(FER2013 labels, selected and calibrated on TrainVal; ensemble = ['cnn', "
            "'cnn_trainval'] is the most accurate setting on FER2013 but weaker on CK+48's posed "
            "faces) or 'cnn_distilled' (a student of TrainVal-selected teachers, calibrated on "
            "TrainVal); docs/RESULTS.md.",
        )
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
        "'cnn_trainval', ...) or .tflite paths, first one first (its metadata may carry the "
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
        else ``path``, else the bundled model named by ``bundled``, else the default
        :data:`edge.bundled.DEFAULT_MODELS`."""
        if self.ensemble:
            return [
                default_model_path(m) if m in BUNDLED_MODELS else Path(m) for m in self.ensemble
            ]
        if self.path is not None:
            return [self.path]
        if self.bundled is not None:
            return [default_model_path(self.bundled)]
        return [default_model_path(m) for m in DEFAULT_MODELS]

    def names_no_model(self) -> bool:
        """Whether no key names a model (``ensemble``, ``path``, ``bundled`` all unset), so the
        package's :data:`edge.bundled.DEFAULT_MODELS` run."""
        return not self.ensemble and self.path is None and self.bundled is None


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
        description=f"Frame source; type is one of {_types(SourceConfig)}.",
    )
    detector: DetectorConfig = Field(
        default_factory=default_detector_config,
        description=f"Face detection; type is one of {_types(DetectorConfig)}.",
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="Expression classifier.")
    tracking: TrackingConfig = Field(
        default_factory=TrackingConfig, description="Tracking and event generation."
    )
    sinks: list[SinkConfig] = Field(
        default_factory=list,
        description=f"Event sinks ([[sinks]] tables; type: {_types(SinkConfig)}). Without an "
        "mqtt sink, stdout is added.",
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
        sinks = ", ".join(k.summary() for k in self.effective_sinks())
        return (
            f"device_id={self.device_id} source={self.source.summary()} "
            f"detector={_detector_name(self.detector)} "
            f"model={' + '.join(str(p) for p in self.model.resolved_paths())} "
            f"tta={self.model.tta} sinks=[{sinks}]"
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


def validate_config(data: dict[str, Any], source: str = "config") -> EdgeConfig:
    """Validate a config dict.

    Raises:
        ConfigError: one readable message listing every problem.
    """
    try:
        return EdgeConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source, root=EdgeConfig)) from None
