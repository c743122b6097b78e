"""Home Assistant MQTT discovery: each device appears in HA with three sensors.

Following HA's MQTT discovery conventions, the MQTT sink publishes one retained JSON config per
entity on ``<discovery_prefix>/sensor/<node_id>/<object_id>/config`` (default prefix
``homeassistant``; ``node_id`` is the device id reduced to ``[A-Za-z0-9_-]``):

* ``emotion``: an ``enum`` sensor, the dominant face's emotion; ``options`` is the running
  model's label list (from its metadata, never a literal here); the per-face list is exposed as
  the ``tracks`` attribute;
* ``faces``: number of tracked faces (``state_class: measurement``);
* ``confidence``: the dominant face's confidence in % (``state_class: measurement``).

All three read the retained ``<prefix>/<device_id>/state`` topic (``fer.state/1``, see
``edge/state.py``) with a ``value_template``. Availability is bound to
``<prefix>/<device_id>/status``: its template maps ``online`` to available and everything else
(``offline`` from the Last Will, ``stopped`` on a clean shutdown) to unavailable, because HA
ignores a payload that is neither ``payload_available`` nor ``payload_not_available``.

Staleness: a device that dies without its Last Will (the broker crashed too, a half-open link)
leaves ``online`` behind. Every sensor therefore has ``expire_after`` = the sink's
``status_expiry_s``: the device re-publishes its state every heartbeat, and HA marks a sensor
unavailable on its own when no state arrived for that long (``edge/liveness.py``).

The configs are published on every connect and again, after a random delay of up to
``discovery_delay_s``, whenever HA's birth message ``online`` arrives on
``<discovery_prefix>/status`` (HA restarted and may have lost its entity registry cache).
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

from edge import __version__
from edge.liveness import DeviceStatus
from edge.topics import DeviceTopics, Topics

log = logging.getLogger(__name__)

#: HA's birth/last-will payloads on ``<discovery_prefix>/status`` (HA's own, not a device's).
HA_ONLINE = "online"
ONLINE, OFFLINE = DeviceStatus.ONLINE, DeviceStatus.OFFLINE
#: Entities published per device (object ids).
OBJECT_IDS: tuple[str, ...] = ("emotion", "faces", "confidence")

# A template that renders HA's special "None" payload resets the sensor to 'unknown' (no face).
_EMOTION_TPL = "{{ value_json.emotion if value_json.emotion is not none else 'None' }}"
_CONFIDENCE_TPL = (
    "{{ (value_json.confidence * 100) | round(1) "
    "if value_json.confidence is not none else 'None' }}"
)
_FACES_TPL = "{{ value_json.faces | int(0) }}"
_TRACKS_TPL = "{{ {'tracks': value_json.tracks} | tojson }}"
# The device's status (online/offline/stopped; edge/liveness.py) as HA availability.
_AVAILABILITY_TPL = f"{{{{ '{ONLINE}' if value == '{ONLINE}' else '{OFFLINE}' }}}}"


def node_id(device_id: str) -> str:
    """The device id reduced to HA's node id alphabet ``[A-Za-z0-9_-]``."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", device_id)


def support_url() -> str | None:
    """The project's home page from the installed package metadata, if it declares one."""
    try:
        meta = metadata.metadata("fer-edge")
    except metadata.PackageNotFoundError:
        return None
    for entry in meta.get_all("Project-URL") or []:
        _, _, url = entry.partition(",")
        if url.strip().startswith(("http://", "https://")):
            return url.strip()
    home = meta["Home-page"] if "Home-page" in meta else None
    return home if home and home.startswith(("http://", "https://")) else None


def origin() -> dict[str, str]:
    """HA's ``origin`` block: who published the discovery config."""
    out = {"name": "fer-edge", "sw_version": __version__}
    url = support_url()
    if url:
        out["support_url"] = url
    return out


def config_topic(discovery_prefix: str, device_id: str, object_id: str) -> str:
    """``<discovery_prefix>/sensor/<node_id>/<object_id>/config``."""
    return f"{discovery_prefix}/sensor/{node_id(device_id)}/{object_id}/config"


def discovery_configs(
    *,
    device_id: str,
    topic_prefix: str,
    discovery_prefix: str,
    model_name: str,
    labels: Sequence[str],
    expire_after: int | None = None,
) -> dict[str, dict[str, Any]]:
    """The discovery config of each sensor of one device, by config topic.

    Args:
        device_id: The device (topic level and HA device name).
        topic_prefix: The sink's topic prefix (``fer``).
        discovery_prefix: HA's discovery prefix (``homeassistant``).
        model_name: The running model's architecture name (HA device ``model``).
        labels: The model's labels in output order (the ``enum`` options).
        expire_after: Seconds without a state message after which HA shows the sensors
            unavailable (the sink's ``status_expiry_s``); None: never.

    Returns:
        ``{config_topic: config}`` with JSON-ready configs.

    Raises:
        ConfigError: if ``device_id`` cannot be a topic level (``edge/topics.py``).
    """
    node = node_id(device_id)
    topics = Topics(topic_prefix).device(device_id)
    common = _common_config(topics, _device_block(device_id, node, model_name), expire_after)
    sensors = _sensor_configs(labels, topics.state)
    out: dict[str, dict[str, Any]] = {}
    for obj in OBJECT_IDS:
        cfg = {**sensors[obj], **common}
        cfg["unique_id"] = f"fer_edge_{node}_{obj}"
        out[config_topic(discovery_prefix, device_id, obj)] = cfg
    return out


