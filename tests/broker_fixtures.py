"""Pytest fixtures around :mod:`broker` (registered by ``tests/conftest.py``).

* ``mosquitto`` (session): one anonymous broker shared by all tests. Tests must leave it running;
  a test that needs an outage, passwords or TLS uses ``mosquitto_factory`` instead.
* ``mosquitto_factory`` (function): ``mosquitto_factory(passwords=..., tls=...)`` returns a
  started private broker; every broker it made is stopped after the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from edge.testing.broker import Mosquitto, find_mosquitto


def _require_mosquitto() -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (apt-get install -y mosquitto)")


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A running anonymous mosquitto on a free port for the whole session."""
    _require_mosquitto()
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mosquitto_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Mosquitto]]:
    """Factory of private, started brokers (kwargs as :class:`broker.Mosquitto`)."""
    _require_mosquitto()
    made: list[Mosquitto] = []

    def make(start: bool = True, **kwargs: Any) -> Mosquitto:
        b = Mosquitto(tmp_path_factory.mktemp("mosquitto"), **kwargs)
        made.append(b)
        if start:
            b.start()
        return b

    try:
        yield make
    finally:
        for b in made:
            b.stop()
