// libertem-live dashboard page: draws the newest state the server sent and
// acknowledges each update after drawing it, so the server never sends faster
// than this screen shows.  While a scan runs the page also paces itself (see
// PACE): the browser shares the machine with the acquisition.  With nothing
// new the server sends nothing and the page runs nothing (no timers, no
// animation frames).  No framework, no build step, nothing from a CDN.
"use strict";

const params = new URLSearchParams(location.search);
const token = params.get("token");
const wsUrl = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws" +
  (token ? "?token=" + encodeURIComponent(token) : "");

const images = {};        // name -> {shape, pixels, lo, hi, log, unit, dirty}
let header = null;        // last update's header
let scheduled = false;
let regions = null;       // what the overlay shows (local while dragging)
let dragging = null;
const stats = { updates: 0, version: -1, bytes: 0, drawn: 0, lastBytes: 0, acks: 0,
                costMs: 0, paceMs: 0 };
window.__dash = stats;

// --- colour maps -------------------------------------------------------------------
const STOPS = [[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
               [245, 125, 21], [250, 193, 39], [252, 255, 164]];
const LUT = new Uint8ClampedArray(256 * 3);
for (let i = 1; i < 256; i++) {
  const t = (i - 1) / 254 * (STOPS.length - 1), k = Math.min(Math.floor(t), STOPS.length - 2), f = t - k;
  for (let c = 0; c < 3; c++) LUT[i * 3 + c] = STOPS[k][c] * (1 - f) + STOPS[k + 1][c] * f;
}
LUT[0] = LUT[1] = LUT[2] = 48;  // 0: no data yet

function hsv(h, v) {  // h, v in 0..1 -> [r, g, b]
  const i = Math.floor(h * 6), f = h * 6 - i, p = 0, q = v * (1 - f), t = v * f;
  switch (i % 6) {
    case 0: return [v, t, p]; case 1: return [q, v, p]; case 2: return [p, v, t];
    case 3: return [p, q, v]; case 4: return [t, p, v]; default: return [v, p, q];
  }
}

// --- socket ------------------------------------------------------------------------------
let ws;
function connect() {
  ws = new WebSocket(wsUrl);
  ws.binaryType = "arraybuffer";
  ws.onmessage = (ev) => {
    if (typeof ev.data === "string") {
      const msg = JSON.parse(ev.data);
      if (msg.type === "error") document.getElementById("error").textContent = msg.error;
      return;
    }
    receive(ev.data);
  };
  ws.onclose = () => {
    setStatus("disconnected — retrying", "failed");
    setTimeout(connect, 1000);
  };
}

function send(obj) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
}

// --- pacing ----------------------------------------------------------------------------
// While a scan runs, the page acknowledges an update (asks for the next) no
// sooner than its own cost allows: the script's time per update (decoding
// and drawing, measured) times `factor` (style, layout, paint and the
// compositor, which no script can time: in Chromium with software drawing
// about 5-6 times the script's time) stays under `budget` of the wall time.
// At least one update every `maxMs`; outside a scan (finished, failed, an
// earlier scan looked at) and on any interaction, acknowledgements go at once.
const PACE = { factor: 6, budget: 0.03, maxMs: 500 };
const pace = { work: 0, est: 0, lastAck: 0, timer: null, version: null };

function ackNow() {
  clearTimeout(pace.timer);
  pace.timer = null;
  if (pace.version === null) return;
  send({ type: "ack", version: pace.version });
  pace.version = null;
  pace.lastAck = performance.now();
  stats.acks += 1;
}

function ack(version, running) {
  const cost = pace.work;
  pace.work = 0;
  pace.est = pace.est ? 0.8 * pace.est + 0.2 * cost : cost;
  pace.version = version;
  const interval = running ? Math.min(PACE.maxMs, pace.est * PACE.factor / PACE.budget) : 0;
  stats.costMs = pace.est;
  stats.paceMs = interval;
  const wait = pace.lastAck + interval - performance.now();
  if (wait <= 0) ackNow();
  else if (pace.timer === null) pace.timer = setTimeout(ackNow, wait);
}

