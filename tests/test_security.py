"""Security: TLS + password broker end to end, refused logins, certificate mismatch, secrets.

test_mqtt already covers the MQTT sink alone over TLS with a password, the untrusted-CA retry,
a wrong password on a bare sink and secrets in the stats topic; test_pipeline covers a refused
login through the CLI on a plain listener and "no image bytes" on events/stats/status. Here:

* the whole pipeline over ``mqtts://`` with a password file, anonymous and wrong-password
  clients refused, and every payload on every topic (events, status, stats, state, Home
  Assistant discovery) checked for secrets and image data;
* a wrong password over TLS through ``fer-edge run``: one message, exit 2, no retry storm;
* a certificate that is signed by the trusted CA but names another host: the device keeps
  running and retrying, and its stats say so;
* secrets never in logs, ``validate-config`` or ``info`` output; world-readable config warning.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge.app import Pipeline
from edge.config import default_sample_path, load_config
from edge.events import Event
from edge.testing.broker import BrokerError, Mosquitto, Subscriber
from edge.testing.cli import run_module

SECRET = "Pa55-w0rd-that-must-never-leak"
WRONG = "Wr0ng-guess-also-secret"

pytestmark = pytest.mark.broker


def _pw_file(tmp: Path, secret: str = SECRET) -> Path:
    p = tmp / "mqtt-password"
    p.write_text(secret + "\n")
    p.chmod(0o600)
    return p


def _walk_keys(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        return [str(k) for k in obj] + [k for v in obj.values() for k in _walk_keys(v)]
    if isinstance(obj, list):
        return [k for v in obj for k in _walk_keys(v)]
    return []


def _longest_list(obj: Any) -> int:
    if isinstance(obj, dict):
        return max((_longest_list(v) for v in obj.values()), default=0)
    if isinstance(obj, list):
        return max([len(obj), *(_longest_list(v) for v in obj)])
    return 0


def _longest_token(text: str) -> int:
    return max((len(t) for t in text.replace('"', " ").replace(",", " ").split()), default=0)


def assert_clean_payload(topic: str, payload: bytes, secrets: tuple[str, ...]) -> None:
    """No secret, no image data: small UTF-8 text, no pixel-ish keys, no long blobs."""
    for s in secrets:
        assert s.encode() not in payload, topic
    assert len(payload) < 8192, topic
    text = payload.decode("utf-8")  # binary image bytes would not decode
    assert _longest_token(text) < 300, topic  # no base64 JPEG/PNG hidden in a string
    try:
        doc = json.loads(text)
    except ValueError:
        assert text in ("online", "offline", "stopped"), (topic, text)
        return
    keys = {k.lower() for k in _walk_keys(doc)}
    forbidden = {"image", "pixels", "frame_data", "jpeg", "png", "face_image", "thumbnail"}
    assert not keys & forbidden, topic
    assert _longest_list(doc) < 256, topic  # no pixel arrays either


@pytest.mark.slow
def test_pipeline_over_tls_with_password_leaks_nothing(
    mosquitto_factory: Callable[..., Mosquitto],
    model_path: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = mosquitto_factory(tls=True, passwords={"cam": SECRET, "viewer": "viewer-pw"})
    assert broker.url.startswith("mqtts://")
    # Anonymous and wrong-password clients are refused (the subscription never happens).
    with pytest.raises(BrokerError):
        Subscriber(broker.url, ["#"], ca_file=broker.ca_file, timeout=3)
    with pytest.raises(BrokerError):
        Subscriber(
            broker.url, ["#"], username="cam", password=WRONG, ca_file=broker.ca_file, timeout=3
        )
    sub = Subscriber(
        broker.url, ["#"], username="viewer", password="viewer-pw", ca_file=broker.ca_file
    )
    jsonl = tmp_path / "events.jsonl"
    cfg = load_config(
        None,
        {
            "device_id": "sec-dev",
            "source": {"type": "file", "path": str(default_sample_path())},
            "model": {"path": str(model_path)},
            "stats_interval_s": 0.2,
            "tracking": {"update_interval_s": 0, "update_every_frames": 5},
            "sinks": [
                {
                    "type": "mqtt",
                    "url": broker.url,
                    "username": "cam",
                    "password_file": str(_pw_file(tmp_path)),
                    "ca_file": str(broker.ca_file),
                    "discovery_delay_s": 0,
                },
                {"type": "jsonl", "path": str(jsonl)},
            ],
        },
    )
    p = Pipeline(cfg)
    with caplog.at_level(logging.DEBUG):
        summary = p.run()
    try:
        produced = {Event.from_json(x).event_id for x in jsonl.read_text().splitlines()}
        assert produced and summary.processed > 0
        assert sub.wait_for(
            lambda s: (
                {Event.from_json(x).event_id for x in s.on("fer/sec-dev/events")} >= produced
                and b"stopped" in s.on("fer/sec-dev/status")
            ),
            15,
        )
    finally:
        sub.close()
    topics = {t for t, _, _ in sub.messages}
    # Every kind of topic the device publishes was seen, so every kind was checked.
    assert {"fer/sec-dev/events", "fer/sec-dev/status", "fer/sec-dev/stats"} <= topics
    assert "fer/sec-dev/state" in topics
    assert any(t.startswith("homeassistant/sensor/") and t.endswith("/config") for t in topics)
    for topic, payload, _ in sub.messages:
        assert_clean_payload(topic, payload, (SECRET, WRONG, "viewer-pw"))
    assert SECRET not in caplog.text
    assert SECRET not in json.dumps(p.stats(), default=str)
    assert p.stats()["sinks"]["mqtt"]["published"] == len(produced)


@pytest.mark.slow
def test_wrong_password_over_tls_one_message_exit_2_no_retry_storm(
    mosquitto_factory: Callable[..., Mosquitto], model_path: Path, tmp_path: Path
) -> None:
    broker = mosquitto_factory(tls=True, passwords={"cam": SECRET})
    conf = tmp_path / "dev.toml"
    conf.write_text(
        f"""