def _device_block(device_id: str, node: str, model_name: str) -> dict[str, Any]:
    """HA's ``device`` block: every sensor of one device groups under it."""
    return {
        "identifiers": [f"fer_edge_{node}"],
        "name": device_id,
        "model": model_name,
        "manufacturer": "fer-edge",
        "sw_version": __version__,
    }


def _common_config(
    topics: DeviceTopics, device: dict[str, Any], expire_after: int | None
) -> dict[str, Any]:
    """The keys every sensor shares: state topic, availability from the status, device."""
    common: dict[str, Any] = {
        "state_topic": topics.state,
        "availability": [
            {
                "topic": topics.status,
                "value_template": _AVAILABILITY_TPL,
                "payload_available": ONLINE.value,
                "payload_not_available": OFFLINE.value,
            }
        ],
        "device": device,
        "origin": origin(),
        "qos": 1,
    }
    if expire_after is not None:
        common["expire_after"] = int(expire_after)
    return common


def _sensor_configs(labels: Sequence[str], state_topic: str) -> dict[str, dict[str, Any]]:
    """The keys of each sensor (emotion, faces, confidence), by object id."""
    return {
        "emotion": {
            "name": "Emotion",
            "device_class": "enum",
            "options": list(labels),
            "value_template": _EMOTION_TPL,
            "json_attributes_topic": state_topic,
            "json_attributes_template": _TRACKS_TPL,
            "icon": "mdi:emoticon-outline",
        },
        "faces": {
            "name": "Faces",
            "state_class": "measurement",
            "value_template": _FACES_TPL,
            "icon": "mdi:face-recognition",
        },
        "confidence": {
            "name": "Confidence",
            "unit_of_measurement": "%",
            "state_class": "measurement",
            "suggested_display_precision": 1,
            "value_template": _CONFIDENCE_TPL,
            "icon": "mdi:gauge",
        },
    }


class Discovery:
    """Publishes one device's discovery configs through a publish function.

    Args:
        publish: ``publish(topic, payload)``; must send retained with QoS 1 and not block
            (paho's ``Client.publish`` is thread-safe).
        device_id: The device.
        topic_prefix: The sink's topic prefix.
        discovery_prefix: HA's discovery prefix.
        delay_s: Upper bound of the random delay after HA's birth message.
        expire_after: ``expire_after`` of every sensor (seconds), or None.
    """

    def __init__(
        self,
        publish: Callable[[str, str], None],
        *,
        device_id: str,
        topic_prefix: str,
        discovery_prefix: str,
        delay_s: float,
        expire_after: int | None = None,
    ) -> None:
        self._publish = publish
        self.expire_after = expire_after
        self.device_id = device_id
        self.topic_prefix = topic_prefix
        self.discovery_prefix = discovery_prefix
        self.delay_s = delay_s
        self.birth_topic = f"{discovery_prefix}/status"
        self._model: tuple[str, tuple[str, ...]] | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self.published = 0

    def set_model(self, name: str, labels: Sequence[str]) -> None:
        """Remember the running model (needed before anything can be published)."""
        self._model = (name, tuple(labels))

    @property
    def ready(self) -> bool:
        """Whether the model's labels are known."""
        return self._model is not None

    def publish_now(self) -> bool:
        """Publish every config now; False (nothing sent) while the labels are unknown."""
        if self._model is None:
            log.debug("home assistant discovery waits for the model's labels")
            return False
        name, labels = self._model
        configs = discovery_configs(
            device_id=self.device_id,
            topic_prefix=self.topic_prefix,
            discovery_prefix=self.discovery_prefix,
            model_name=name,
            labels=labels,
            expire_after=self.expire_after,
        )
        for topic, cfg in configs.items():
            self._publish(topic, json.dumps(cfg, separators=(",", ":"), allow_nan=False))
        self.published += 1
        log.info(
            "home assistant: published %d discovery configs under %s/sensor/%s",
            len(configs),
            self.discovery_prefix,
            node_id(self.device_id),
        )
        return True

    def on_birth(self, payload: bytes) -> None:
        """HA's status message: schedule a re-publish after a random delay when ``online``."""
        if payload.decode("utf-8", "replace").strip() != HA_ONLINE:
            return
        delay = random.uniform(0.0, self.delay_s) if self.delay_s > 0 else 0.0
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            timer = threading.Timer(delay, self.publish_now)
            timer.daemon = True
            timer.name = "ha-discovery"
            self._timer = timer
        log.info("home assistant is online: re-publishing discovery in %.1f s", delay)
        timer.start()

    def cancel(self) -> None:
        """Cancel a pending delayed re-publish (on close)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