// Browser requests (pointer, regions, history) also release a held acknowledgement:
// the answer to them should not wait for the pace.
function request(obj) {
  send(obj);
  ackNow();
}

function receive(buf) {
  const t0 = performance.now();
  const dv = new DataView(buf);
  const n = dv.getUint32(0, true);
  const h = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 4, n)));
  const body = new Uint8Array(buf, 4 + n);
  for (const im of h.images) {
    const [H, W] = im.shape, [y, x, rh, rw] = im.rect;
    let cur = images[im.name];
    if (!cur || cur.shape[0] !== H || cur.shape[1] !== W) {
      cur = images[im.name] = { shape: [H, W], pixels: new Uint8Array(H * W) };
    }
    const src = body.subarray(im.offset, im.offset + rh * rw);
    for (let r = 0; r < rh; r++) cur.pixels.set(src.subarray(r * rw, (r + 1) * rw), (y + r) * W + x);
    const d = cur.dirty;  // [y0, x0, y1, x1] not yet painted
    cur.dirty = d ? [Math.min(d[0], y), Math.min(d[1], x), Math.max(d[2], y + rh), Math.max(d[3], x + rw)]
                  : [y, x, y + rh, x + rw];
    Object.assign(cur, { lo: im.lo, hi: im.hi, log: im.log, unit: im.unit, pos: im.pos, valid: im.valid,
                         bin: im.bin || 1 });
  }
  header = h;
  if (!dragging && h.regions && h.regions.bf && !heldRegions(h.regions)) {
    regions = JSON.parse(JSON.stringify(h.regions));
  }
  stats.updates += 1;
  stats.version = h.version;
  stats.lastBytes = buf.byteLength;
  stats.bytes += buf.byteLength;
  pace.work += performance.now() - t0;
  schedule();
}

function schedule() {
  if (!scheduled) { scheduled = true; requestAnimationFrame(draw); }
}

// --- drawing ------------------------------------------------------------------------------
// Only the rectangle that changed since the last paint is converted; the
// canvas keeps its ImageData between paints.  A canvas with an overlay gets
// the whole image put back (that erases the overlay drawn before).
function paint(name, pixelsToRgb, whole) {
  const im = images[name];
  const canvas = document.getElementById("c-" + name);
  if (!im || !canvas) return;
  const [H, W] = im.shape;
  const ctx = canvas.getContext("2d");
  if (canvas.width !== W || canvas.height !== H || !im.data) {
    canvas.width = W; canvas.height = H;
    im.data = ctx.createImageData(W, H);
    im.dirty = [0, 0, H, W];
  }
  const d = im.dirty || [0, 0, 0, 0], out = im.data.data, px = im.pixels;
  if (pixelsToRgb) pixelsToRgb(out, d);
  else for (let y = d[0]; y < d[2]; y++) {
    for (let i = y * W + d[1], j = 4 * i, end = y * W + d[3]; i < end; i++, j += 4) {
      const k = px[i] * 3;
      out[j] = LUT[k]; out[j + 1] = LUT[k + 1]; out[j + 2] = LUT[k + 2]; out[j + 3] = 255;
    }
  }
  if (whole) ctx.putImageData(im.data, 0, 0);
  else if (d[2] > d[0] && d[3] > d[1]) ctx.putImageData(im.data, 0, 0, d[1], d[0], d[3] - d[1], d[2] - d[0]);
  im.dirty = null;
  colourBar(name, im);
}

function fmt(v) {
  const a = Math.abs(v);
  return a !== 0 && (a >= 1e4 || a < 1e-2) ? v.toExponential(1) : v.toFixed(a < 10 ? 2 : 0);
}

