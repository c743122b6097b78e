"""sd_notify over a real AF_UNIX datagram socket (path and abstract), watchdog interval rules."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge import service


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A bound datagram socket standing in for systemd, exported as $NOTIFY_SOCKET."""
    path = tmp_path / "notify"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    try:
        yield s
    finally:
        s.close()


def recv(s: socket.socket) -> str:
    return s.recv(4096).decode()


def test_noop_outside_systemd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    assert not service.under_systemd()
    assert service.ready() is False
    assert service.watchdog_ping() is False
    assert service.watchdog_interval() is None


def test_ready_status_stopping(notify_socket: socket.socket) -> None:
    assert service.under_systemd()
    assert service.ready("camera up,\nmodel loaded")
    assert recv(notify_socket) == "READY=1\nSTATUS=camera up, model loaded"
    assert service.status("12.0 fps")
    assert recv(notify_socket) == "STATUS=12.0 fps"
    assert service.stopping()
    assert recv(notify_socket) == "STOPPING=1"


def test_abstract_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"fer-edge-test-{uuid.uuid4().hex}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
    try:
        assert service.notify("READY=1")
        assert recv(s) == "READY=1"
    finally:
        s.close()


def test_unreachable_socket_is_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    assert service.notify("READY=1") is False


def test_watchdog_interval_and_rate_limit(
    notify_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    assert service.watchdog_interval() == 30.0
    assert service.watchdog_ping(force=True)
    assert recv(notify_socket) == "WATCHDOG=1"
    # A second ping right away is suppressed: half the interval has not passed.
    assert service.watchdog_ping() is False
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert service.watchdog_interval() is None  # the watchdog belongs to another process
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    monkeypatch.setenv("WATCHDOG_USEC", "garbage")
    assert service.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_USEC", "0")
    assert service.watchdog_interval() is None
