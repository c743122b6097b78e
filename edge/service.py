"""systemd integration without extra dependencies: sd_notify and the watchdog.

Under ``Type=notify`` systemd passes ``$NOTIFY_SOCKET`` (a filesystem path, or an abstract
socket written with a leading ``@``); we send it datagrams such as ``READY=1`` or ``WATCHDOG=1``.
With ``WatchdogSec=`` it also passes ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``): if no
``WATCHDOG=1`` arrives within that time, systemd kills and restarts the service. The runtime pings
from the frame loop (only while frames flow), so a hung camera or interpreter gets the service
restarted. Outside systemd every function here is a cheap no-op.

Typical use::

    service.ready()                      # camera, model and sinks are up
    every frame: service.watchdog_ping() # rate-limited to half the watchdog interval
    service.status("12.3 fps, 2 faces")
    service.stopping()                   # on SIGTERM, before flushing
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

log = logging.getLogger(__name__)

_lock = threading.Lock()
_last_ping: float | None = None  # monotonic time of the last ping


def _socket_address() -> str | None:
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return None
    if addr.startswith("@"):
        # Abstract namespace: the kernel name starts with a NUL byte instead of '@'.
        return "\0" + addr[1:]
    if addr.startswith("/"):
        return addr
    log.debug("ignoring NOTIFY_SOCKET %r (not a path or abstract socket)", addr)
    return None


def under_systemd() -> bool:
    """Whether a notify socket is configured (we run as a ``Type=notify`` service)."""
    return _socket_address() is not None


def notify(message: str) -> bool:
    """Send one sd_notify message (e.g. ``READY=1``; several lines allowed).

    Returns:
        True if sent, False if not under systemd or the socket is unreachable (logged once at
        debug level: a missing supervisor must never break the runtime).
    """
    addr = _socket_address()
    if addr is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(addr)
            # Non-blocking: the datagram queue holds only net.unix.max_dgram_qlen (10) messages;
            # if the supervisor is slow to read, drop the message rather than stall the frame
            # loop (a missed watchdog ping is retried on the next frame).
            s.send(message.encode("utf-8"), socket.MSG_DONTWAIT)
    except OSError as e:
        log.debug("sd_notify(%r) failed: %s", message.split("\n", 1)[0], e)
        return False
    return True


def ready(status_text: str | None = None) -> bool:
    """Tell systemd start-up finished (camera, model and sinks are up)."""
    msg = "READY=1"
    if status_text:
        msg += "\nSTATUS=" + _one_line(status_text)
    return notify(msg)


def stopping(status_text: str | None = None) -> bool:
    """Tell systemd we are shutting down (flushing the queue, publishing ``stopped``)."""
    msg = "STOPPING=1"
    if status_text:
        msg += "\nSTATUS=" + _one_line(status_text)
    return notify(msg)


def status(text: str) -> bool:
    """Set the free-form status line ``systemctl status fer-edge`` shows."""
    return notify("STATUS=" + _one_line(text))


def watchdog_interval() -> float | None:
    """The watchdog timeout in seconds, or None if the watchdog is off or not for this process.

    ``$WATCHDOG_PID``, when set, names the process systemd expects pings from; a child process
    that inherited the environment must not ping.
    """
    usec = os.environ.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        value = int(usec)
    except ValueError:
        log.debug("ignoring malformed WATCHDOG_USEC=%r", usec)
        return None
    return value / 1e6 if value > 0 else None


def watchdog_ping(force: bool = False) -> bool:
    """Send ``WATCHDOG=1``, at most once per half watchdog interval (cheap to call per frame).

    Args:
        force: Send even if the last ping was recent.

    Returns:
        True if a ping was sent.
    """
    interval = watchdog_interval()
    if interval is None:
        return False
    global _last_ping
    now = time.monotonic()
    with _lock:
        # Half the interval is systemd's own recommendation: one late ping never kills us.
        if not force and _last_ping is not None and now - _last_ping < interval / 2:
            return False
        _last_ping = now
    return notify("WATCHDOG=1")


def _one_line(text: str) -> str:
    return " ".join(text.split())
