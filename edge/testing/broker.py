"""A real mosquitto broker for tests: free port, generated config, stop/start on the same port.

Used through the session fixture ``mosquitto`` (``tests/broker_fixtures.py``) or directly::

    with Mosquitto(tmp_path, passwords={"dev": "secret"}) as broker:
        broker.url          # mqtt://127.0.0.1:PORT
        broker.stop(); broker.start()   # an outage; clients reconnect to the same port

Optional password auth (``passwords``: anonymous clients are then refused) and TLS (``tls=True``:
a CA and a server certificate for 127.0.0.1/localhost are generated with openssl; the listener
then speaks mqtts and :attr:`Mosquitto.ca_file` verifies it).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

#: Where Debian installs the broker (``/usr/sbin`` is not on every user's PATH).
FALLBACK = Path("/usr/sbin/mosquitto")


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None if it is not installed."""
    found = shutil.which("mosquitto")
    if found:
        return found
    return str(FALLBACK) if FALLBACK.exists() else None


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BrokerError(RuntimeError):
    """The broker could not be started."""


def _persistence_lines(workdir: Path, persistence: bool, autosave_s: int | None) -> list[str]:
    """Retained messages and sessions kept in ``workdir`` across restarts, if asked."""
    if not persistence:
        return []
    lines = ["persistence true", f"persistence_location {workdir}/"]
    if autosave_s is not None:
        lines.append(f"autosave_interval {int(autosave_s)}")
    return lines


class Mosquitto:
    """One mosquitto process with its own folder, port and optional auth/TLS."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        passwords: dict[str, str] | None = None,
        tls: bool = False,
        persistence: bool = False,
        autosave_s: int | None = None,
    ) -> None:
        """Prepare config files (the broker starts with :meth:`start`).

        Args:
            workdir: A private temporary folder for config, logs and certificates.
            port: Port to listen on (default: a free one).
            passwords: ``{user: password}``; when given, anonymous clients are refused.
            tls: Listen with TLS using a freshly generated CA and server certificate.
            persistence: Keep retained messages and sessions across stop/start.
            autosave_s: With persistence, also save every this many seconds (mosquitto's
                ``autosave_interval``, 1800 by default): what survives a :meth:`kill`.
        """
        binary = find_mosquitto()
        if binary is None:
            raise BrokerError("mosquitto is not installed (apt-get install -y mosquitto)")
        self.binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.tls = tls
        self.passwords = dict(passwords or {})
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "mosquitto.log"
        self.ca_file: Path | None = None
        lines = self._base_lines() + _persistence_lines(self.workdir, persistence, autosave_s)
        lines += self._auth_lines()
        if tls:
            self.ca_file, cert, key = _make_certs(self.workdir)
            lines += [f"cafile {self.ca_file}", f"certfile {cert}", f"keyfile {key}"]
        self.conf_path = self.workdir / "mosquitto.conf"
        self.conf_path.write_text("\n".join(lines) + "\n")

    def _base_lines(self) -> list[str]:
        """The listener and logging (every connection is logged: tests read the log)."""
        lines = [
            f"listener {self.port} {self.host}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "max_queued_messages 100000",
        ]
        if os.geteuid() == 0:
            # Started as root, mosquitto switches to user 'mosquitto' and then cannot write
            # persistence files in our folder; as any other user it stays that user.
            lines.append("user root")
        return lines

    def _auth_lines(self) -> list[str]:
        """A password file of :attr:`passwords` (anonymous refused), or anonymous access."""
        if not self.passwords:
            return ["allow_anonymous true"]
        pw = self.workdir / "passwd"
        pw.write_text("")
        pw.chmod(0o600)
        for user, password in self.passwords.items():
            subprocess.run(
                [_mosquitto_passwd(), "-b", str(pw), user, password],
                check=True,
                capture_output=True,
            )
        return ["allow_anonymous false", f"password_file {pw}"]

    @property
    def url(self) -> str:
        """``mqtt://`` or ``mqtts://`` URL of the listener."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the broker process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker on :attr:`port` and wait until it accepts TCP connections.

        Raises:
            BrokerError: with the broker's log if it exits or never listens.
        """
        if self.running:
            return
        logf = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.conf_path)],
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrokerError(f"mosquitto exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise BrokerError(f"mosquitto did not listen on port {self.port}:\n{self.log()}")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL); the port can be reused by :meth:`start`."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """SIGKILL the broker (a crash or power cut: no will is sent, nothing more is saved)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait()

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    def log(self) -> str:
        """The broker's log so far (for assertion messages)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _mosquitto_passwd() -> str:
    found = shutil.which("mosquitto_passwd")
    if found:
        return found
    for p in ("/usr/bin/mosquitto_passwd", "/usr/sbin/mosquitto_passwd"):
        if os.path.exists(p):
            return p
    raise BrokerError("mosquitto_passwd is not installed (it ships with the mosquitto package)")


def _make_certs(d: Path) -> tuple[Path, Path, Path]:
    """Generate a CA and a server certificate for 127.0.0.1 / localhost with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise BrokerError("openssl is needed to generate test certificates")
    ca_key, ca_crt = d / "ca.key", d / "ca.crt"
    key, csr, crt, ext = d / "server.key", d / "server.csr", d / "server.crt", d / "ext.cnf"

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=d)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
        "/CN=fer-edge test CA", "-keyout", str(ca_key), "-out", str(ca_crt))  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
        "-keyout", str(key), "-out", str(csr))  # fmt: skip
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
        "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(crt))  # fmt: skip
    return ca_crt, crt, key


