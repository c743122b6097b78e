"""The topic layout every fer-edge MQTT user shares: ``<prefix>/<device_id>/<kind>``.

One :class:`Topics` value (the prefix, ``fer`` by default) answers both directions:

* publishing (the MQTT sink, Home Assistant discovery): :meth:`Topics.device` gives one device's
  topics, :meth:`Topics.of` one of them;
* subscribing (``fer-edge monitor``, the web dashboard): :meth:`Topics.wildcard` gives the filter
  for one kind on every device, :meth:`Topics.parse` splits a received topic back into
  ``(device_id, kind)``.

Kinds (:data:`KINDS`): ``events`` (``fer.event/1``), ``status`` (``online``/``offline``/
``stopped``), ``stats`` (a JSON object) and ``state`` (``fer.state/1``, retained). The device id
sits in every topic, so brokers can be bridged by forwarding ``<prefix>/#`` without rewriting.

It lives at the package's top, next to ``edge/events.py`` and ``edge/state.py``, because it is
part of the wire contract: the publisher (``edge/publish``) and the subscribers
(``edge/subscribe``) both depend on it, neither on the other. Pure Python, no MQTT.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.errors import ConfigError

#: The last topic level of everything a device publishes.
KINDS: tuple[str, ...] = ("events", "status", "stats", "state")


def check_topic_part(name: str, value: str) -> str:
    """Return ``value`` if it is usable as one MQTT topic level.

    Args:
        name: What the value is (named in the error), e.g. ``device_id``.
        value: The candidate topic level.

    Raises:
        ConfigError: if it is empty or contains ``/``, ``+``, ``#`` or NUL.
    """
    if not value or any(c in value for c in "/+#\0"):
        raise ConfigError(f"{name} {value!r} must be non-empty without '/', '+', '#' or NUL")
    return value


@dataclass(frozen=True)
class DeviceTopics:
    """The four topics of one device (see the module docstring for what each carries)."""

    events: str
    status: str
    stats: str
    state: str


@dataclass(frozen=True)
class Topics:
    """The topic layout under one prefix.

    Attributes:
        prefix: The first topic level(s) (``topic_prefix``; validated by the sink's config).
    """

    prefix: str = "fer"

    def of(self, device_id: str, kind: str) -> str:
        """``<prefix>/<device_id>/<kind>``.

        Raises:
            ConfigError: if ``device_id`` cannot be a topic level.
        """
        return f"{self.prefix}/{check_topic_part('device_id', device_id)}/{kind}"

    def device(self, device_id: str) -> DeviceTopics:
        """Every topic of one device.

        Raises:
            ConfigError: if ``device_id`` cannot be a topic level.
        """
        events, status, stats, state = (self.of(device_id, k) for k in KINDS)
        return DeviceTopics(events=events, status=status, stats=stats, state=state)

    def wildcard(self, kind: str | None = None) -> str:
        """The filter for ``kind`` on every device, or for everything under the prefix (None)."""
        return f"{self.prefix}/+/{kind if kind is not None else '#'}"

    def parse(self, topic: str) -> tuple[str, str] | None:
        """Split a received topic into ``(device_id, kind)``.

        Returns:
            None for a topic outside the prefix, without a device id, or whose rest is not
            one of :data:`KINDS` (deeper levels included): such messages are not ours.
        """
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None
        device, _, kind = topic[len(head) :].partition("/")
        if not device or kind not in KINDS:
            return None
        return device, kind
