"""``fer-edge dashboard``: a small live web dashboard (aiohttp + paho-mqtt + Server-Sent Events).

A :class:`~edge.subscribe.link.BrokerLink` (the subscriber side ``fer-edge monitor`` shares)
subscribes to ``<prefix>/+/#`` and feeds every message into a
:class:`~edge.dashboard.state.DashboardState` on the asyncio loop; changed devices are pushed to
every browser as SSE ``device`` messages (coalesced every ``push_interval_s`` so a chatty stats
topic cannot flood browsers). Routes:

* ``/``: the page (``static/index.html``, ``app.js``, ``style.css``: our own plain HTML/CSS/JS);
* ``/api/state``: the whole state as JSON;
* ``/events``: the SSE stream: a ``snapshot`` first, then ``device`` and ``broker`` messages,
  and a comment every 15 s so proxies keep the connection open.

Security: the server binds 127.0.0.1 by default. Optional HTTP basic auth protects every route.
Binding any other address without basic auth is refused unless ``insecure_no_auth`` is set
(then a warning is logged): emotion data about people must not be readable by the whole LAN by
accident. Responses carry a strict Content-Security-Policy (only our own scripts run).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import ipaddress
import json
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from aiohttp import web

from edge.dashboard.state import DashboardState
from edge.errors import ConfigError
from edge.liveness import DEFAULT_EXPIRY_S
from edge.publish.config import MqttSinkConfig
from edge.subscribe.link import REFUSED, BrokerLink, client_id_for
from edge.subscribe.messages import Message

log = logging.getLogger(__name__)

#: Environment variable holding ``user:password`` for the dashboard's basic auth.
AUTH_ENV = "FER_EDGE_DASHBOARD_AUTH"
_STATIC = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_KEEPALIVE_S = 15.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_basic_auth(value: str | None) -> tuple[str, str] | None:
    """``user:password`` -> ``(user, password)``; None for None/empty.

    Raises:
        ConfigError: if there is no ``:`` or the user is empty.
    """
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ConfigError("basic auth must be 'user:password' with a non-empty user and password")
    return user, password


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything: treat it as exposed


def check_exposure(host: str, auth: tuple[str, str] | None, insecure_no_auth: bool) -> None:
    """Refuse a non-loopback bind without basic auth unless explicitly allowed.

    Raises:
        ConfigError: naming the fix (``--basic-auth`` or ``--insecure-no-auth``).
    """
    if is_loopback(host) or auth is not None:
        return
    if not insecure_no_auth:
        raise ConfigError(
            f"refusing to serve on {host} without authentication: anyone who can reach it "
            f"could watch the emotion feed. Give --basic-auth user:password (or ${AUTH_ENV}), "
            "bind 127.0.0.1, or pass --insecure-no-auth"
        )
    log.warning("serving on %s WITHOUT authentication (--insecure-no-auth)", host)


def _static_bytes(name: str) -> bytes:
    return resources.files("edge.dashboard").joinpath("static").joinpath(name).read_bytes()


class Dashboard:
    """The dashboard: MQTT subscriber, state and aiohttp application.

    Args:
        mqtt_cfg: Broker connection (URL, credentials, TLS, ``topic_prefix``).
        auth: ``(user, password)`` for HTTP basic auth, or None.
        history_s: Seconds of per-emotion history kept for the charts.
        push_interval_s: How often changed devices are pushed to browsers.
        client_id: MQTT client id (default: a random ``fer-edge-dashboard-...``).
        stale_after_s: Show an ``online`` device as ``stale`` after this long without a sign of
            life (``edge/liveness.py``).
    """

    def __init__(
        self,
        mqtt_cfg: MqttSinkConfig,
        *,
        auth: tuple[str, str] | None = None,
        history_s: float = 600.0,
        push_interval_s: float = 0.25,
        client_id: str | None = None,
        stale_after_s: float = DEFAULT_EXPIRY_S,
    ) -> None:
        self.mqtt_cfg = mqtt_cfg
        self.prefix = mqtt_cfg.topic_prefix
        self.auth = auth
        self.state = DashboardState(self.prefix, history_s=history_s, stale_after_s=stale_after_s)
        self.push_interval_s = push_interval_s
        self.client_id = client_id or client_id_for("dashboard")
        self.broker = "connecting"
        self._clients: set[asyncio.Queue[str | None]] = set()
        self._dirty: set[str] = set()
        self._broker_dirty = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._link: BrokerLink | None = None
        self._pusher: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- web app
    def make_app(self) -> web.Application:
        """The aiohttp application (routes, auth and security headers)."""
        app = web.Application(middlewares=[self._security_mw])
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/api/state", self._api_state)
        app.router.add_get("/events", self._events)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)
        return app

    @web.middleware
    async def _security_mw(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.auth is not None and not self._authorized(request.headers.get("Authorization")):
            return web.Response(
                status=401,
                text="authentication required\n",
                headers={"WWW-Authenticate": 'Basic realm="fer-edge dashboard", charset="UTF-8"'},
            )
        resp = await handler(request)
        if not resp.prepared:  # SSE responses set their headers before streaming
            self._harden(resp)
        return resp

    @staticmethod
    def _harden(resp: web.StreamResponse) -> None:
        resp.headers["Content-Security-Policy"] = _CSP
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["X-Frame-Options"] = "DENY"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cache-Control"] = "no-store"

    def _authorized(self, header: str | None) -> bool:
        assert self.auth is not None
        if not header or not header.startswith("Basic "):
            return False
        try:
            raw = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = raw.partition(":")
        # Both compared in constant time, and both always compared (no early exit on the user).
        ok_user = hmac.compare_digest(user.encode(), self.auth[0].encode())
        ok_pass = hmac.compare_digest(password.encode(), self.auth[1].encode())
        return ok_user and ok_pass

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(body=_static_bytes("index.html"), content_type="text/html")

    async def _static(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in _STATIC or name == "index.html":  # a fixed list: no path traversal
            raise web.HTTPNotFound()
        return web.Response(body=_static_bytes(name), content_type=_STATIC[name])

    def snapshot(self) -> dict[str, Any]:
        """The state plus the broker connection state."""
        snap = self.state.snapshot()
        snap["broker"] = self.broker
        snap["broker_url"] = self.mqtt_cfg.safe_url()
        return snap

    async def _api_state(self, request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def _events(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
        )
        self._harden(resp)
        await resp.prepare(request)
        queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=256)
        self._clients.add(queue)
        try:
            await resp.write(_sse("snapshot", self.snapshot()))
            while True:
                try:
                    msg = await asyncio.wait_for(queue.get(), timeout=_KEEPALIVE_S)
                except asyncio.TimeoutError:
                    msg = ": keepalive\n\n"
                if msg is None:  # too slow or shutting down: the browser reconnects
                    break
                await resp.write(msg.encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._clients.discard(queue)
        return resp

    def _broadcast(self, msg: str) -> None:
        for q in list(self._clients):
            try:
                q.put_nowait(msg)
            except asyncio.QueueFull:
                # A stalled browser: drop it rather than buffer without bound.
                self._clients.discard(q)
                q.get_nowait()
                q.put_nowait(None)

    async def _push_loop(self) -> None:
        while True:
            await asyncio.sleep(self.push_interval_s)
            if self._broker_dirty:
                self._broker_dirty = False
                self._broadcast(_sse_text("broker", {"broker": self.broker}))
            # A silent death sends no message: find the devices that went stale meanwhile.
            self._dirty.update(self.state.sweep())
            if not self._dirty:
                continue
            dirty, self._dirty = self._dirty, set()
            for dev in sorted(dirty):
                entry = self.state.device_json(dev)
                if entry is not None:
                    self._broadcast(_sse_text("device", entry))

    # ---------------------------------------------------------------- MQTT
    async def _on_startup(self, app: web.Application) -> None:
        self._loop = asyncio.get_running_loop()
        self._start_mqtt()
        self._pusher = asyncio.create_task(self._push_loop())

    async def _on_shutdown(self, app: web.Application) -> None:
        # Before aiohttp waits for open requests: end the SSE streams so shutdown is prompt.
        for q in list(self._clients):
            self._clients.discard(q)
            while not q.empty():
                q.get_nowait()
            q.put_nowait(None)

    async def _on_cleanup(self, app: web.Application) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
        if self._link is not None:
            self._link.stop()

    def _start_mqtt(self) -> None:
        loop = self._loop
        assert loop is not None
        # paho calls back on its own thread: everything is handed to the asyncio loop.
        self._link = BrokerLink(
            self.mqtt_cfg,
            [(self.state.fleet.topics.wildcard(), 1)],
            lambda msg: loop.call_soon_threadsafe(self._on_message, msg),
            who="dashboard",
            hint="--username/--password",
            client_id=self.client_id,
            on_change=lambda link: loop.call_soon_threadsafe(self._set_broker, _broker(link)),
        )
        self._link.start()

    def check(self) -> None:
        """Raise if the broker refused the dashboard for good.

        Raises:
            PublishError: naming the broker, the reason and what to check.
        """
        if self._link is not None:
            self._link.check()

    def _set_broker(self, text: str) -> None:
        if text != self.broker:
            self.broker = text
            self._broker_dirty = True

    def _on_message(self, msg: Message) -> None:
        device = self.state.handle(
            msg.topic, msg.payload, retained=msg.retained, expiry_s=msg.expiry_s
        )
        if device is not None:
            self._dirty.add(device)


def _broker(link: BrokerLink) -> str:
    """The connection state as the page shows it."""
    return f"refused: {link.fatal}" if link.state == REFUSED else link.state


def _sse_text(event: str, data: Any) -> str:
    # json.dumps never emits a raw newline, so the payload is a single SSE data line.
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _sse(event: str, data: Any) -> bytes:
    return _sse_text(event, data).encode()


def run_dashboard(
    dashboard: Dashboard,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    insecure_no_auth: bool = False,
    stop: threading.Event | None = None,
    ready: threading.Event | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM (or ``stop`` is set); blocking.

    Raises:
        ConfigError: for an exposed bind without auth, or a port that cannot be bound.
        PublishError: if the broker refuses the login for good.
    """
    check_exposure(host, dashboard.auth, insecure_no_auth)
    return asyncio.run(_serve(dashboard, host, port, stop, ready))


async def _serve(
    dashboard: Dashboard,
    host: str,
    port: int,
    stop: threading.Event | None,
    ready: threading.Event | None,
) -> int:
    runner = await _start_site(dashboard, host, port)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
    if ready is not None:
        ready.set()
    try:
        while not done.is_set():
            if stop is not None and stop.is_set():
                break
            dashboard.check()
            try:
                await asyncio.wait_for(done.wait(), timeout=0.2)
            except asyncio.TimeoutError:
                pass
    finally:
        await runner.cleanup()
    log.info("dashboard stopped")
    return 0


async def _start_site(dashboard: Dashboard, host: str, port: int) -> web.AppRunner:
    """Listen on ``host:port``; the runner to clean up when done.

    Raises:
        ConfigError: if the address cannot be bound (in use, not ours).
    """
    runner = web.AppRunner(dashboard.make_app(), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as e:
        await runner.cleanup()
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    log.info(
        "dashboard on http://%s:%d/ (broker %s, prefix %s, auth %s)",
        host,
        port,
        dashboard.mqtt_cfg.safe_url(),
        dashboard.prefix,
        "basic" if dashboard.auth else "none",
    )
    return runner
