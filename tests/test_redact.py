"""The one secret masker (edge/redact.py)."""

from __future__ import annotations

import pytest

from edge.redact import MASK, is_secret_key, mask_url, redact_secrets


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("mqtts://cam:p4ss@broker:8883", "mqtts://***@broker:8883"),
        ("rtsp://admin:hunter2@cam:554/s", "rtsp://***@cam:554/s"),
        ("https://TOKEN@host/stream", "https://***@host/stream"),
        ("mqtt://u:p@ss@broker", "mqtt://***@broker"),
        ("mqtt://broker:1883", "mqtt://broker:1883"),
        ("/dev/video0", "/dev/video0"),
        ("a rtsp://x:y@h/1 and http://p:q@g/2", "a rtsp://***@h/1 and http://***@g/2"),
        ("mailto-like user@host with no scheme", "mailto-like user@host with no scheme"),
    ],
)
def test_mask_url(text: str, want: str) -> None:
    assert mask_url(text) == want


@pytest.mark.parametrize(
    ("key", "secret"),
    [("password", True), ("MQTT_Password", True), ("hub_token", True), ("private_key", True),
     ("client_secret", True), ("url", False), ("username", False), ("labels", False)],
)  # fmt: skip
def test_is_secret_key(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_redact_secrets_nested() -> None:
    data = {
        "training": {"hub_token": "t0k", "db_password": "", "seed": 3},
        "sinks": [{"url": "mqtt://u:pw@b", "password": "pw"}],
        "labels": ["angry"],
    }
    out = redact_secrets(data)
    assert out == {
        "training": {"hub_token": MASK, "db_password": "", "seed": 3},  # empty: nothing to hide
        "sinks": [{"url": "mqtt://***@b", "password": MASK}],
        "labels": ["angry"],
    }
    assert data["sinks"][0]["password"] == "pw"  # a copy; the input is untouched
