"""Event sinks: where events, status and stats go (MQTT, stdout, a JSONL file).

A sink is a small plugin selected by the ``type`` key of a ``[[sinks]]`` config entry, like
Frigate's detector plugins. The pipeline calls the methods below from its own thread; a sink
must never block the frame loop for long (MQTT queues while the broker is away).
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from pydantic import BaseModel

from edge.events import Event


class Sink(ABC):
    """Base class of every event sink."""

    #: Registry key (``mqtt``, ``stdout``, ``jsonl``): the ``type`` of its ``[[sinks]]`` table.
    type: str = ""
    #: Its ``[[sinks]]`` config class (:mod:`edge.publish.config`), the union member for ``type``.
    config_class: ClassVar[builtins.type[BaseModel]]  # `type` is the key here

    @classmethod
    def from_config(cls, cfg: Any, device_id: str) -> Sink:
        """Build the (not yet opened) sink from its :attr:`config_class` instance.

        Args:
            cfg: The validated ``[[sinks]]`` table.
            device_id: The device's id (MQTT topics, client id).

        Registered sinks override it; a sink built directly (tests, the group) need not.
        """
        raise NotImplementedError(f"{cls.__name__} is not a configurable sink")

    def open(self) -> None:  # noqa: B027 - optional hook
        """Connect / open files. Called once before the first event."""

    @abstractmethod
    def publish_event(self, event: Event) -> None:
        """Deliver (or queue for delivery) one event."""

    def publish_stats(self, stats: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Deliver a periodic stats snapshot (ignored by sinks that have no use for it)."""

    def publish_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Deliver the device's current face state (``fer.state/1``, see ``edge/state.py``).

        Called when a track starts, changes, updates or ends. Sinks that only log events ignore
        it; MQTT publishes it retained on ``<prefix>/<device_id>/state``.
        """

    def set_model_info(  # noqa: B027 - optional hook
        self, name: str, labels: tuple[str, ...] | list[str], sha256: str
    ) -> None:
        """Tell the sink which model runs (before :meth:`open`): Home Assistant discovery needs
        the label list for its ``enum`` sensor."""

    def stats(self) -> dict[str, Any]:
        """Sink-side counters merged into the device stats (queue depth, dropped, reconnects)."""
        return {}

    @abstractmethod
    def close(self, timeout: float = 5.0) -> None:
        """Flush what is pending within ``timeout`` seconds, announce ``stopped``, release."""
