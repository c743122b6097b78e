"""Validated configuration of the event sinks (one ``[[sinks]]`` table per sink).

Each sink type has its own pydantic model; :data:`SinkConfig` is their union discriminated by
``type``, so an unknown ``type`` or an unknown key is rejected with the valid choices named (read
off the union: :data:`SINK_CONFIG_MODELS`). Each sink class in :mod:`edge.publish` names its
model (``config_class``). The main config tree (``edge/config.py``) embeds ``list[SinkConfig]``;
the MQTT URL helpers here are shared with ``fer-edge monitor``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from edge.errors import ConfigError
from edge.liveness import DEFAULT_EXPIRY_S
from edge.plugins import union_members
from edge.redact import mask_url

#: Environment variable read for the MQTT password when none is configured.
DEFAULT_PASSWORD_ENV = "FER_EDGE_MQTT_PASSWORD"
MQTT_SCHEMES = {"mqtt": 1883, "mqtts": 8883}


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StdoutSinkConfig(_Base):
    """Events as JSON lines on standard output (the default when no broker is configured)."""

    type: Literal["stdout"] = Field("stdout", description="Sink type: JSON lines on stdout.")

    def summary(self) -> str:
        """One-line description for logs."""
        return "stdout"


class JsonlSinkConfig(_Base):
    """Events appended as JSON lines to a file (an audit log and the outage spill file)."""

    type: Literal["jsonl"] = Field("jsonl", description="Sink type: append JSON lines to a file.")
    path: Path = Field(
        ...,
        description="File the events are appended to; parent folders are created. On a device "
        "use a path under /var/lib/fer-edge (the service's only writable folder).",
    )
    fsync_every: int = Field(
        0,
        ge=0,
        description="Also fsync after every N events (0: only flush per event and fsync on close). "
        "Flushing already survives a process crash; fsync also survives a power cut.",
    )

    def summary(self) -> str:
        """One-line description for logs (``jsonl <path>``)."""
        return f"jsonl {self.path}"


class MqttSinkConfig(_Base):
    """Events, status and stats published to an MQTT broker (paho-mqtt 2.x)."""

    type: Literal["mqtt"] = Field("mqtt", description="Sink type: publish to an MQTT broker.")
    url: str = Field(
        "mqtt://localhost:1883",
        description="Broker URL mqtt://host[:port] (plain, default port 1883) or "
        "mqtts://host[:port] (TLS, default port 8883). A user:password@ part is accepted but a "
        "password belongs in password_file or the environment.",
    )
    username: str | None = Field(None, description="User name for broker authentication.")
    password: SecretStr | None = Field(
        None,
        description="Password (prefer password_file or the environment variable named by "
        "password_env, so the config file holds no secret). Never logged.",
    )
    password_file: Path | None = Field(
        None,
        description="File whose first line is the password (e.g. /etc/fer-edge/mqtt-password, "
        "mode 0640). $VARS are expanded, so ${CREDENTIALS_DIRECTORY}/mqtt works with systemd "
        "LoadCredential=.",
    )
    password_env: str = Field(
        DEFAULT_PASSWORD_ENV,
        description="Environment variable read for the password when neither password nor "
        "password_file is set.",
    )
    ca_file: Path | None = Field(
        None, description="CA bundle that signed the broker certificate (mqtts; default: system)."
    )
    cert_file: Path | None = Field(None, description="Client certificate for mutual TLS (mqtts).")
    key_file: Path | None = Field(None, description="Private key of cert_file (mqtts).")
    tls_insecure: bool = Field(
        False,
        description="Skip the broker certificate's host-name check. Only for lab brokers with a "
        "self-signed certificate; it allows man-in-the-middle attacks.",
    )
    client_id: str | None = Field(
        None,
        description="MQTT client id; must be unique per broker (default: fer-edge-<device_id>).",
    )
    qos: Literal[0, 1, 2] = Field(
        1,
        description="QoS of event messages. 1 (default): at least once, each event is kept until "
        "the broker acknowledges it; subscribers de-duplicate by event_id. 0 can lose events.",
    )
    keepalive_s: int = Field(
        30, ge=5, le=3600, description="MQTT keepalive in seconds (also how fast LWT fires)."
    )
    topic_prefix: str = Field(
        "fer",
        min_length=1,
        description="Topic prefix: <prefix>/<device_id>/events|status|stats.",
    )
    queue_size: int = Field(
        10000,
        ge=1,
        le=10_000_000,
        description="Events kept while the broker is unreachable. When full the OLDEST queued "
        "event is dropped and counted in stats 'dropped' (newest state matters most).",
    )
    max_inflight: int = Field(
        20, ge=1, le=65535, description="Events sent but not yet acknowledged (QoS 1/2)."
    )
    reconnect_min_s: float = Field(
        1.0, gt=0, le=3600, description="First reconnect delay; doubles after each failure."
    )
    reconnect_max_s: float = Field(
        30.0, gt=0, le=3600, description="Upper bound of the reconnect delay."
    )
    protocol: Literal["3.1.1", "5"] = Field(
        "5",
        description="MQTT protocol version. 5 (default; mosquitto >= 1.6, EMQX, HiveMQ) lets the "
        "broker expire a retained 'online' that is no longer refreshed (status_expiry_s). Use "
        "3.1.1 for a broker that speaks only 3.1.1: subscribers then judge staleness by the age "
        "of the last heartbeat (docs/RELIABILITY.md).",
    )
    status_expiry_s: int = Field(
        DEFAULT_EXPIRY_S,
        ge=3,
        le=86400,
        description="Lifetime of the retained 'online' status and face state: the device "
        "re-publishes both every status_expiry_s/3 s (at most every keepalive_s/2), over MQTT 5 "
        "with this message-expiry interval, and Home Assistant sensors get expire_after = this. "
        "A device that dies in any way (crash, SIGSTOP, broker crash, half-open link) is shown "
        "stale by monitor, dashboard and Home Assistant at most this long after its last "
        "heartbeat.",
    )
    spool_dir: Path | None = Field(
        None,
        description="Folder of a write-ahead file of undelivered events (e.g. "
        "/var/lib/fer-edge/spool, the service's writable folder): every event is appended "
        "before it is queued, and the next start re-sends those the broker never acknowledged, "
        "so a device killed outright (SIGKILL, OOM, watchdog reset) during a broker outage "
        "loses none. Files are emptied when nothing is pending (after every 1000 delivered "
        "events). None: queue in memory only.",
    )
    spool_fsync: bool = Field(
        False,
        description="Also fsync the spool after every write: survives a power cut, at the cost "
        "of SD-card wear (without it a process crash loses nothing, a power cut may).",
    )
    homeassistant: bool = Field(
        True,
        description="Publish Home Assistant MQTT discovery configs (retained) so the device "
        "appears in Home Assistant with emotion, faces and confidence sensors. See "
        "docs/DASHBOARDS.md.",
    )
    discovery_prefix: str = Field(
        "homeassistant",
        min_length=1,
        description="Home Assistant discovery prefix (HA's MQTT integration setting); configs "
        "go to <discovery_prefix>/sensor/<device>/<sensor>/config and HA's birth message is "
        "read from <discovery_prefix>/status.",
    )
    discovery_delay_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description="Re-publish the discovery configs this many seconds at most (a random "
        "delay) after Home Assistant announces 'online', so a restarting HA is not flooded by "
        "every device at once.",
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, v: str) -> str:
        parse_mqtt_url(v)  # raises ValueError with the reason
        return v

    @field_validator("topic_prefix", "discovery_prefix")
    @classmethod
    def _check_prefix(cls, v: str, info: ValidationInfo) -> str:
        if any(c in v for c in "#+\0") or v.startswith("/") or v.endswith("/"):
            raise ValueError(
                f"{info.field_name} {v!r} must not contain '#', '+' or NUL or start/end with '/'"
            )
        return v

    @model_validator(mode="after")
    def _check_tls(self) -> MqttSinkConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self

    @property
    def tls(self) -> bool:
        """True for an ``mqtts://`` URL."""
        return parse_mqtt_url(self.url)[0] == "mqtts"

    def safe_url(self) -> str:
        """The URL with any password masked, for logs and stats."""
        return mask_url(self.url)

    def summary(self) -> str:
        """One-line, secret-free description for logs (``mqtt <masked url>``)."""
        return f"mqtt {self.safe_url()}"

    def resolve_password(self) -> str | None:
        """The password from config, ``password_file``, URL or environment (in that order).

        Raises:
            ConfigError: if ``password_file`` is set but cannot be read.
        """
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            path = Path(os.path.expandvars(str(self.password_file)))
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as e:
                raise ConfigError(
                    f"mqtt password_file {path} cannot be read: {e.strerror}"
                ) from None
            lines = text.splitlines()
            return lines[0] if lines else ""
        url_pw = parse_mqtt_url(self.url)[4]
        if url_pw is not None:
            return url_pw
        return os.environ.get(self.password_env) or None

    def resolve_username(self) -> str | None:
        """``username`` or the user part of the URL."""
        return self.username if self.username is not None else parse_mqtt_url(self.url)[3]


