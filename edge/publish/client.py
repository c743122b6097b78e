"""The paho client every fer-edge MQTT user builds the same way: the sink, monitor, dashboard.

:func:`make_client` applies the validated :class:`~edge.publish.config.MqttSinkConfig` (protocol,
credentials, TLS, reconnect backoff); :data:`FATAL_CONNACK` names the refusals that retrying
cannot fix and :func:`fatal_refusal` reads them off a CONNACK; :func:`acknowledged` reads a
published message's acknowledgement where paho's own accessor raises.
"""

from __future__ import annotations

import logging
import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from edge.errors import PublishError
from edge.publish.config import MqttSinkConfig, parse_mqtt_url

log = logging.getLogger(__name__)

# CONNACK reason codes (MQTT 5 numbering; paho maps 3.1.1 return codes onto them) after which
# retrying with the same settings cannot succeed: protocol, client id, credentials, auth.
FATAL_CONNACK = {
    132: "unsupported protocol version (for a broker that speaks only MQTT 3.1.1 set "
    'protocol = "3.1.1")',
    133: "client identifier not valid",
    134: "bad user name or password",
    135: "not authorized",
    140: "bad authentication method",
}


def acknowledged(info: mqtt.MQTTMessageInfo) -> bool:
    """Whether the broker acknowledged an in-flight QoS >= 1 message.

    A message published while the connection was down (``rc`` NO_CONN) is kept by paho and sent
    after the reconnect, but paho's ``is_published()`` raises for it forever, because it checks
    the ``rc`` of the first attempt before the acknowledgement (paho-mqtt 2.1). Asking it would
    crash the sender and, at shutdown, lose every queued event; for those messages the
    acknowledgement is read from the flag paho sets when PUBACK/PUBCOMP arrives.
    """
    if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
        return bool(getattr(info, "_published", False))
    try:
        return info.is_published()
    except (RuntimeError, ValueError):  # a message paho never queued: not acknowledged
        return False


def fatal_refusal(reason_code: ReasonCode) -> str | None:
    """Why a failed CONNACK can never succeed on retry, or None (retrying may help).

    Args:
        reason_code: The ``reason_code`` paho passes to ``on_connect``.
    """
    return FATAL_CONNACK.get(int(reason_code.value))


def make_client(cfg: MqttSinkConfig, client_id: str) -> tuple[mqtt.Client, str, int, str | None]:
    """Create a paho client with TLS and credentials from ``cfg`` (not yet connected).

    Returns:
        (client, host, port, username).

    Raises:
        ConfigError: if the password file cannot be read.
        PublishError: if TLS files cannot be loaded.
    """
    _, host, port, _, _ = parse_mqtt_url(cfg.url)
    protocol = mqtt.MQTTv5 if cfg.protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        # MQTT 5 uses clean_start on connect instead; 3.1.1 needs a clean session so a device
        # that restarts does not inherit a backlog meant for a previous incarnation.
        clean_session=None if protocol == mqtt.MQTTv5 else True,
    )
    username = cfg.resolve_username()
    password = cfg.resolve_password()
    if username is not None or password is not None:
        client.username_pw_set(username or "", password)
    if cfg.tls:
        _set_tls(client, cfg)
    elif cfg.ca_file or cfg.cert_file:
        log.warning("mqtt: ca_file/cert_file are ignored for %s (use mqtts://)", cfg.safe_url())
    client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)  # type: ignore[arg-type]
    return client, host, port, username


def _set_tls(client: mqtt.Client, cfg: MqttSinkConfig) -> None:
    """Load the CA bundle and client certificate of an ``mqtts://`` broker.

    Raises:
        PublishError: if a TLS file cannot be loaded (named in the message).
    """
    try:
        client.tls_set(
            ca_certs=str(cfg.ca_file) if cfg.ca_file else None,
            certfile=str(cfg.cert_file) if cfg.cert_file else None,
            keyfile=str(cfg.key_file) if cfg.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    except (OSError, ssl.SSLError) as e:
        raise PublishError(
            f"mqtt TLS setup failed (ca_file={cfg.ca_file}, cert_file={cfg.cert_file}, "
            f"key_file={cfg.key_file}): {e}"
        ) from None
    if cfg.tls_insecure:
        client.tls_insecure_set(True)