device_id = "storm-dev"
[source]
type = "file"
path = "{default_sample_path()}"
loop = true
[model]
path = "{model_path}"
[[sinks]]
type = "mqtt"
url = "{broker.url}"
username = "cam"
ca_file = "{broker.ca_file}"
client_id = "storm-client"
reconnect_min_s = 0.1
reconnect_max_s = 0.2
"""
    )
    conf.chmod(0o600)
    env = {**os.environ, "FER_EDGE_MQTT_PASSWORD": WRONG}
    t0 = time.monotonic()
    proc = run_module("edge", "run", "--config", str(conf), env=env)
    assert time.monotonic() - t0 < 60  # it gives up, it does not loop on a looping source
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert WRONG not in proc.stderr and SECRET not in proc.stderr
    final = [line for line in proc.stderr.splitlines() if line.startswith("fer-edge run: error")]
    assert len(final) == 1 and (
        "bad user name or password" in final[0] or "not authorized" in final[0]
    )
    assert "FER_EDGE_MQTT_PASSWORD" in final[0]  # tells the operator where the password came from
    assert proc.stdout == ""
    time.sleep(0.5)
    log = broker.log()
    # paho would retry every 0.1-0.2 s; a refused login must stop that at once.
    assert 1 <= log.count("not authorised") <= 2, log
    assert log.count("New connection from") <= 2, log


def _reissue_server_cert(broker: Mosquitto, san: str) -> None:
    """Replace the broker certificate by one from the same CA for another host name."""
    openssl = shutil.which("openssl")
    assert openssl is not None
    d = broker.workdir
    (d / "ext.cnf").write_text(f"subjectAltName={san}\n")
    subprocess.run(
        [openssl, "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-days", "2", "-extfile", "ext.cnf", "-out", "server.crt"],
        check=True, capture_output=True, cwd=d,
    )  # fmt: skip


@pytest.mark.slow
def test_certificate_for_another_host_keeps_retrying_and_stats_tell_the_truth(
    mosquitto_factory: Callable[..., Mosquitto],
    model_path: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = mosquitto_factory(tls=True, passwords={"cam": SECRET}, start=False)
    _reissue_server_cert(broker, "DNS:broker.elsewhere.example")
    broker.start()
    jsonl = tmp_path / "mismatch.jsonl"

    def cfg(**mqtt: Any) -> Any:
        return load_config(
            None,
            {
                "device_id": "mismatch-dev",
                "source": {"type": "file", "path": str(default_sample_path())},
                "model": {"path": str(model_path)},
                "broker_wait_s": 1.0,
                "shutdown_timeout_s": 1.0,
                "sinks": [
                    {
                        "type": "mqtt",
                        "url": broker.url,
                        "username": "cam",
                        "password": SECRET,
                        "ca_file": str(broker.ca_file),
                        "reconnect_min_s": 0.1,
                        "reconnect_max_s": 0.2,
                        **mqtt,
                    },
                    {"type": "jsonl", "path": str(jsonl)},
                ],
            },
        )

    p = Pipeline(cfg())
    with caplog.at_level(logging.WARNING):
        summary = p.run()  # keeps running to the end of the file: not a fatal error
    st = p.stats()
    mq = st["sinks"]["mqtt"]
    assert summary.processed == 40 and summary.stop_reason == "end of source"
    assert st["connected"] is False and mq["connected"] is False
    assert mq["connect_failures"] >= 2 and mq["error"] is None and mq["published"] == 0
    produced = sum(summary.events.values())
    assert produced > 0 and st["spilled"] == produced  # kept in the JSONL file, not lost
    assert "unreachable" in caplog.text and SECRET not in caplog.text
    # Same broker, same CA, host-name check off: it connects, so the name was the only problem.
    jsonl.unlink()
    p2 = Pipeline(cfg(tls_insecure=True))
    p2.run()
    assert p2.stats()["sinks"]["mqtt"]["published"] == sum(p2.summary.events.values()) > 0


# ------------------------------------------------------------------------------ secrets offline
def _run_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    return run_module("edge", *args)


def test_validate_config_never_prints_secrets_and_warns_when_world_readable(
    tmp_path: Path, model_path: Path
) -> None:
    conf = tmp_path / "config.toml"
    conf.write_text(
        f"""
