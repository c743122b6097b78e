// fer-edge live dashboard: plain JavaScript, no libraries.
// Data arrives as JSON from /api/state and the Server-Sent Events stream /events. Everything in
// it was published by devices over MQTT and is untrusted: it is only ever put into the page with
// textContent, never parsed as HTML.
"use strict";

const COLORS = ["#e4572e", "#76b041", "#8e6c8a", "#ffc914", "#2e86ab", "#f18f01", "#9aa5b1",
  "#c0392b", "#17a589", "#5d6d7e"];
const state = { devices: new Map(), historyS: 600, offset: 0, broker: "?" };

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function fmt(v, digits) {
  if (typeof v !== "number" || !isFinite(v)) return "-";
  return digits === undefined ? String(v) : v.toFixed(digits);
}

function duration(s) {
  if (typeof s !== "number" || !isFinite(s)) return "-";
  s = Math.floor(s);
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
  const m = Math.floor(s % 3600 / 60), sec = s % 60;
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  return m ? m + "m " + sec + "s" : sec + "s";
}

function statusClass(status) {
  return ["online", "offline", "stopped", "stale"].includes(status) ? status : "unknown";
}

// The status to show (edge/liveness.py): the server's "liveness", and "stale" as soon as an
// "online" outlives its evidence even between two server pushes.
function shownStatus(dev, now) {
  const s = dev.liveness || dev.status;
  if (s === "online" && typeof dev.alive_until === "number" && now > dev.alive_until) {
    return "stale";
  }
  return s;
}

function labelColor(dev, label) {
  const i = dev.labels.indexOf(label);
  return COLORS[(i < 0 ? 0 : i) % COLORS.length];
}

// ---------------------------------------------------------------- rendering
function stat(grid, name, value) {
  const box = el("div", "stat");
  box.dataset.stat = name;
  box.append(el("span", "stat-name", name), el("span", "stat-value", value));
  grid.append(box);
}

function renderStats(dev) {
  const s = dev.stats || {};
  const total = (s.latency_ms || {}).total || {};
  const grid = el("div", "stats");
  stat(grid, "fps", fmt(s.fps, 1));
  stat(grid, "latency p50", total.p50 === undefined ? "-" : fmt(total.p50, 1) + " ms");
  stat(grid, "latency p95", total.p95 === undefined ? "-" : fmt(total.p95, 1) + " ms");
  stat(grid, "queue", fmt(s.queue_depth));
  stat(grid, "dropped", fmt(s.dropped) + " / " + fmt(s.dropped_frames));
  stat(grid, "reconnects", fmt(s.reconnects));
  stat(grid, "uptime", duration(s.uptime_s));
  stat(grid, "events", fmt(dev.events));
  return grid;
}

function renderFaces(dev) {
  const wrap = el("div", "faces");
  if (!dev.faces.length) {
    wrap.append(el("p", "muted no-faces", "no faces"));
    return wrap;
  }
  const table = el("table");
  const head = el("tr");
  for (const h of ["track", "emotion", "confidence", "box"]) head.append(el("th", null, h));
  table.append(head);
  for (const f of dev.faces) {
    const tr = el("tr", "face");
    tr.dataset.track = f.track_id;
    tr.append(el("td", "face-track", "#" + f.track_id));
    const emo = el("td", "face-emotion", f.emotion);
    emo.style.setProperty("--c", labelColor(dev, f.emotion));
    tr.append(emo);
    const conf = el("td", "face-confidence");
    const bar = el("span", "bar");
    const fill = el("span", "fill");
    fill.style.width = Math.round(Math.max(0, Math.min(1, f.confidence)) * 100) + "%";
    fill.style.background = labelColor(dev, f.emotion);
    bar.append(fill);
    conf.append(bar, el("span", "pct", fmt(f.confidence * 100, 0) + "%"));
    tr.append(conf);
    tr.append(el("td", "face-bbox muted", Array.isArray(f.bbox) ? f.bbox.join(", ") : "-"));
    table.append(tr);
  }
  wrap.append(table);
  return wrap;
}

function renderLegend(dev) {
  const legend = el("div", "legend");
  for (const label of dev.labels) {
    const item = el("span", "legend-item", label);
    item.style.setProperty("--c", labelColor(dev, label));
    legend.append(item);
  }
  return legend;
}

function renderDevice(dev) {
  const card = el("section", "device");
  card.dataset.device = dev.device_id;
  const head = el("div", "device-head");
  head.append(el("h2", "device-id", dev.device_id));
  const shown = shownStatus(dev, serverNow());
  const st = el("span", "status " + statusClass(shown), shown || "unknown");
  head.append(st);
  if (dev.model) head.append(el("span", "model muted", "model " + dev.model));
  const seen = el("span", "seen muted");
  seen.dataset.seen = dev.last_seen;
  head.append(seen);
  card.append(head);
  const body = el("div", "device-body");
  const left = el("div", "left");
  left.append(renderFaces(dev), renderStats(dev));
  const right = el("div", "right");
  const canvas = el("canvas", "chart");
  canvas.width = 560;
  canvas.height = 180;
  right.append(canvas, renderLegend(dev));
  body.append(left, right);
  card.append(body);
  return card;
}

function render() {
  const main = document.getElementById("devices");
  const ids = [...state.devices.keys()].sort();
  document.getElementById("empty").hidden = ids.length > 0;
  const existing = new Map();
  for (const c of main.querySelectorAll("section.device")) existing.set(c.dataset.device, c);
  for (const [id, card] of existing) if (!state.devices.has(id)) card.remove();
  let prev = document.getElementById("empty");
  for (const id of ids) {
    const card = renderDevice(state.devices.get(id));
    const old = existing.get(id);
    if (old) old.replaceWith(card); else prev.after(card);
    prev = card;
  }
  tick();
}

