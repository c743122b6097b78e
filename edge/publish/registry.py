"""Sink registry (``type`` -> class, typed plugins as in :mod:`edge.plugins`) and
:class:`SinkGroup`, the fan-out the runtime uses.

``create_sinks([])`` gives the default: stdout JSON lines. A :class:`SinkGroup` publishes to
every sink and, on close, writes the events an MQTT sink could not deliver into the group's JSONL
sink (or a spill file), so a shutdown during a broker outage loses nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from edge.errors import ConfigError, PublishError
from edge.events import Event
from edge.plugins import build_registry
from edge.publish.base import Sink
from edge.publish.config import SINK_CONFIG_MODELS, SinkConfig
from edge.publish.jsonl import JsonlSink
from edge.publish.mqtt import MqttSink
from edge.publish.stdout import StdoutSink

log = logging.getLogger(__name__)

#: File name of the spill file in systemd's state folder.
SPILL_NAME = "undelivered.jsonl"

_SINK_ADAPTER: TypeAdapter[Any] = TypeAdapter(SinkConfig)

#: Registry: ``type`` key -> sink class (checked against :data:`SinkConfig` at import).
SINKS: dict[str, type[Sink]] = build_registry([StdoutSink, JsonlSink, MqttSink], SinkConfig, "sink")


def parse_sink_config(raw: Mapping[str, Any] | BaseModel) -> BaseModel:
    """Validate one ``[[sinks]]`` table into its config model.

    Raises:
        ConfigError: naming the unknown type (with the valid types) or the bad key.
    """
    if isinstance(raw, BaseModel):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"sink config must be a table, got {type(raw).__name__}")
    kind = raw.get("type")
    if kind is None:
        raise ConfigError(
            f"sink config has no 'type' key; valid types: {sorted(SINK_CONFIG_MODELS)}"
        )
    if kind not in SINK_CONFIG_MODELS:
        raise ConfigError(f"unknown sink type {kind!r}; valid types: {sorted(SINK_CONFIG_MODELS)}")
    try:
        return _SINK_ADAPTER.validate_python(dict(raw))
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'][1:]) or '(sink)'}: {err['msg']}"
            for err in e.errors()
        )
        raise ConfigError(f"invalid {kind} sink config: {problems}") from None


def create_sink(cfg: Mapping[str, Any] | BaseModel, *, device_id: str | None = None) -> Sink:
    """Create the sink a config entry describes: ``SINKS[cfg.type].from_config(cfg)``.

    Args:
        cfg: A sink config model or the raw ``[[sinks]]`` table.
        device_id: Device id for MQTT topics (default: the host name).

    Raises:
        ConfigError: for an unknown ``type`` (listing the valid ones) or an invalid key/value.
    """
    model = parse_sink_config(cfg)
    kind = getattr(model, "type", None)
    cls = SINKS.get(str(kind))
    if cls is None:
        raise ConfigError(f"unknown sink type {kind!r}; valid types: {sorted(SINKS)}")
    return cls.from_config(model, device_id or socket.gethostname())


def create_sinks(
    cfgs: Iterable[Mapping[str, Any] | BaseModel], *, device_id: str | None = None
) -> list[Sink]:
    """Create every configured sink; no entries means the default, stdout JSON lines."""
    sinks = [create_sink(c, device_id=device_id) for c in cfgs]
    return sinks or [StdoutSink()]


class SinkGroup(Sink):
    """Fan events out to several sinks; on close, spill undelivered MQTT events to JSONL."""

    type = "group"

    def __init__(self, sinks: Sequence[Sink], spill_path: str | Path | None = None) -> None:
        """Create the group.

        Args:
            sinks: The sinks, in publishing order.
            spill_path: Where undelivered events go when the group has no JSONL sink. None:
                ``$STATE_DIRECTORY/undelivered.jsonl`` when systemd provides a state folder
                (``StateDirectory=fer-edge``: /var/lib/fer-edge), else they are logged as lost,
                with their count.
        """
        self.sinks = list(sinks)
        if spill_path is None and os.environ.get("STATE_DIRECTORY"):
            state = os.environ["STATE_DIRECTORY"].split(":")[0]
            spill_path = Path(state) / SPILL_NAME
        self.spill_path = Path(spill_path) if spill_path else None
        self.spilled = 0
        self.lost = 0

    def open(self) -> None:
        """Open every sink (MQTT connects in the background)."""
        for s in self.sinks:
            s.open()

    def publish_event(self, event: Event) -> None:
        """Give the event to every sink, even if one fails; then raise the first failure."""
        first: PublishError | None = None
        for s in self.sinks:
            try:
                s.publish_event(event)
            except PublishError as e:
                first = first or e
        if first is not None:
            raise first

    def publish_stats(self, stats: dict[str, Any]) -> None:
        """Pass the stats snapshot to every sink."""
        for s in self.sinks:
            s.publish_stats(stats)

    def publish_state(self, state: dict[str, Any]) -> None:
        """Pass the face state to every sink, even if one fails; then raise the first failure."""
        first: PublishError | None = None
        for s in self.sinks:
            try:
                s.publish_state(state)
            except PublishError as e:
                first = first or e
        if first is not None:
            raise first

    def set_model_info(self, name: str, labels: tuple[str, ...] | list[str], sha256: str) -> None:
        """Pass the running model's name, labels and sha256 to every sink."""
        for s in self.sinks:
            s.set_model_info(name, labels, sha256)

    def stats(self) -> dict[str, Any]:
        """Per-sink counters under ``sinks`` plus totals the device stats report.

        Totals: ``queue_depth``, ``dropped``, ``reconnects`` (summed over sinks that report
        them) and ``connected`` (every MQTT sink connected; None without MQTT sinks).
        """
        per: dict[str, Any] = {}
        totals = {"queue_depth": 0, "dropped": 0, "reconnects": 0}
        connected: list[bool] = []
        for s in self.sinks:
            name = s.type or type(s).__name__
            key, i = name, 2
            while key in per:
                key, i = f"{name}#{i}", i + 1
            st = s.stats()
            per[key] = st
            for k in totals:
                totals[k] += int(st.get(k, 0) or 0)
            if "connected" in st:
                connected.append(bool(st["connected"]))
        return {
            "sinks": per,
            **totals,
            "connected": all(connected) if connected else None,
            "spilled": self.spilled,
        }

    def close(self, timeout: float = 5.0) -> None:
        """Close queueing sinks first (within ``timeout``), spill what they could not deliver
        into the JSONL sink or ``spill_path``, then close the rest."""
        queueing = [s for s in self.sinks if hasattr(s, "drain_undelivered")]
        others = [s for s in self.sinks if s not in queueing]
        undelivered: list[Event] = []
        for s in queueing:
            s.close(timeout)
            undelivered.extend(s.drain_undelivered())  # type: ignore[attr-defined]
        if undelivered:
            self._spill(undelivered, others)
        for s in others:
            s.close(timeout)

    def _spill(self, events: list[Event], others: list[Sink]) -> None:
        target: Sink | None = next((s for s in others if isinstance(s, JsonlSink)), None)
        own: JsonlSink | None = None
        if target is None and self.spill_path is not None:
            own = JsonlSink(self.spill_path)
            target = own
        if target is None:
            self.lost += len(events)
            log.error(
                "%d undelivered events are lost: no jsonl sink or spill path is configured",
                len(events),
            )
            return
        where = getattr(target, "path", "?")
        try:
            for ev in events:
                target.publish_event(ev)
                self.spilled += 1
        except PublishError as e:
            self.lost += len(events) - self.spilled
            log.error("could not spill undelivered events to %s: %s", where, e)
        finally:
            if own is not None:
                own.close()
        log.warning("wrote %d undelivered events to %s", self.spilled, where)