const gradients = {};  // height -> the colour strip, drawn once
function gradient(H) {
  let g = gradients[H];
  if (!g) {
    g = gradients[H] = document.createElement("canvas");
    g.width = 10; g.height = H;
    const ctx = g.getContext("2d"), data = ctx.createImageData(10, H);
    for (let y = 0; y < H; y++) {
      const k = (1 + Math.round((1 - y / Math.max(H - 1, 1)) * 254)) * 3;
      for (let x = 0; x < 10; x++) data.data.set([LUT[k], LUT[k + 1], LUT[k + 2], 255], 4 * (y * 10 + x));
    }
    ctx.putImageData(data, 0, 0);
  }
  return g;
}

// Redrawn only when its labels change (the limits move with every update,
// their two significant digits seldom); no attribute is written otherwise,
// since each write costs the page a style pass.
function colourBar(name, im) {
  const c = document.getElementById("cb-" + name);
  if (!c) return;
  const H = c.clientHeight || 200;
  const lo = fmt(im.log ? Math.expm1(im.lo) : im.lo), hi = fmt(im.log ? Math.expm1(im.hi) : im.hi);
  const key = `${H} ${lo} ${hi} ${im.unit}`;
  if (c.drawnKey === key) return;
  c.drawnKey = key;
  if (c.width !== 46 || c.height !== H) { c.width = 46; c.height = H; }
  const ctx = c.getContext("2d");
  ctx.clearRect(0, 0, 46, H);
  ctx.drawImage(gradient(H), 0, 0);
  ctx.fillStyle = "#ccc"; ctx.font = "10px sans-serif";
  ctx.fillText(hi, 12, 10); ctx.fillText(lo, 12, H - 2);
  c.title = `${lo} … ${hi} ${im.unit || ""} (0.5 / 99.5 percentiles)`;
}

let drawnOverlay = "";  // the regions the sum canvas shows
function drawOverlay() {
  const canvas = document.getElementById("c-sum");
  if (!regions || !regions.bf || !images.sum) return;
  const ctx = canvas.getContext("2d");
  const lw = Math.max(1, canvas.width / 256), b = images.sum.bin || 1;  // regions: detector pixels
  ctx.lineWidth = lw;
  const [by, bx, br] = regions.bf, [ay, ax, ri, ro] = regions.adf;
  ctx.strokeStyle = "#4fc3f7";
  ctx.beginPath(); ctx.arc(bx / b, by / b, br / b, 0, 2 * Math.PI); ctx.stroke();
  ctx.strokeStyle = "#ff8a65";
  ctx.beginPath(); ctx.arc(ax / b, ay / b, ri / b, 0, 2 * Math.PI); ctx.stroke();
  ctx.beginPath(); ctx.arc(ax / b, ay / b, ro / b, 0, 2 * Math.PI); ctx.stroke();
  setText("regions",
    `BF (${by.toFixed(1)}, ${bx.toFixed(1)}) r=${br.toFixed(1)}; ADF (${ay.toFixed(1)}, ${ax.toFixed(1)}) ${ri.toFixed(1)}…${ro.toFixed(1)}`);
}

// The DOM is written only where something changed: each write costs the
// browser a style and layout pass.
function setText(id, text) {
  const e = document.getElementById(id);
  if (e.textContent !== text) e.textContent = text;
}

function setStatus(text, cls) {
  const s = document.getElementById("status");
  if (s.textContent !== text) s.textContent = text;
  const c = "status " + (cls || "");
  if (s.className !== c) s.className = c;
}

function gauge(id, value, max, text) {
  const m = document.getElementById("g-" + id);
  const mx = Math.max(max, 1);
  if (m.max !== mx) m.max = mx;
  if (m.value !== value) m.value = value;
  setText("t-" + id, text);
}