#: One ``[[sinks]]`` table: the class is chosen by ``type``.
SinkConfig = Annotated[
    StdoutSinkConfig | JsonlSinkConfig | MqttSinkConfig, Field(discriminator="type")
]
#: ``type`` -> config class, read off :data:`SinkConfig`.
SINK_CONFIG_MODELS: dict[str, type[BaseModel]] = union_members(SinkConfig)


def parse_mqtt_url(url: str) -> tuple[str, str, int, str | None, str | None]:
    """Split ``mqtt[s]://[user[:password]@]host[:port]``.

    Returns:
        (scheme, host, port, username or None, password or None).

    Raises:
        ValueError: naming what is wrong (scheme, host, port, path); the message never contains
            the password.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"MQTT URL {mask_url(url)!r} is invalid: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in MQTT_SCHEMES:
        raise ValueError(
            f"MQTT URL {mask_url(url)!r} has scheme {parts.scheme!r}; valid: "
            f"{sorted(MQTT_SCHEMES)} (mqtt://host:1883, mqtts://host:8883)"
        )
    if not parts.hostname:
        raise ValueError(f"MQTT URL {mask_url(url)!r} has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"MQTT URL {mask_url(url)!r} must not have a path, query or fragment")
    return (
        scheme,
        parts.hostname,
        port if port is not None else MQTT_SCHEMES[scheme],
        parts.username or None,
        parts.password,
    )
