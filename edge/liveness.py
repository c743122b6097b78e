"""Liveness that expires: when a subscriber stops believing a device is ``online``.

A device's retained ``<prefix>/<device>/status`` says ``online`` while it runs, ``offline`` (its
Last Will) when the broker notices it vanished, and ``stopped`` after a clean shutdown. The Last
Will is not enough: a broker that crashes (or loses power) while the device dies never sees the
connection drop, so it never sends the will, and with persistence it keeps the retained
``online`` for ever. A SIGSTOPped device, or one behind a half-open link, also keeps its
``online`` until the broker's keepalive runs out. So ``online`` must be *refreshed* to stay true:

* the device re-publishes ``online`` (and its retained face state) every
  :func:`heartbeat_interval` seconds; over MQTT 5 each copy carries a message-expiry interval of
  ``status_expiry_s``, so the broker itself forgets a retained ``online`` nobody refreshed;
* every subscriber (``fer-edge monitor``, the web dashboard) keeps, per device, the time until
  which it has evidence of life (:class:`Liveness`) and shows a device whose evidence ran out as
  ``stale``, whatever the manner of death. Evidence: a status ``online`` with an MQTT 5
  message-expiry interval counts for that many seconds (the broker sends the *remaining*
  lifetime, so an old retained copy counts for less); any other live message from the device
  (events, stats) counts for the expiry its last live heartbeat announced, and, before any such
  heartbeat or without expiries (a 3.1.1 broker or device), for ``stale_after_s``;
* Home Assistant gets ``expire_after`` on every sensor (the state is refreshed on the heartbeat),
  so its entities become unavailable on their own.

Fallback for brokers that speak only MQTT 3.1.1 (``protocol = "3.1.1"``): no expiry travels, the
heartbeat and the stats snapshots still do, and subscribers judge staleness by age as above. A
retained ``online`` from a dead device then reaches a *new* subscriber, which counts it as fresh
once and shows the device stale ``stale_after_s`` later.

Pure Python, no MQTT: the monitor, the dashboard and the tests share it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edge.events import StrEnum

#: Default ``status_expiry_s`` of the MQTT sink and ``stale_after_s`` of the subscribers: a
#: silent device is shown stale at most this long (plus one display tick) after its last sign
#: of life; the target is <= 60 s.
DEFAULT_EXPIRY_S = 45
#: Heartbeats per expiry: two refreshes may be lost before a live device looks stale.
HEARTBEATS_PER_EXPIRY = 3


class DeviceStatus(StrEnum):
    """A device's status: the payload of its retained ``<prefix>/<device_id>/status``, plus
    ``stale``, which subscribers show and nobody publishes.

    Members are strings (``DeviceStatus.ONLINE == "online"``), so payloads, JSON and code that
    compares with the plain strings keep working.
    """

    ONLINE = "online"  # running; re-published every heartbeat, expires unless refreshed
    OFFLINE = "offline"  # the Last Will: the broker saw the connection drop
    STOPPED = "stopped"  # a clean shutdown (published before disconnecting)
    STALE = "stale"  # shown by subscribers: an 'online' whose evidence ran out


ONLINE = DeviceStatus.ONLINE
STALE = DeviceStatus.STALE


def heartbeat_interval(expiry_s: float, keepalive_s: float | None = None) -> float:
    """Seconds between two refreshes of the retained ``online`` status.

    A third of the expiry, and at most half the MQTT keepalive: the heartbeat is a QoS-1
    publish whose acknowledgement proves the link is alive (half-open detection, see
    :class:`edge.publish.mqtt.MqttSink`).
    """
    interval = expiry_s / HEARTBEATS_PER_EXPIRY
    if keepalive_s is not None:
        interval = min(interval, keepalive_s / 2)
    return interval


@dataclass
class Liveness:
    """What a subscriber knows about one device's life.

    Attributes:
        status: The last status payload (``online``, ``offline``, ``stopped``, ...), or None.
        alive_until: Time (the caller's clock) until which there is evidence of life, or None
            before any.
        period: The expiry the device's last live (not retained) MQTT 5 heartbeat announced:
            how long its other messages count, or None (then ``stale_after_s``).
    """

    status: str | None = None
    alive_until: float | None = None
    period: float | None = None

    def heard(self, now: float, seconds: float) -> None:
        """Evidence of life valid for ``seconds`` from ``now`` (never shortens what is known)."""
        until = now + max(0.0, seconds)
        if self.alive_until is None or until > self.alive_until:
            self.alive_until = until

    def on_status(
        self,
        status: str,
        now: float,
        expiry_s: float | None,
        stale_after_s: float,
        retained: bool = False,
    ) -> None:
        """A status message arrived.

        Args:
            status: Its payload (stripped).
            now: Receipt time.
            expiry_s: Its MQTT 5 message-expiry interval (remaining lifetime), or None.
            stale_after_s: How long evidence without an expiry counts.
            retained: Whether it came from the retained store (its expiry is then a remainder,
                not the device's period).
        """
        self.status = status
        if status == ONLINE:
            if expiry_s is not None and not retained:
                self.period = expiry_s
            # Over MQTT 5 the broker sends the remaining lifetime: an old retained copy counts
            # for what is left of it, a fresh heartbeat for the whole expiry.
            self.heard(now, expiry_s if expiry_s is not None else stale_after_s)

    def observe(
        self,
        kind: str,
        now: float,
        *,
        stale_after_s: float,
        status: str | None = None,
        retained: bool = False,
        expiry_s: float | None = None,
    ) -> None:
        """Fold one message from the device in (the one rule monitor and dashboard share).

        Args:
            kind: The topic's last level (``status``, ``events``, ``stats``, ``state``).
            now: Receipt time.
            stale_after_s: How long evidence without an expiry counts.
            status: The payload of a ``status`` message.
            retained: Whether the broker delivered it from its retained store (then it may be
                old: only a status with an expiry says how old).
            expiry_s: Its MQTT 5 message-expiry interval, or None.
        """
        if kind == "status":
            self.on_status(status or "", now, expiry_s, stale_after_s, retained)
        elif not retained:
            self.heard(now, self.period if self.period is not None else stale_after_s)

    def shown(self, now: float) -> str | None:
        """The status to show: ``stale`` for an ``online`` whose evidence ran out."""
        if self.status == ONLINE and self.alive_until is not None and now > self.alive_until:
            return STALE
        return self.status

    def age_left(self, now: float) -> float | None:
        """Seconds of evidence left (negative once stale), or None before any."""
        if self.alive_until is None:
            return None
        return self.alive_until - now


def message_expiry(properties: object) -> float | None:
    """The MQTT 5 message-expiry interval of a received message, or None (3.1.1, none set).

    Args:
        properties: paho's ``MQTTMessage.properties`` (None over 3.1.1).
    """
    value = getattr(properties, "MessageExpiryInterval", None)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)