class TcpProxy:
    """A TCP relay between clients and a broker that a test can stall or cut.

    ``forward_up`` / ``forward_down`` (client->broker / broker->client) can be switched off to
    swallow bytes (a black hole: packets "on the wire" never arrive; a client that closes its
    end then leaves the broker's end open, as a lost FIN would: a half-open connection), and
    :meth:`cut` closes every relayed connection at once (a network drop), while new connections
    keep working. :attr:`client_closes` records when clients closed their end (monotonic).
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        import threading

        self.target = (target_host, target_port)
        self.port = free_port()
        self.forward_up = True
        self.forward_down = True
        self.client_closes: list[float] = []
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind(("127.0.0.1", self.port))
        self._srv.listen(16)
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``mqtt://`` URL of the proxy."""
        return f"mqtt://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        import threading

        while not self._closed:
            try:
                c, _ = self._srv.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.target, timeout=2)
            except OSError:
                c.close()
                continue
            # The timeout was for connecting only: an idle relay must not time out (a recv
            # timeout read as EOF would close a quiet but healthy connection).
            u.settimeout(None)
            with self._lock:
                self._conns += [c, u]
            threading.Thread(target=self._pump, args=(c, u, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, up: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                if up:
                    self.client_closes.append(time.monotonic())
                    if not self.forward_up:
                        # The FIN is swallowed too: the broker's end stays open (half-open).
                        src.close()
                        return
                for s in (src, dst):
                    try:
                        s.close()
                    except OSError:
                        pass
                return
            if self.forward_up if up else self.forward_down:
                try:
                    dst.sendall(data)
                except OSError:
                    return

    def connections(self) -> int:
        """Relayed sockets still open (2 per client)."""
        with self._lock:
            self._conns = [s for s in self._conns if s.fileno() != -1]
            return len(self._conns)

    def cut(self) -> None:
        """Close every relayed connection (both ends), like a dropped network link."""
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        """Stop accepting and cut everything."""
        self._closed = True
        self._srv.close()
        self.cut()


class Subscriber:
    """A paho subscriber that records every message (topic, payload, retain flag)."""

    def __init__(
        self,
        url: str,
        topics: list[str],
        *,
        client_id: str = "",
        clean: bool = True,
        qos: int = 1,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
        timeout: float = 10.0,
    ) -> None:
        """Connect, subscribe to ``topics`` and wait for the SUBACK.

        Raises:
            BrokerError: if the connection or subscription does not complete in ``timeout``.
        """
        import threading
        from urllib.parse import urlsplit

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        parts = urlsplit(url)
        self.messages: list[tuple[str, bytes, bool]] = []
        self._topics, self._qos = topics, qos
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if parts.scheme == "mqtts":
            self.client.tls_set(ca_certs=str(ca_file) if ca_file else None)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.close()
            raise BrokerError(f"subscriber could not subscribe to {topics} at {url}")

    def _on_connect(self, c, u, flags, rc, props):  # type: ignore[no-untyped-def]
        if not rc.is_failure:
            c.subscribe([(t, self._qos) for t in self._topics])

    def _on_subscribe(self, c, u, mid, rcs, props):  # type: ignore[no-untyped-def]
        self._subscribed.set()

    def _on_message(self, c, u, msg):  # type: ignore[no-untyped-def]
        with self._cond:
            self.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def on(self, topic: str) -> list[bytes]:
        """Payloads received on ``topic`` so far."""
        with self._cond:
            return [p for t, p, _ in self.messages if t == topic]

    def wait_for(self, predicate: object, timeout: float = 10.0) -> bool:
        """Wait until ``predicate(self)`` is true; return whether it became true."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):  # type: ignore[operator]
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self) -> None:
        """Disconnect cleanly."""
        self.client.disconnect()
        self.client.loop_stop()
