"""The MQTT sink: events, status and stats to a broker with paho-mqtt 2.x.

Topics (``P`` = ``topic_prefix``, default ``fer``; ``D`` = device id; the layout is the
:class:`~edge.topics.Topics` value Home Assistant discovery and the subscribers share):

* ``P/D/events``: one ``fer.event/1`` JSON object per message, QoS ``qos`` (default 1), not
  retained.
* ``P/D/status``: retained plain UTF-8 string, QoS 1: ``online`` on every (re)connect and again
  every heartbeat (``status_expiry_s``/3, at most ``keepalive_s``/2; over MQTT 5 with a
  message-expiry interval of ``status_expiry_s``, so a broker forgets an ``online`` nobody
  refreshes), ``offline`` as the Last Will (the broker publishes it when the device vanishes
  without a clean disconnect), ``stopped`` on a clean shutdown. A plain string keeps the Last
  Will (fixed when the connection is made) truthful and lets dashboards compare without parsing.
  Subscribers show an ``online`` that stopped being refreshed as ``stale`` (``edge/liveness.py``).
* ``P/D/stats``: the runtime's stats snapshot as a JSON object, QoS 0, not retained, only sent
  while connected (a stale snapshot is worthless).
* ``P/D/state``: the current faces (``fer.state/1``, ``edge/state.py``), retained, QoS 1,
  published when a track starts, changes, updates or ends; the newest one is re-sent on every
  (re)connect and every heartbeat (with the status' expiry over MQTT 5), because Home
  Assistant's sensors read it with ``expire_after = status_expiry_s``.
* ``<discovery_prefix>/sensor/<node>/<sensor>/config``: Home Assistant discovery configs,
  retained (``edge/publish/homeassistant.py``), unless ``homeassistant = false``.

Delivery: :meth:`MqttSink.publish_event` only appends to a bounded in-memory queue and returns,
so the frame loop never waits for the network. A worker thread hands queued events to paho while
connected, at most ``max_inflight`` at a time; with QoS >= 1 an event stays "in flight" until the
broker acknowledges it (PUBACK/PUBCOMP) and paho re-sends in-flight messages after a reconnect,
so an event that was on the wire when the connection dropped is delivered again (subscribers
de-duplicate by ``event_id``). While the broker is away the queue grows up to ``queue_size``;
beyond that the OLDEST queued event is dropped and counted in ``dropped`` (for a live emotion
feed the newest state matters most). Reconnects use paho's exponential backoff
(``reconnect_min_s`` doubling up to ``reconnect_max_s``). A broker that refuses the login (bad
user name or password, not authorized) cannot be fixed by retrying: the sink stops retrying and
sets :attr:`MqttSink.fatal_error`, which :meth:`MqttSink.check` and
:meth:`MqttSink.publish_event` raise.

On :meth:`MqttSink.close` the queue is flushed within the timeout, ``stopped`` is published and
the client disconnects cleanly (so the broker discards the Last Will); events that could not be
delivered are returned by :meth:`MqttSink.drain_undelivered` so the caller can write them to a
JSONL file instead of losing them. With ``spool_dir`` the queue is also written ahead to disk
(``edge/publish/spool.py``) and re-sent after a crash.

Heartbeat and dead-link detection (half-open connections): ``edge/publish/heartbeat.py``;
stats count them in ``heartbeats`` and ``half_open``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import deque
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from edge.errors import PublishError
from edge.events import Event
from edge.liveness import DeviceStatus
from edge.publish.base import Sink
from edge.publish.client import acknowledged, fatal_refusal, make_client
from edge.publish.config import MqttSinkConfig
from edge.publish.heartbeat import Heartbeat
from edge.publish.homeassistant import Discovery
from edge.publish.spool import Spool
from edge.topics import Topics

log = logging.getLogger(__name__)


def _jsonable(value: Any) -> Any:
    """Replace non-finite floats (an empty p95) by None so stats are strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


