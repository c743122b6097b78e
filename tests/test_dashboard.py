"""``fer-edge dashboard``: state handling, HTTP basic auth and routes, and a real browser.

The browser test starts a real mosquitto, runs ``fer-edge dashboard`` as a subprocess, publishes
as a test device through :class:`MqttSink` with real :class:`Event` objects, and drives headless
Chromium (Debian's ``chromium``) over the DevTools protocol: it reads the rendered DOM, checks that
a live event arrives through Server-Sent Events without a reload, and saves a screenshot to
the test's tmp folder (and to ``docs/img/dashboard.png`` when ``FER_EDGE_UPDATE_SCREENSHOT=1``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.contract import FER2013_LABELS
from edge.errors import ConfigError
from edge.events import Event, ModelRef
from edge.state import build_state
from edge.subscribe.link import subscriber_config
from edge.subscribe.messages import MAX_PAYLOAD, Message
from edge.testing.broker import Mosquitto, TcpProxy, free_port

aiohttp = pytest.importorskip("aiohttp", reason="the dashboard extra (aiohttp) is not installed")

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from edge.dashboard.server import (  # noqa: E402
    Dashboard,
    check_exposure,
    parse_basic_auth,
)
from edge.dashboard.state import DashboardState  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)
MODEL = ModelRef("sepnet", "d" * 64)
LABELS = FER2013_LABELS


def ev(device: str, track: int, kind: str, emotion: str, p: float = 0.8, bbox=(40, 30, 96, 96)):
    rest = (1.0 - p) / (len(LABELS) - 1)
    return Event.create(
        device_id=device,
        frame=track,
        track_id=track,
        type=kind,  # type: ignore[arg-type]
        bbox=bbox,
        scores={lab: (p if lab == emotion else rest) for lab in LABELS},
        model=MODEL,
    )


# ---------------------------------------------------------------- state (no network)


def test_state_tracks_devices_faces_history_and_rejects_bad_input() -> None:
    st = DashboardState("fer", history_s=60)
    a = ev("cam", 1, "start", "happy")
    assert st.handle("fer/cam/status", b"online", now=100.0) == "cam"
    assert st.handle("fer/cam/events", a.to_json().encode(), now=101.0) == "cam"
    assert st.handle("fer/cam/events", a.to_json().encode(), now=101.5) is None  # redelivery
    assert st.handle("fer/cam/events", ev("cam", 2, "start", "sad").to_json().encode(), 102.0)
    stats = {"fps": 14.5, "queue_depth": 0, "model": {"name": "sepnet", "sha256": "x"}}
    assert st.handle("fer/cam/stats", json.dumps(stats).encode(), now=103.0) == "cam"
    dev, chart = st.fleet.devices["cam"], st.charts["cam"]
    assert (dev.status, dev.stats["fps"], dev.model, dev.events) == ("online", 14.5, "sepnet", 2)
    faces = st.device_json("cam")["faces"]  # type: ignore[index]
    assert [f["emotion"] for f in faces] == ["happy", "sad"]
    assert faces[0]["scores"] == [a.scores[k] for k in LABELS] and faces[0]["type"] == "start"
    assert (faces[0]["ts"], faces[0]["updated"]) == (a.ts, 101.0)
    assert chart.labels == list(LABELS)
    # History: the mean score per label over the current faces, one point per event.
    t, point = chart.history[-1]
    assert t == 102.0 and len(point) == len(LABELS)
    assert point[LABELS.index("happy")] == pytest.approx((0.8 + 0.2 / 6) / 2, abs=1e-3)
    st.handle("fer/cam/events", ev("cam", 1, "end", "happy").to_json().encode(), now=104.0)
    st.handle("fer/cam/events", ev("cam", 2, "end", "sad").to_json().encode(), now=200.0)
    assert dev.faces.tracks == {} and chart.history[-1][1] == [0.0] * len(LABELS)
    # A device that goes offline (Last Will) or stops watches nobody any more.
    st.handle("fer/cam/events", ev("cam", 3, "start", "fear").to_json().encode(), now=200.0)
    assert st.handle("fer/cam/status", b"offline", now=200.0) == "cam"
    assert dev.faces.tracks == {} and dev.status == "offline"
    # Older than the window: trimmed, except one point that holds the left edge's value.
    assert [p[0] for p in chart.history] == [104.0, 200.0, 200.0, 200.0]
    # Bad input is counted, never raised; other prefixes and kinds are ignored.
    for topic, payload in [
        ("fer/cam/events", b"{nope"),
        ("fer/cam/events", json.dumps({"schema": "fer.event/1"}).encode()),
        ("fer/cam/stats", b"[1, 2]"),
        ("fer/cam/stats", b'{"fps": NaN}'),
        ("fer/new/state", b'{"schema": "other", "tracks": []}'),  # no events yet
        ("fer/cam/stats", b"{" + b" " * MAX_PAYLOAD + b"}"),
    ]:
        assert st.handle(topic, payload) is None, payload[:40]
    assert st.fleet.bad_payloads == 6
    assert st.handle("other/cam/events", b"x") is None
    assert st.handle("fer/cam/images", b"x") is None
    assert st.fleet.bad_payloads == 6
    snap = json.loads(json.dumps(st.snapshot(), allow_nan=False))
    assert [d["device_id"] for d in snap["devices"]] == ["cam"]


def test_retained_state_seeds_faces_until_events_arrive() -> None:
    st = DashboardState("fer")
    state = build_state("door", [ev("door", 5, "start", "surprise", 0.6)])
    assert st.handle("fer/door/state", json.dumps(state).encode()) == "door"
    faces = st.device_json("door")["faces"]  # type: ignore[index]
    assert [(f["track_id"], f["emotion"], f["type"], f["scores"]) for f in faces] == [
        (5, "surprise", "state", None)
    ]
    st.handle("fer/door/events", ev("door", 6, "start", "fear").to_json().encode())
    # From the first event on, events are the source of truth; a (late) state is ignored.
    assert st.handle("fer/door/state", json.dumps(build_state("door", [])).encode()) is None
    assert sorted(st.fleet.devices["door"].faces.tracks) == [5, 6]
    bad = dict(state, tracks=[{"track_id": "x"}])
    assert st.handle("fer/other/state", json.dumps(bad).encode()) is None
    assert st.fleet.bad_payloads == 1


def test_device_cap_and_hostile_text() -> None:
    st = DashboardState("fer", max_devices=2)
    st.handle("fer/a/status", b"online")
    st.handle("fer/b/status", b"\x1b[2Jonline-with-a-very-long-status")
    assert st.handle("fer/c/status", b"online") is None and st.fleet.ignored == 1
    assert st.fleet.devices["b"].status == "?[2Jonline-with-"  # printable, bounded


def test_basic_auth_parsing_and_exposure_rules(caplog: pytest.LogCaptureFixture) -> None:
    assert parse_basic_auth("admin:s3:cret") == ("admin", "s3:cret")
    assert parse_basic_auth(None) is None and parse_basic_auth("") is None
    for bad in ("admin", ":pw", "admin:"):
        with pytest.raises(ConfigError):
            parse_basic_auth(bad)
    check_exposure("127.0.0.1", None, False)
    check_exposure("::1", None, False)
    check_exposure("localhost", None, False)
    check_exposure("0.0.0.0", ("u", "p"), False)
    for host in ("0.0.0.0", "192.168.1.20", "dashboard.example"):
        with pytest.raises(ConfigError, match="--basic-auth"):
            check_exposure(host, None, False)
    with caplog.at_level("WARNING"):
        check_exposure("0.0.0.0", None, True)
    assert "WITHOUT authentication" in caplog.text
    with pytest.raises(ConfigError, match="scheme"):
        subscriber_config("dashboard", "http://x")


def _auth(user: str, pw: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}


def test_http_routes_auth_headers_and_sse_snapshot() -> None:
    # The MQTT side points at a closed port: the web side must work regardless.
    cfg = subscriber_config("dashboard", f"mqtt://127.0.0.1:{free_port()}", "fer")

    async def scenario() -> None:
        dash = Dashboard(cfg, auth=("admin", "pw"), push_interval_s=0.05)
        dash.state.handle("fer/cam/status", b"online")
        async with TestClient(TestServer(dash.make_app())) as client:
            r = await client.get("/")
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")
            for headers in (
                _auth("admin", "nope"),
                _auth("root", "pw"),
                {"Authorization": "Basic !!"},
            ):
                assert (await client.get("/api/state", headers=headers)).status == 401
            ok = _auth("admin", "pw")
            r = await client.get("/", headers=ok)
            assert r.status == 200 and "<canvas" not in await r.text()  # drawn by app.js
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            assert r.headers["X-Content-Type-Options"] == "nosniff"
            for name, ctype in (("app.js", "text/javascript"), ("style.css", "text/css")):
                r = await client.get(f"/static/{name}", headers=ok)
                assert r.status == 200 and r.content_type == ctype
            assert (await client.get("/static/server.py", headers=ok)).status == 404
            assert (await client.get("/static/..%2Fserver.py", headers=ok)).status == 404
            snap = await (await client.get("/api/state", headers=ok)).json()
            assert snap["devices"][0]["device_id"] == "cam" and snap["prefix"] == "fer"
            r = await client.get("/events", headers=ok)
            assert r.status == 200 and r.content_type == "text/event-stream"
            first = await asyncio.wait_for(r.content.readuntil(b"\n\n"), 5)
            assert first.startswith(b"event: snapshot\ndata: ")
            assert json.loads(first.split(b"data: ", 1)[1])["devices"][0]["status"] == "online"
            # A change is pushed to the open stream as a 'device' message.
            happy = ev("cam", 1, "start", "happy").to_json().encode()
            dash._on_message(Message("fer/cam/events", happy))
            while True:
                msg = await asyncio.wait_for(r.content.readuntil(b"\n\n"), 5)
                if msg.startswith(b"event: device"):
                    break
            dev = json.loads(msg.split(b"data: ", 1)[1])
            assert dev["faces"][0]["emotion"] == "happy"
            r.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------- real broker + browser


class Chromium:
    """Headless Chromium driven over the DevTools protocol (aiohttp's websocket client)."""

    def __init__(self, tmp: Path) -> None:
        assert CHROMIUM is not None
        self.profile = tmp / "chromium-profile"
        self.proc = subprocess.Popen(
            [
                CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0", "--window-size=1280,800", "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().count("\n") >= 1):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        self.port = int(port_file.read_text().splitlines()[0])
        self._id = 0

    @contextlib.asynccontextmanager
    async def open_page(self, url: str) -> AsyncIterator[Any]:
        """The page's DevTools websocket, with page events on, navigated to ``url``."""
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(self.page_ws(), max_msg_size=0) as ws:
                await self.call(ws, "Page.enable")
                await self.call(ws, "Page.navigate", url=url)
                yield ws

    def page_ws(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=5) as r:
            pages = [p for p in json.load(r) if p.get("type") == "page"]
        return str(pages[0]["webSocketDebuggerUrl"])

    async def call(self, ws: Any, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        await ws.send_json({"id": self._id, "method": method, "params": params})
        while True:
            msg = await asyncio.wait_for(ws.receive_json(), 30)
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return dict(msg.get("result", {}))

    async def js(self, ws: Any, expression: str) -> Any:
        res = await self.call(ws, "Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in res:
            raise AssertionError(f"{expression!r} threw {res['exceptionDetails']}")
        return res.get("result", {}).get("value")

    async def wait_js(self, ws: Any, expression: str, timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = await self.js(ws, expression)
            if value:
                return value
            if time.monotonic() > deadline:
                text = await self.js(ws, "document.body ? document.body.innerText : ''")
                raise AssertionError(f"timed out waiting for {expression!r}; page text:\n{text}")
            await asyncio.sleep(0.1)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def dashboard_proc(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """``fer-edge dashboard`` as a subprocess on a free port; yields (base URL, prefix)."""
    with _dashboard(mosquitto, tmp_path) as out:
        yield out


@contextlib.contextmanager
def _dashboard(mosquitto: Mosquitto, tmp_path: Path, *extra: str) -> Iterator[tuple[str, str]]:
    prefix = f"dash{uuid.uuid4().hex[:8]}"
    port = free_port()
    log = (tmp_path / "dashboard.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "dashboard", "--mqtt-url", mosquitto.url,
         "--port", str(port), "--prefix", prefix, "--history-min", "0.5", *extra],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/api/state", timeout=2) as r:
                    if json.load(r)["broker"] == "connected":
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "dashboard did not come up:\n" + (tmp_path / "dashboard.log").read_text()
                )
            time.sleep(0.1)
        yield base, prefix
    finally:
        proc.terminate()
        try:
            assert proc.wait(15) == 0, (tmp_path / "dashboard.log").read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()


@pytest.mark.broker
@pytest.mark.slow
def test_browser_renders_devices_faces_and_live_updates(
    mosquitto: Mosquitto, dashboard_proc: tuple[str, str], tmp_path: Path
) -> None:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    from edge.publish.config import MqttSinkConfig
    from edge.publish.mqtt import MqttSink

    base, prefix = dashboard_proc

    def sink(device: str) -> MqttSink:
        cfg = MqttSinkConfig(
            type="mqtt", url=mosquitto.url, topic_prefix=prefix, homeassistant=False
        )
        s = MqttSink(cfg, device)
        s.open()
        assert s.wait_connected(10)
        return s

    door, lobby = sink("door-cam"), sink("lobby-cam")
    stats = {
        "fps": 14.8, "queue_depth": 0, "dropped": 0, "dropped_frames": 3, "reconnects": 1,
        "uptime_s": 3725.0, "latency_ms": {"total": {"p50": 41.2, "p95": 63.9}},
        "model": {"name": MODEL.name, "sha256": MODEL.sha256},
    }  # fmt: skip
    door.publish_stats(stats)
    for e in (
        ev("door-cam", 1, "start", "happy", 0.82, (60, 40, 140, 140)),
        ev("door-cam", 2, "start", "neutral", 0.64, (420, 90, 90, 90)),
    ):
        door.publish_event(e)
    lobby.publish_event(ev("lobby-cam", 7, "start", "surprise", 0.7))
    lobby.close(5)  # a clean shutdown: 'stopped'
    chrome = Chromium(tmp_path)

    async def drive() -> bytes:
        async with chrome.open_page(base + "/") as ws:
            card = "document.querySelector('section.device[data-device=\"door-cam\"]')"
            await chrome.wait_js(ws, f"{card} !== null")
            await chrome.wait_js(ws, f"{card}.querySelectorAll('tr.face').length === 2")
            assert await chrome.js(ws, f"{card}.querySelector('.status').textContent") == "online"
            emotions = await chrome.js(
                ws,
                f"[...{card}.querySelectorAll('.face-emotion')].map(e => e.textContent)",
            )
            assert emotions == ["happy", "neutral"]
            text = await chrome.js(ws, f"{card}.innerText")
            for needle in ("door-cam", "82%", "14.8", "41.2 ms", "63.9 ms", "1h 2m"):
                assert needle in text, (needle, text)
            lobby_status = (
                "document.querySelector('section.device[data-device=\"lobby-cam\"] .status')"
            )
            await chrome.wait_js(ws, f"{lobby_status}.textContent === 'stopped'")
            # A stopped device watches nobody: its face is gone.
            lobby = f"{lobby_status}.closest('section')"
            assert await chrome.js(ws, f"{lobby}.querySelectorAll('tr.face').length") == 0
            assert "no faces" in await chrome.js(ws, f"{lobby}.innerText")
            stream = "document.getElementById('stream').textContent"
            await chrome.wait_js(ws, f"{stream} === 'live'")
            # Live: a change arrives through SSE without a reload.
            for i, emotion in enumerate(("surprise", "happy", "surprise")):
                await asyncio.sleep(0.8)  # spread out: steps in the chart
                door.publish_event(
                    ev("door-cam", 2, "change", emotion, 0.7 + i / 20, (420, 90, 90, 90))
                )
            await chrome.wait_js(
                ws,
                f"[...{card}.querySelectorAll('.face-emotion')].map(e => e.textContent)"
                ".join() === 'happy,surprise'",
            )
            # The chart was drawn (some non-background pixels on the canvas).
            drawn = await chrome.js(
                ws,
                f"(() => {{ const c = {card}.querySelector('canvas');"
                " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                " let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++;"
                " return n; })()",
            )
            assert drawn > 500
            await chrome.call(
                ws, "Emulation.setDeviceMetricsOverride",
                width=1280, height=800, deviceScaleFactor=1, mobile=False,
            )  # fmt: skip
            await asyncio.sleep(1.2)  # one chart tick at the new size
            shot = await chrome.call(ws, "Page.captureScreenshot", format="png")
            return base64.b64decode(shot["data"])

    try:
        png = asyncio.run(drive())
    finally:
        chrome.close()
        door.close(5)
    assert png.startswith(b"\x89PNG")
    (tmp_path / "dashboard.png").write_bytes(png)
    if os.environ.get("FER_EDGE_UPDATE_SCREENSHOT"):
        # Refresh the documentation's screenshot only when asked (CI never writes the repo).
        out = REPO / "docs" / "img" / "dashboard.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_bytes(png)
        os.replace(tmp, out)


def _cli(args: list[str], pre: str = "") -> subprocess.CompletedProcess[str]:
    code = f"import sys; {pre}from edge.cli import main; sys.exit(main({args!r}))"
    env = {k: v for k, v in os.environ.items() if k != "FER_EDGE_DASHBOARD_AUTH"}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, env=env
    )


def test_cli_refuses_exposed_bind_and_names_the_missing_extra() -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    proc = _cli(["dashboard", "--mqtt-url", url, "--host", "0.0.0.0", "--port", "1"])
    assert proc.returncode == 2, proc.stderr
    assert "--basic-auth" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli(["dashboard", "--mqtt-url", url, "--basic-auth", "nocolon"])
    assert proc.returncode == 2 and "user:password" in proc.stderr
    # Without aiohttp installed (simulated), the error says how to get it.
    proc = _cli(["dashboard", "--mqtt-url", url], pre="sys.modules['aiohttp'] = None; ")
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'fer-edge[dashboard]'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.broker
@pytest.mark.slow
def test_browser_shows_a_silent_device_as_stale(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """A device behind a link that goes silent (no FIN, no will yet) turns 'stale' in the page
    within its 3 s status expiry, without any message arriving."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    from edge.publish.config import MqttSinkConfig
    from edge.publish.mqtt import MqttSink

    proxy = TcpProxy(mosquitto.host, mosquitto.port)
    with _dashboard(mosquitto, tmp_path, "--stale-after-s", "30") as (base, prefix):
        cfg = MqttSinkConfig(
            url=proxy.url, topic_prefix=prefix, homeassistant=False, status_expiry_s=3,
            keepalive_s=30,
        )  # fmt: skip
        dev = MqttSink(cfg, "quiet-cam")
        dev.open()
        assert dev.wait_connected(10)
        dev.publish_event(ev("quiet-cam", 1, "start", "happy", 0.8))
        chrome = Chromium(tmp_path)

        async def drive() -> float:
            async with chrome.open_page(base + "/") as ws:
                card = "document.querySelector('section.device[data-device=\"quiet-cam\"]')"
                status = f"{card}.querySelector('.status')"
                await chrome.wait_js(ws, f"{card} !== null && {status}.textContent === 'online'")
                await chrome.wait_js(ws, f"{card}.querySelectorAll('tr.face').length === 1")
                proxy.forward_up = proxy.forward_down = False
                silent = time.monotonic()
                await chrome.wait_js(ws, f"{status}.textContent === 'stale'", timeout=6)
                took = time.monotonic() - silent
                assert await chrome.js(ws, f"{status}.classList.contains('stale')")
                # The pill can turn by the page's own clock first; the server's push that
                # clears the faces follows within its push interval.
                await chrome.wait_js(
                    ws, f"{card}.querySelectorAll('tr.face').length === 0", timeout=2
                )
                summary = "document.getElementById('summary').textContent"
                assert await chrome.js(ws, summary) == "1 device, 0 online"
                return took

        try:
            took = asyncio.run(drive())
        finally:
            chrome.close()
            dev.close(1)
            proxy.close()
    assert took <= 3 + 1.5, took
