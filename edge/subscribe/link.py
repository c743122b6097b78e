"""A subscriber's connection to the broker: config, client, subscriptions and refusals.

``fer-edge monitor`` and the web dashboard connect the same way:

* :func:`subscriber_config` validates the URL, credentials and TLS files with the MQTT sink's
  own config model (one set of rules for every fer-edge client) and names the command in the
  error;
* :class:`BrokerLink` builds the paho client with :func:`~edge.publish.client.make_client`,
  connects in the background (paho's backoff between ``reconnect_min_s`` and
  ``reconnect_max_s``), subscribes on every (re)connect, and hands each received message to a
  callback as a :class:`~edge.subscribe.messages.Message`, on paho's network thread (the caller
  queues it to its own thread);
* its :attr:`BrokerLink.state` says where the connection stands (``connecting``, ``connected``,
  ``reconnecting``, ``unreachable``, ``refused``); a refusal retrying cannot fix (bad
  credentials, not authorized, see :func:`~edge.publish.client.fatal_refusal`) stops the retries,
  and :meth:`BrokerLink.check` then raises it as a :class:`~edge.errors.PublishError`.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge.errors import ConfigError, PublishError
from edge.liveness import message_expiry
from edge.publish.client import fatal_refusal, make_client
from edge.publish.config import MqttSinkConfig
from edge.subscribe.messages import Message

log = logging.getLogger(__name__)

CONNECTING = "connecting"
CONNECTED = "connected"
RECONNECTING = "reconnecting"
UNREACHABLE = "unreachable"
REFUSED = "refused"


def subscriber_config(
    who: str,
    url: str,
    prefix: str = "fer",
    *,
    username: str | None = None,
    password: str | None = None,
    ca_file: str | Path | None = None,
    cert_file: str | Path | None = None,
    key_file: str | Path | None = None,
) -> MqttSinkConfig:
    """Validated broker settings for a subscriber (the sink's config model, reused).

    Subscribers retry faster than devices (0.5 s doubling up to 10 s): a person is watching.

    Args:
        who: The command (``monitor``, ``dashboard``), named in errors.
        url: Broker URL (``mqtt://host:1883`` or ``mqtts://host:8883``).
        prefix: Topic prefix the devices use.
        username: Broker user (or in the URL).
        password: Broker password (default: ``$FER_EDGE_MQTT_PASSWORD``).
        ca_file: CA for ``mqtts``; cert_file/key_file: client certificate.

    Raises:
        ConfigError: for a malformed URL or prefix, naming ``who``.
    """
    try:
        return MqttSinkConfig(
            type="mqtt",
            url=url,
            username=username,
            password=password,  # type: ignore[arg-type]  # pydantic coerces str to SecretStr
            ca_file=Path(ca_file) if ca_file else None,
            cert_file=Path(cert_file) if cert_file else None,
            key_file=Path(key_file) if key_file else None,
            topic_prefix=prefix,
            homeassistant=False,
            reconnect_min_s=0.5,
            reconnect_max_s=10.0,
        )
    except ValidationError as e:
        msgs = "; ".join(str(err["msg"]).removeprefix("Value error, ") for err in e.errors())
        raise ConfigError(f"{who}: {msgs}") from None


def client_id_for(who: str) -> str:
    """A client id unique to this process: two monitors must not kick each other off."""
    return f"fer-edge-{who}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class BrokerLink:
    """One subscriber connection (see the module docstring).

    Args:
        cfg: Broker settings (from :func:`subscriber_config`).
        subscriptions: ``[(topic filter, qos), ...]``, subscribed on every connect.
        on_message: Called with each received message (on paho's thread).
        who: The command (``monitor``, ``dashboard``), named in logs and errors.
        hint: What to check when the broker refuses the login (named in the error).
        client_id: MQTT client id (default: :func:`client_id_for`).
        on_change: Called with the link after each change of :attr:`state` or
            :attr:`attempts` (on paho's thread).
        on_ready: Called once the broker acknowledged the subscriptions (on paho's thread).
    """

    def __init__(
        self,
        cfg: MqttSinkConfig,
        subscriptions: list[tuple[str, int]],
        on_message: Callable[[Message], object],
        *,
        who: str,
        hint: str,
        client_id: str | None = None,
        on_change: Callable[[BrokerLink], object] | None = None,
        on_ready: Callable[[], object] | None = None,
    ) -> None:
        self.cfg = cfg
        self.subscriptions = subscriptions
        self.who = who
        self.hint = hint
        self.client_id = client_id or client_id_for(who)
        self.state = CONNECTING
        #: Failed connection attempts since the last success.
        self.attempts = 0
        #: Why the broker refused us for good, or None.
        self.fatal: str | None = None
        self._on_message = on_message
        self._on_change = on_change
        self._on_ready = on_ready
        self._client: Any = None

    def start(self) -> None:
        """Connect in the background and return at once (an absent broker is retried).

        Raises:
            ConfigError: if the password file cannot be read.
            PublishError: if TLS files cannot be loaded.
        """
        client, host, port, _ = make_client(self.cfg, self.client_id)
        client.on_connect = self._connected
        client.on_connect_fail = self._connect_failed
        client.on_disconnect = self._disconnected
        client.on_subscribe = self._subscribed
        client.on_message = self._received
        client.connect_async(host, port, keepalive=self.cfg.keepalive_s)
        client.loop_start()
        self._client = client

    def stop(self) -> None:
        """Disconnect and stop paho's thread (safe before :meth:`start` and twice)."""
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def check(self) -> None:
        """Raise if the broker refused us for good.

        Raises:
            PublishError: naming the broker (password masked), the reason and what to check.
        """
        if self.fatal is not None:
            raise PublishError(
                f"MQTT broker {self.cfg.safe_url()} refused the {self.who}'s connection: "
                f"{self.fatal}; check {self.hint} or ${self.cfg.password_env}"
            )

    # ---------------------------------------------------------------- paho callbacks
    def _set(self, state: str) -> None:
        self.state = state
        if self._on_change is not None:
            self._on_change(self)

    def _connected(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            self.fatal = fatal_refusal(rc)
            if self.fatal is None:
                log.warning("broker %s refused the connection (%s); retrying", self._url, rc)
                return
            log.error("broker %s refused the %s: %s", self._url, self.who, self.fatal)
            client.disconnect()  # ends paho's retry loop
            self._set(REFUSED)
            return
        self.attempts = 0
        client.subscribe(self.subscriptions)
        log.info("subscribed to %s on %s", [t for t, _ in self.subscriptions], self._url)
        self._set(CONNECTED)

    def _connect_failed(self, client: Any, userdata: Any) -> None:
        self.attempts += 1
        n = self.attempts
        if n & (n - 1) == 0:  # 1, 2, 4, 8, ...: say so without flooding the journal
            log.warning("broker %s unreachable (%d attempts); retrying", self._url, n)
        self._set(UNREACHABLE)

    def _disconnected(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if self.fatal is not None:
            return  # refused for good: that is what to show, not a reconnect
        if self.state == CONNECTED:
            log.warning("lost connection to %s (%s); reconnecting", self._url, rc)
        self._set(RECONNECTING)

    def _subscribed(self, client: Any, userdata: Any, mid: Any, rcs: Any, props: Any) -> None:
        if self._on_ready is not None:
            self._on_ready()

    def _received(self, client: Any, userdata: Any, msg: Any) -> None:
        expiry = message_expiry(getattr(msg, "properties", None))
        self._on_message(Message(str(msg.topic), bytes(msg.payload), bool(msg.retain), expiry))

    @property
    def _url(self) -> str:
        return self.cfg.safe_url()