class MqttSink(Sink):
    """Publish events to ``<prefix>/<device_id>/events`` with a bounded outage queue."""

    type = "mqtt"
    config_class = MqttSinkConfig

    @classmethod
    def from_config(cls, cfg: MqttSinkConfig, device_id: str) -> MqttSink:
        """Build from a ``[[sinks]]`` table of type ``mqtt``."""
        return cls(cfg, device_id)

    def __init__(self, cfg: MqttSinkConfig, device_id: str) -> None:
        """Create the sink; nothing connects before :meth:`open`.

        Args:
            cfg: Validated MQTT sink config.
            device_id: Device id used in topics (and the default client id).

        Raises:
            ConfigError: if ``device_id`` cannot be a topic level.
        """
        self.cfg = cfg
        t = Topics(cfg.topic_prefix).device(device_id)  # checks device_id is one topic level
        self.device_id = device_id
        self.client_id = cfg.client_id or f"fer-edge-{device_id}"
        self.topic_events, self.topic_status, self.topic_stats = t.events, t.status, t.stats
        self.topic_state = t.state
        #: Set when the broker refused us for a reason retrying cannot fix (bad credentials).
        self.fatal_error: PublishError | None = None
        self._client: mqtt.Client | None = None
        self._init_queue()
        self._init_counters()
        self._state_payload: str | None = None  # newest state, re-sent on reconnect
        self._heartbeat = Heartbeat(cfg, self.topic_status, self.topic_state, self._newest_state)
        self._spool = (
            Spool(cfg.spool_dir, self.client_id, cfg.spool_fsync) if cfg.spool_dir else None
        )
        self.heartbeat_s = self._heartbeat.interval_s
        self._discovery = self._make_discovery() if cfg.homeassistant else None

    def _init_queue(self) -> None:
        """The event queue, the in-flight list and the worker's signals."""
        self._lock = threading.Lock()
        self._pending: deque[Event] = deque()
        self._inflight: list[tuple[Event, mqtt.MQTTMessageInfo]] = []
        self._connected = threading.Event()
        self._settled = threading.Event()  # connected, or fatal: wait_connected() may return
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._closing = False
        self._closed = False
        self._undelivered: list[Event] = []

    def _init_counters(self) -> None:
        """The counters :meth:`stats` reports."""
        self._published = 0
        self._dropped = 0
        self._connects = 0
        self._connect_failures = 0
        self._failures_since_connect = 0
        self._stats_published = 0

    def _make_discovery(self) -> Discovery:
        """Home Assistant discovery for this device, published through this sink's client."""
        return Discovery(
            self._publish_config,
            device_id=self.device_id,
            topic_prefix=self.cfg.topic_prefix,
            discovery_prefix=self.cfg.discovery_prefix,
            delay_s=self.cfg.discovery_delay_s,
            expire_after=self.cfg.status_expiry_s,
        )

    def __repr__(self) -> str:
        return f"MqttSink(url={self.cfg.safe_url()!r}, device_id={self.device_id!r})"

    # ---- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        """Start connecting in the background and return at once.

        An unreachable broker is not an error: paho keeps retrying with backoff, events queue
        meanwhile and :meth:`stats` says ``connected: false``.

        Raises:
            ConfigError: if the password file cannot be read.
            PublishError: if TLS files cannot be loaded.
        """
        if self._client is not None:
            return
        client, host, port, username = make_client(self.cfg, self.client_id)
        if self._spool is not None:
            self._requeue(self._spool.load())
        self._username = username
        client.max_inflight_messages_set(self.cfg.max_inflight)
        client.will_set(self.topic_status, DeviceStatus.OFFLINE, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._client = client
        log.info(
            "mqtt: connecting to %s as client %r (events on %s)",
            self.cfg.safe_url(),
            self.client_id,
            self.topic_events,
        )
        client.connect_async(host, port, keepalive=self.cfg.keepalive_s)
        client.loop_start()
        self._worker = threading.Thread(target=self._run, name="mqtt-sink", daemon=True)
        self._worker.start()

    def _requeue(self, spooled: list[Event]) -> None:
        """Put events a previous run spooled but never delivered before everything else."""
        if not spooled:
            return
        with self._lock:
            self._pending.extendleft(reversed(spooled))
            excess = len(self._pending) - self.cfg.queue_size
            gone = [self._pending.popleft() for _ in range(max(0, excess))]
            self._dropped += len(gone)
            if self._spool is not None:
                self._spool.done(ev.event_id for ev in gone)
        log.warning(
            "mqtt: re-queued %d events a previous run spooled in %s but never delivered",
            len(spooled) - len(gone),
            self.cfg.spool_dir,
        )

    def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the first connection (e.g. before telling systemd READY).

        Returns:
            True if connected, False if still trying (the sink keeps retrying).

        Raises:
            PublishError: if the broker refused us for good (bad credentials).
        """
        self._settled.wait(timeout)
        self.check()
        return self._connected.is_set()

    def check(self) -> None:
        """Raise :attr:`fatal_error` if the broker refused the connection for good."""
        if self.fatal_error is not None:
            raise self.fatal_error

    @property
    def connected(self) -> bool:
        """Whether the client is connected to the broker right now."""
        return self._connected.is_set()

    # ---- Sink API --------------------------------------------------------------------------

    def publish_event(self, event: Event) -> None:
        """Queue one event for delivery; never blocks on the network.

        Raises:
            PublishError: if the sink is closed, or after the broker refused the login for good
                (the event is still queued and comes back from :meth:`drain_undelivered`).
        """
        with self._lock:
            if self._closing:
                raise PublishError(f"mqtt sink {self.cfg.safe_url()} is closed")
            if self._spool is not None:
                self._spool.add(event)
            if len(self._pending) >= self.cfg.queue_size:
                gone = self._pending.popleft()
                self._dropped += 1
                dropped = self._dropped
                if self._spool is not None:
                    self._spool.done([gone.event_id])
            else:
                dropped = 0
            self._pending.append(event)
        if dropped and dropped & (dropped - 1) == 0:  # log at 1, 2, 4, 8, ... drops
            log.warning(
                "mqtt: queue full (%d events), dropped the oldest; %d dropped so far",
                self.cfg.queue_size,
                dropped,
            )
        self._wake.set()
        self.check()

    def publish_stats(self, stats: dict[str, Any]) -> None:
        """Publish a stats snapshot (QoS 0, not retained) if connected; skip it otherwise."""
        client = self._client
        if client is None or not self._connected.is_set():
            return
        payload = json.dumps(_jsonable(stats), separators=(",", ":"), allow_nan=False, default=str)
        info = client.publish(self.topic_stats, payload, qos=0, retain=False)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._stats_published += 1

    def set_model_info(self, name: str, labels: tuple[str, ...] | list[str], sha256: str) -> None:
        """Give Home Assistant discovery the model's name and labels; publish if connected."""
        if self._discovery is None:
            return
        self._discovery.set_model(name, labels)
        if self._connected.is_set():
            self._discovery.publish_now()

    def publish_state(self, state: dict[str, Any]) -> None:
        """Publish the face state retained with QoS 1; the newest one is re-sent on reconnect.

        Only the newest state matters, so nothing is queued while disconnected.
        """
        payload = json.dumps(_jsonable(state), separators=(",", ":"), allow_nan=False, default=str)
        with self._lock:
            self._state_payload = payload
        if self._connected.is_set():
            self._publish_retained(self.topic_state, payload, expire=True)

    def _publish_config(self, topic: str, payload: str) -> None:
        """Home Assistant discovery configs: retained, QoS 1, never expiring."""
        self._publish_retained(topic, payload)

    def _newest_state(self) -> str | None:
        with self._lock:
            return self._state_payload

    def _publish_retained(
        self, topic: str, payload: str, expire: bool = False
    ) -> mqtt.MQTTMessageInfo | None:
        client = self._client
        if client is None:
            return None
        props = self._heartbeat.props() if expire else None
        return client.publish(topic, payload, qos=1, retain=True, properties=props)

    def stats(self) -> dict[str, Any]:
        """Counters for the device stats.

        Keys: ``connected``, ``url`` (password masked), ``queue_depth`` (queued + in flight),
        ``queued``, ``inflight``, ``published`` (acknowledged events), ``dropped`` (oldest events
        dropped on overflow), ``reconnects`` (successful connects after the first),
        ``connect_failures``, ``heartbeats`` (``online`` refreshes sent), ``half_open`` (dead
        connections dropped), ``error`` (why the broker refused us for good, or None).
        """
        with self._lock:
            queued, inflight = len(self._pending), len(self._inflight)
            published, dropped = self._published, self._dropped
        return {
            "connected": self._connected.is_set(),
            "url": self.cfg.safe_url(),
            "queue_depth": queued + inflight,
            "queued": queued,
            "inflight": inflight,
            "published": published,
            "dropped": dropped,
            "reconnects": max(0, self._connects - 1),
            "connect_failures": self._connect_failures,
            "heartbeats": self._heartbeat.beats,
            "half_open": self._heartbeat.half_open,
            "error": str(self.fatal_error) if self.fatal_error else None,
        }

    def close(self, timeout: float = 5.0) -> None:
        """Flush within ``timeout`` s, publish ``stopped``, disconnect cleanly (no Last Will).

        Events still queued or unacknowledged at the end are kept for
        :meth:`drain_undelivered`. Safe to call twice.
        """
        if self._closed:
            return
        with self._lock:
            self._closing = True
        if self._discovery is not None:
            self._discovery.cancel()
        client = self._client
        if client is None:  # never opened: the spool keeps its events for the next start
            self._keep_undelivered(settle_spool=False)
            return
        start = time.monotonic()
        # Keep a slice of the budget for the 'stopped' message and the disconnect.
        self._flush(until=start + timeout * 0.8)
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=2.0)
        if self._connected.is_set() and self.fatal_error is None:
            self._announce_stopped(client, deadline=start + timeout)
        # A DISCONNECT packet makes the broker discard the Last Will ('offline').
        client.disconnect()
        client.loop_stop()
        self._connected.clear()
        self._reap()
        n = self._keep_undelivered(settle_spool=True)
        if n:
            log.warning(
                "mqtt: %d events were not delivered to %s before shutdown",
                n,
                self.cfg.safe_url(),
            )
        else:
            log.info("mqtt: all events delivered; disconnected from %s", self.cfg.safe_url())

    def _flush(self, until: float) -> None:
        """Let the worker send what is queued until it is all acknowledged, the broker refused
        us for good, or ``until`` (monotonic clock)."""
        while time.monotonic() < until and self.fatal_error is None:
            self._wake.set()
            with self._lock:
                if not self._pending and not self._inflight:
                    break
            time.sleep(0.02)

    def _announce_stopped(self, client: mqtt.Client, deadline: float) -> None:
        """Publish the retained ``stopped`` status and wait for it until ``deadline``."""
        info = client.publish(self.topic_status, DeviceStatus.STOPPED, qos=1, retain=True)
        try:
            info.wait_for_publish(timeout=max(0.2, deadline - time.monotonic()))
        except (RuntimeError, ValueError) as e:
            log.warning("mqtt: could not publish the %s status: %s", DeviceStatus.STOPPED, e)

    def _keep_undelivered(self, settle_spool: bool) -> int:
        """Move unacknowledged and queued events to :meth:`drain_undelivered`'s list, close the
        spool (settled first if asked), mark the sink closed; return how many were not
        delivered."""
        with self._lock:
            self._undelivered = [ev for ev, _ in self._inflight] + list(self._pending)
            self._inflight.clear()
            self._pending.clear()
            if self._spool is not None:
                if settle_spool:
                    self._settle_spool()
                self._spool.close()  # what is left is re-sent by the next start
        self._closed = True
        return len(self._undelivered)

    def drain_undelivered(self) -> list[Event]:
        """Events not acknowledged by the broker when :meth:`close` ended, oldest first.

        Events that were sent but not acknowledged may have reached the broker: writing them
        elsewhere gives at-least-once, never loss. Returns each event once; empty before close.
        """
        with self._lock:
            out, self._undelivered = self._undelivered, []
        return out

    # ---- worker ----------------------------------------------------------------------------

    def _run(self) -> None:
        """Hand queued events to paho while connected; collect acknowledgements."""
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            self._beat()
            self._pump()

    def _beat(self) -> None:
        client = self._client
        if client is not None and not self._closing and self.fatal_error is None:
            self._heartbeat.tick(client, self._connected.is_set())

    def _reap(self) -> None:
        with self._lock:
            if not self._inflight:
                return
            acked = [acknowledged(info) for _, info in self._inflight]
            keep = [pair for pair, ok in zip(self._inflight, acked, strict=True) if not ok]
            self._published += len(self._inflight) - len(keep)
            if self._spool is not None and len(keep) < len(self._inflight):
                self._spool.done(
                    ev.event_id for (ev, _), ok in zip(self._inflight, acked, strict=True) if ok
                )
            self._inflight = keep
            self._settle_spool()

    def _settle_spool(self) -> None:
        """Empty the spool when nothing is pending (caller holds the lock)."""
        spool = self._spool
        if spool is None:
            return
        if not self._pending and not self._inflight:
            spool.settle([])
        elif spool.large:
            spool.settle([ev for ev, _ in self._inflight] + list(self._pending))

    def _pump(self) -> None:
        client = self._client
        assert client is not None
        qos = self.cfg.qos
        while True:
            self._reap()
            if self._stop.is_set() or not self._connected.is_set() or self.fatal_error:
                return
            with self._lock:
                if not self._pending or len(self._inflight) >= self.cfg.max_inflight:
                    return
                event = self._pending.popleft()
            # Never call paho while holding our lock: paho calls on_publish under its own lock.
            info = client.publish(self.topic_events, event.to_json(), qos=qos)
            with self._lock:
                if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS and qos == 0:
                    self._published += 1  # QoS 0 is fire-and-forget: no acknowledgement comes.
                    if self._spool is not None:
                        self._spool.done([event.event_id])
                elif qos > 0 and info.rc in (
                    MQTTErrorCode.MQTT_ERR_SUCCESS,
                    MQTTErrorCode.MQTT_ERR_NO_CONN,
                ):
                    # NO_CONN with QoS >= 1: paho keeps the message and sends it on reconnect.
                    self._inflight.append((event, info))
                else:
                    self._pending.appendleft(event)
                    return

    # ---- paho callbacks (network thread) ---------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: Any,
        properties: Any,
    ) -> None:
        if reason_code.is_failure:
            self._refused(client, reason_code)
            return
        self._connects += 1
        if self._connects == 1:
            log.info("mqtt: connected to %s", self.cfg.safe_url())
        else:
            log.info(
                "mqtt: reconnected to %s after %d failed attempts",
                self.cfg.safe_url(),
                self._failures_since_connect,
            )
        self._failures_since_connect = 0
        self._heartbeat.on_connect(client)
        self._connected.set()
        # After _connected: a set_model_info() racing with this connect then publishes itself.
        self._announce(client)
        self._settled.set()
        self._wake.set()

    def _refused(self, client: mqtt.Client, reason_code: Any) -> None:
        """The broker refused us: for good (bad credentials, not authorised: stop retrying and
        say what to check) or for now (retry)."""
        refusal = fatal_refusal(reason_code)
        if refusal is not None:
            self.fatal_error = PublishError(
                f"MQTT broker {self.cfg.safe_url()} refused the connection of client "
                f"{self.client_id!r} (user {self._username!r}): {refusal}. "
                "Check username/password (password_file or $" + self.cfg.password_env + ") "
                "and the broker's ACL; retrying cannot help."
            )
            log.error("%s", self.fatal_error)
            client.disconnect()  # ends paho's retry loop
            self._settled.set()
        else:
            log.warning(
                "mqtt: broker %s refused the connection (%s); retrying",
                self.cfg.safe_url(),
                reason_code,
            )
        self._wake.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self._connect_failures += 1
        self._failures_since_connect += 1
        n = self._failures_since_connect
        if n & (n - 1) == 0:  # 1, 2, 4, 8, ...: say so without flooding the journal
            log.warning(
                "mqtt: broker %s unreachable (%d attempts); retrying with backoff up to %gs, "
                "events are queued",
                self.cfg.safe_url(),
                n,
                self.cfg.reconnect_max_s,
            )

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: Any,
        properties: Any,
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if was_connected and not self._closing:
            log.warning(
                "mqtt: lost connection to %s (%s); reconnecting, events are queued",
                self.cfg.safe_url(),
                reason_code,
            )

    def _announce(self, client: mqtt.Client) -> None:
        """After a connect: re-send the newest state, Home Assistant discovery, HA birth sub."""
        with self._lock:
            state = self._state_payload
        if state is not None:
            client.publish(
                self.topic_state, state, qos=1, retain=True, properties=self._heartbeat.props()
            )
        if self._discovery is not None:
            client.subscribe(self._discovery.birth_topic, qos=1)
            self._discovery.publish_now()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._discovery is not None and msg.topic == self._discovery.birth_topic:
            self._discovery.on_birth(bytes(msg.payload))

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_code: Any, properties: Any
    ) -> None:
        # Called under paho's message lock: only signal, the worker does the bookkeeping.
        self._heartbeat.on_ack(mid)
        self._wake.set()