function draw() {
  scheduled = false;
  if (!header) return;
  const t0 = performance.now();
  const sum = images.sum, overlay = !!(regions && regions.bf);
  const key = overlay ? JSON.stringify(regions) : "";
  const overlayMoved = sum && key !== drawnOverlay;
  const sumPainted = sum && (sum.dirty || overlayMoved);
  for (const name of ["sum", "bf", "adf", "com_mag", "frame"]) {
    const im = images[name];
    if (im && (im.dirty || (name === "sum" && overlayMoved))) paint(name, null, name === "sum" && overlay);
  }
  const ang = images.com_angle, mag = images.com_mag;
  if (ang && (ang.dirty || (mag && mag.drawnFor !== stats.version))) {
    ang.dirty = [0, 0, ang.shape[0], ang.shape[1]];  // its shade follows the magnitude
    paint("com_angle", (out) => {
      const a = ang.pixels, m = mag && mag.pixels.length === a.length ? mag.pixels : null;
      for (let i = 0, j = 0; i < a.length; i++, j += 4) {
        if (a[i] === 0) { out[j] = out[j + 1] = out[j + 2] = 48; out[j + 3] = 255; continue; }
        const [r, g, b] = hsv((a[i] - 1) / 254, m ? Math.min(1, (m[i] - 1) / 200 + 0.15) : 1);
        out[j] = 255 * r; out[j + 1] = 255 * g; out[j + 2] = 255 * b; out[j + 3] = 255;
      }
    });
    if (mag) mag.drawnFor = stats.version;
  }
  if (sumPainted) { drawOverlay(); drawnOverlay = key; }
  const h = header, L = h.ledger || {};
  const cls = h.status.startsWith("failed") ? "failed" : (h.status === "running" ? "running" : "");
  setStatus(h.status, cls);
  setText("run", h.run_id ?
    `run ${h.run_id}: ${h.detector} ${h.mode} nav ${h.nav_shape.join("×")} sig ${h.sig_shape.join("×")}` : "");
  setText("fps", String(Math.round(h.fps)));
  const exp = L.expected || 0;
  if (exp) {
    gauge("received", L.received, exp, `${L.received} / ${exp}`);
    gauge("processed", h.processed, exp, `${h.processed} / ${exp}`);
    gauge("missing", L.missing, exp, `${L.missing}`);
    const inRing = Math.max(0, L.received - L.decoded);
    gauge("ring", inRing, exp, `${inRing}`);
    setText("t-blocked", (L.blocked_s || 0).toFixed(3));
  }
  const slowed = h.slowed_s && h.status === "running";
  setText("behind", slowed ? "The acquisition is behind the detector" +
    (h.behind_s ? ` (${h.behind_s.toFixed(1)} s of frames waiting)` : "") +
    `: pages update every ${h.slowed_s} s to leave it the CPU.` : "");
  const hs = document.getElementById("history"), live = h.history.index === null || h.history.index === undefined;
  if (Number(hs.max) !== h.history.count) hs.max = h.history.count;
  if (hs.disabled !== (h.history.count === 0)) hs.disabled = h.history.count === 0;
  if (live && Number(hs.value) !== h.history.count) hs.value = h.history.count;
  setText("history-label", live ? `live (${h.history.count} earlier scans kept)`
                                : `scan ${h.history.index + 1} of ${h.history.count}`);
  if (images.frame && images.frame.pos) setText("pos",
    `(${images.frame.pos.join(", ")})` + (images.frame.valid ? "" : " not scanned yet"));
  stats.drawn += 1;
  stats.drawMs = performance.now() - t0;
  pace.work += stats.drawMs;
  ack(h.version, h.status === "running" && live);
}

// --- interaction -------------------------------------------------------------------------
function toImage(canvas, ev, scale = 1) {  // scale: detector pixels per canvas pixel
  const r = canvas.getBoundingClientRect();
  return [(ev.clientY - r.top) / r.height * canvas.height * scale,
          (ev.clientX - r.left) / r.width * canvas.width * scale];
}
const sumBin = () => (images.sum && images.sum.bin) || 1;