// "N devices, M online": after every update and every tick (a device can go stale silently).
function renderSummary(now) {
  const devs = [...state.devices.values()];
  const online = devs.filter((d) => shownStatus(d, now) === "online").length;
  document.getElementById("summary").textContent =
    devs.length + " device" + (devs.length === 1 ? "" : "s") + ", " + online + " online";
}

function renderDeviceOnly(dev) {
  const main = document.getElementById("devices");
  const old = [...main.querySelectorAll("section.device")].find(
    (c) => c.dataset.device === dev.device_id);
  if (!old) { render(); return; }
  const card = renderDevice(dev);
  old.replaceWith(card);
  drawChart(card.querySelector("canvas"), dev, serverNow());
  updateSeen(card, serverNow());
  renderSummary(serverNow());
}

// ---------------------------------------------------------------- chart
function serverNow() { return Date.now() / 1000 + state.offset; }

function drawChart(canvas, dev, now) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, padL = 34, padB = 18, padT = 6, padR = 6;
  const pw = w - padL - padR, ph = h - padT - padB;
  const t0 = now - state.historyS;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#8892a0";
  ctx.strokeStyle = "#2a3340";
  ctx.lineWidth = 1;
  for (const v of [0, 0.5, 1]) {
    const y = padT + ph * (1 - v);
    ctx.beginPath(); ctx.moveTo(padL, y); ctx.lineTo(w - padR, y); ctx.stroke();
    ctx.fillText(v.toFixed(1), 4, y + 4);
  }
  // Time ticks: about 5 per chart, in whole seconds or minutes.
  const steps = [10, 30, 60, 120, 300, 600, 1200, 3600];
  const step = steps.find((s) => state.historyS / s <= 6) || 3600;
  for (let s = 0; s <= state.historyS; s += step) {
    const x = padL + pw * (1 - s / state.historyS);
    const label = s === 0 ? "now" : (s < 60 ? "-" + s + "s" : "-" + s / 60 + "m");
    ctx.fillText(label, Math.min(w - padR - 24, Math.max(padL, x - 12)), h - 4);
  }
  const pts = dev.history || [];
  if (!pts.length) return;
  const xOf = (t) => padL + pw * Math.max(0, (t - t0)) / state.historyS;
  const yOf = (v) => padT + ph * (1 - Math.max(0, Math.min(1, v)));
  ctx.lineWidth = 2;
  dev.labels.forEach((label, i) => {
    ctx.strokeStyle = labelColor(dev, label);
    ctx.beginPath();
    // A step line: a value holds until the next event (events are sparse by design).
    pts.forEach(([t, vals], k) => {
      const x = xOf(t), y = yOf(vals[i]);
      if (k === 0) ctx.moveTo(x, y); else ctx.lineTo(x, yOf(pts[k - 1][1][i])), ctx.lineTo(x, y);
    });
    ctx.lineTo(xOf(now), yOf(pts[pts.length - 1][1][i]));
    ctx.stroke();
  });
}

function updateSeen(card, now) {
  const seen = card.querySelector(".seen");
  const t = Number(seen.dataset.seen);
  seen.textContent = t ? "seen " + duration(Math.max(0, now - t)) + " ago" : "";
}

function tick() {
  const now = serverNow();
  for (const card of document.querySelectorAll("section.device")) {
    const dev = state.devices.get(card.dataset.device);
    if (!dev) continue;
    drawChart(card.querySelector("canvas"), dev, now);
    updateSeen(card, now);
    const st = card.querySelector(".status");
    const shown = shownStatus(dev, now);
    if (st && st.textContent !== (shown || "unknown")) {
      st.textContent = shown || "unknown";
      st.className = "status " + statusClass(shown);
    }
  }
  renderSummary(now);
}

// ---------------------------------------------------------------- data
function setBroker(text) {
  state.broker = text;
  const b = document.getElementById("broker");
  b.textContent = "broker " + text;
  b.className = "pill " + (text === "connected" ? "ok" : "bad");
}

function applySnapshot(snap) {
  state.historyS = snap.history_s || 600;
  state.offset = (snap.server_time || Date.now() / 1000) - Date.now() / 1000;
  state.devices = new Map(snap.devices.map((d) => [d.device_id, d]));
  document.getElementById("prefix").textContent = snap.prefix;
  document.getElementById("window").textContent = state.historyS < 120
    ? Math.round(state.historyS) + " s" : Math.round(state.historyS / 60) + " min";
  setBroker(snap.broker || "?");
  render();
}

function connect() {
  const stream = document.getElementById("stream");
  const es = new EventSource("/events");
  es.addEventListener("open", () => { stream.textContent = "live"; stream.className = "pill ok"; });
  es.addEventListener("error", () => {
    // EventSource reconnects by itself; the next snapshot replaces everything.
    stream.textContent = "reconnecting"; stream.className = "pill bad";
  });
  es.addEventListener("snapshot", (e) => applySnapshot(JSON.parse(e.data)));
  es.addEventListener("broker", (e) => setBroker(JSON.parse(e.data).broker));
  es.addEventListener("device", (e) => {
    const dev = JSON.parse(e.data);
    const isNew = !state.devices.has(dev.device_id);
    state.devices.set(dev.device_id, dev);
    if (isNew) render(); else renderDeviceOnly(dev);
  });
}

fetch("/api/state", { cache: "no-store" })
  .then((r) => (r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status))))
  .then(applySnapshot)
  .catch(() => setBroker("?"))
  .finally(connect);
setInterval(tick, 1000);
