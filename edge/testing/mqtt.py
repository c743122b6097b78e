"""What the broker tests and benchmarks build alike: events, a fast-retrying sink config, polling.

One copy here instead of one per test file: ``tests/test_mqtt.py``, ``test_sinks.py``,
``test_spool.py``, ``test_fleet.py``, ``test_liveness.py``, ``test_reliability.py`` and
``bench/fault_matrix.py`` used to carry their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from edge.events import Event, EventType, ModelRef
from edge.publish.config import MqttSinkConfig

#: The model every test event names (no model file behind it).
TEST_MODEL = ModelRef("test_model", "0" * 64)


def make_events(n: int, device_id: str = "dev1", start: int = 0) -> list[Event]:
    """``n`` distinct valid ``update`` events of ``device_id``, frames ``start`` onwards.

    Track ids cycle over 0, 1, 2 so a consumer sees more than one face.
    """
    scores = {"happy": 0.7, "sad": 0.2, "neutral": 0.1}
    return [
        Event.create(
            device_id=device_id,
            frame=start + i,
            track_id=i % 3,
            type=EventType.UPDATE,
            bbox=(10, 20, 30, 40),
            scores=scores,
            model=TEST_MODEL,
        )
        for i in range(n)
    ]


def fast_sink_config(url: str, **kw: Any) -> MqttSinkConfig:
    """An MQTT sink config that retries within fractions of a second (``kw`` overrides keys)."""
    base: dict[str, Any] = {
        "type": "mqtt",
        "url": url,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.4,
        "keepalive_s": 5,
    }
    return MqttSinkConfig.model_validate({**base, **kw})


def wait_until(pred: Callable[[], bool], timeout: float = 10.0, step: float = 0.05) -> bool:
    """Poll ``pred`` every ``step`` s until it holds or ``timeout`` s passed; its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()