let lastRegionsSent = 0, regionsTimer = null, sentRegions = null;
function sendRegions(force) {
  const now = performance.now();
  clearTimeout(regionsTimer);
  if (force || now - lastRegionsSent > 100) {
    lastRegionsSent = now;
    sentRegions = JSON.stringify({ bf: regions.bf, adf: regions.adf });
    request({ type: "regions", bf: regions.bf, adf: regions.adf });
  } else {
    regionsTimer = setTimeout(() => sendRegions(true), 100);
  }
}

// After a drag the overlay stays where it was dropped until the server shows
// those regions (updates sent before they arrived carry older ones), 3 s at most.
function heldRegions(server) {
  if (sentRegions === null) return false;
  const shown = JSON.stringify({ bf: server.bf, adf: server.adf });
  if (shown === sentRegions || performance.now() - lastRegionsSent > 3000) {
    sentRegions = null;
    return false;
  }
  return true;
}

const sumCanvas = document.getElementById("c-sum");
sumCanvas.addEventListener("mousedown", (ev) => {
  if (!regions || !regions.bf) return;
  const [y, x] = toImage(sumCanvas, ev, sumBin());
  const tol = Math.max(2, sumCanvas.width / 64) * sumBin();
  const [by, bx, br] = regions.bf, [ay, ax, ri, ro] = regions.adf;
  const db = Math.hypot(y - by, x - bx), da = Math.hypot(y - ay, x - ax);
  let what = null;
  if (Math.abs(db - br) < tol) what = "bf-r";
  else if (db < br) what = "bf-move";
  else if (Math.abs(da - ri) < tol) what = "adf-ri";
  else if (Math.abs(da - ro) < tol) what = "adf-ro";
  else if (da > ri && da < ro) what = "adf-move";
  if (what) { dragging = { what, y, x, start: JSON.parse(JSON.stringify(regions)) }; ev.preventDefault(); }
});
window.addEventListener("mousemove", (ev) => {
  if (!dragging) return;
  const [y, x] = toImage(sumCanvas, ev, sumBin());
  const s = dragging.start, dy = y - dragging.y, dx = x - dragging.x;
  if (dragging.what === "bf-move") regions.bf = [s.bf[0] + dy, s.bf[1] + dx, s.bf[2]];
  else if (dragging.what === "bf-r") regions.bf = [s.bf[0], s.bf[1], Math.max(1, Math.hypot(y - s.bf[0], x - s.bf[1]))];
  else if (dragging.what === "adf-move") regions.adf = [s.adf[0] + dy, s.adf[1] + dx, s.adf[2], s.adf[3]];
  else if (dragging.what === "adf-ri") regions.adf = [s.adf[0], s.adf[1], Math.min(Math.hypot(y - s.adf[0], x - s.adf[1]), s.adf[3] - 1), s.adf[3]];
  else if (dragging.what === "adf-ro") regions.adf = [s.adf[0], s.adf[1], s.adf[2], Math.max(Math.hypot(y - s.adf[0], x - s.adf[1]), s.adf[2] + 1)];
  sendRegions(false);
  schedule();
});
window.addEventListener("mouseup", () => {
  if (dragging) { dragging = null; sendRegions(true); }
});

let lastPick = "", pickTimer = null;
for (const c of document.querySelectorAll("canvas.nav")) {
  c.addEventListener("mousemove", (ev) => {
    const [y, x] = toImage(c, ev).map(Math.floor);
    if (y < 0 || x < 0 || y >= c.height || x >= c.width) return;
    const key = y + "," + x;
    if (key === lastPick) return;
    lastPick = key;
    clearTimeout(pickTimer);
    pickTimer = setTimeout(() => request({ type: "pick", y, x }), 30);
  });
}

document.getElementById("history").addEventListener("input", (ev) => {
  const v = Number(ev.target.value), count = header ? header.history.count : 0;
  request({ type: "view", history: v >= count ? null : v });
});

connect();