device_id = "door"
[model]
path = "{model_path}"
[source]
type = "opencv"
device = "rtsp://camuser:{WRONG}@10.0.0.9/stream"
[[sinks]]
type = "mqtt"
url = "mqtts://dev:{SECRET}@broker.local"
password = "{SECRET}"
"""
    )
    conf.chmod(0o644)
    proc = _run_cli(["validate-config", str(conf)])
    assert proc.returncode == 0, proc.stderr
    both = proc.stdout + proc.stderr
    assert SECRET not in both and WRONG not in both
    assert "world-readable" in proc.stderr and "chmod 640" in proc.stderr
    assert "sinks[0].url" in proc.stderr and "sinks[0].password" in proc.stderr
    assert "source.device" in proc.stderr
    assert "mqtts://***@broker.local" in proc.stdout and "rtsp://***@10.0.0.9" in proc.stdout
    assert "camuser" not in both

    conf.chmod(0o640)
    proc = _run_cli(["validate-config", str(conf)])
    assert proc.returncode == 0 and "world-readable" not in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr

    # An invalid value next to a secret: the error names the key, never echoes the secret.
    conf.write_text(f'[[sinks]]\ntype = "mqtt"\nurl = "ftp://u:{SECRET}@h"\npassword = 5\n')
    conf.chmod(0o600)
    proc = _run_cli(["validate-config", "--schema-only", str(conf)])
    assert proc.returncode == 2 and "sinks[0].url" in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr and "Traceback" not in proc.stderr


def test_info_redacts_secret_looking_metadata(tmp_path: Path, model_path: Path) -> None:
    from edge.model_meta import ModelMetadata, embed_metadata, read_metadata

    meta = read_metadata(model_path).to_dict()
    meta["training"] = {**meta.get("training", {}), "hub_token": SECRET, "db_password": WRONG}
    p = tmp_path / "with-secrets.tflite"
    p.write_bytes(embed_metadata(model_path.read_bytes(), ModelMetadata.from_dict(meta)))
    for args in (["info", str(p)], ["info", str(p), "--json"]):
        proc = _run_cli(args)
        assert proc.returncode == 0, proc.stderr
        assert SECRET not in proc.stdout + proc.stderr and WRONG not in proc.stdout
    info = json.loads(_run_cli(["info", str(p), "--json"]).stdout)
    assert info["metadata"]["training"]["hub_token"] == "***"
