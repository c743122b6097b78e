"""The MQTT sink's heartbeat: keep the retained ``online`` true, and notice dead links.

Every :attr:`Heartbeat.interval_s` (``status_expiry_s``/3, at most ``keepalive_s``/2, see
:func:`edge.liveness.heartbeat_interval`) the sink re-publishes the retained ``online`` status and
its retained face state; over MQTT 5 both carry a message-expiry interval of ``status_expiry_s``,
so a broker forgets an ``online`` that nobody refreshes (``edge/liveness.py`` says why).

Half-open links (a Wi-Fi link that vanishes without a FIN): paho alone notices them only after up
to two keepalive periods. Each heartbeat is a QoS-1 publish, so it doubles as a probe: when one
is not acknowledged within ``keepalive_s``/2 the socket is shut down under paho, which then
reconnects and re-sends what was in flight. A dead link is thus noticed at most ``keepalive_s``
(plus one worker tick) after it died. Likewise a connection attempt whose CONNACK does not come
within ``keepalive_s``/2 (its CONNECT vanished into the same dead link) is abandoned and
retried, instead of waiting a whole keepalive for paho to give up.

Called from the sink's worker thread (:meth:`Heartbeat.tick`) and from paho's callbacks
(:meth:`Heartbeat.on_connect`, :meth:`Heartbeat.on_ack`); the shared fields are single
assignments, so the races between them are benign (at worst one probe is skipped).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.liveness import ONLINE, heartbeat_interval
from edge.publish.config import MqttSinkConfig

log = logging.getLogger(__name__)


class Heartbeat:
    """Refreshes one device's retained ``online`` and state; detects dead connections.

    Args:
        cfg: The sink's config (``status_expiry_s``, ``keepalive_s``, ``protocol``).
        topic_status: ``<prefix>/<device>/status``.
        topic_state: ``<prefix>/<device>/state``.
        state: Returns the newest state payload (None before any).
    """

    def __init__(
        self,
        cfg: MqttSinkConfig,
        topic_status: str,
        topic_state: str,
        state: Callable[[], str | None],
    ) -> None:
        self.cfg = cfg
        self.topic_status = topic_status
        self.topic_state = topic_state
        self._state = state
        self.interval_s = heartbeat_interval(cfg.status_expiry_s, cfg.keepalive_s)
        #: Heartbeats sent and dead connections dropped (for the stats).
        self.beats = 0
        self.half_open = 0
        self._next = 0.0
        # (mid, monotonic send time) of the heartbeat not yet acknowledged by the broker.
        self._probe: tuple[int, float] | None = None
        # (socket, monotonic time first seen) of a connection still waiting for its CONNACK.
        self._handshake: tuple[object, float] | None = None

    def props(self) -> Properties | None:
        """MQTT 5 properties giving a message ``status_expiry_s`` to live (None over 3.1.1)."""
        if self.cfg.protocol != "5":
            return None
        props = Properties(PacketTypes.PUBLISH)
        props.MessageExpiryInterval = self.cfg.status_expiry_s
        return props

    def on_connect(self, client: mqtt.Client) -> None:
        """A connection was accepted: publish ``online`` now, the next beat one interval later."""
        self._probe = None
        self._handshake = None
        self._next = time.monotonic() + self.interval_s
        self._send_online(client)

    def on_ack(self, mid: int) -> None:
        """paho's ``on_publish``: an acknowledged probe proves the link is alive."""
        probe = self._probe
        if probe is not None and probe[0] == mid:
            self._probe = None

    def tick(self, client: mqtt.Client, connected: bool) -> None:
        """Beat when due; drop a connection that stopped answering (call about every 0.5 s)."""
        now = time.monotonic()
        if not connected:
            self._check_handshake(client, now)
            return
        self._handshake = None
        probe = self._probe
        if probe is not None and now - probe[1] > self.cfg.keepalive_s / 2:
            self._probe = None
            self.half_open += 1
            log.warning(
                "mqtt: no acknowledgement from %s for %.1f s: the link is dead (half-open); "
                "reconnecting, events are kept",
                self.cfg.safe_url(),
                now - probe[1],
            )
            _drop_socket(client)
            return
        if now < self._next:
            return
        self._next = now + self.interval_s
        self._send_online(client)
        state = self._state()
        if state is not None:
            client.publish(self.topic_state, state, qos=1, retain=True, properties=self.props())
        self.beats += 1

    def _check_handshake(self, client: mqtt.Client, now: float) -> None:
        """Abandon a TCP connection whose CONNACK has not come within ``keepalive_s``/2."""
        sock = client.socket()
        if sock is None:
            self._handshake = None
            return
        if self._handshake is None or self._handshake[0] is not sock:
            self._handshake = (sock, now)
            return
        waited = now - self._handshake[1]
        if waited > self.cfg.keepalive_s / 2:
            self._handshake = None
            log.warning(
                "mqtt: no CONNACK from %s for %.1f s: dropping the attempt and retrying",
                self.cfg.safe_url(),
                waited,
            )
            _drop_socket(client)

    def _send_online(self, client: mqtt.Client) -> None:
        """Publish the retained ``online`` (with its expiry) and remember it as the probe."""
        info = client.publish(
            self.topic_status, ONLINE, qos=1, retain=True, properties=self.props()
        )
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._probe is None:
            self._probe = (info.mid, time.monotonic())


def _drop_socket(client: mqtt.Client) -> None:
    """Shut the socket down under paho: it sees the connection lost and reconnects."""
    sock = client.socket()
    if isinstance(sock, socket.socket):  # ssl.SSLSocket is one too
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError as e:
            log.debug("mqtt: shutdown of a dead socket: %s", e)
