// libertem-live dashboard page: draws the newest state the server sent and
// acknowledges each update after drawing it, so the server never sends faster
// than this screen shows.  No framework, no build step, nothing from a CDN.
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
const stats = { updates: 0, version: -1, bytes: 0, drawn: 0, lastBytes: 0 };
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

function receive(buf) {
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
    Object.assign(cur, { lo: im.lo, hi: im.hi, log: im.log, unit: im.unit, dirty: true,
                         pos: im.pos, valid: im.valid });
  }
  header = h;
  if (!dragging && h.regions && h.regions.bf) regions = JSON.parse(JSON.stringify(h.regions));
  stats.updates += 1;
  stats.version = h.version;
  stats.lastBytes = buf.byteLength;
  stats.bytes += buf.byteLength;
  schedule();
}

function schedule() {
  if (!scheduled) { scheduled = true; requestAnimationFrame(draw); }
}

// --- drawing ------------------------------------------------------------------------------
function paint(name, pixelsToRgb) {
  const im = images[name];
  const canvas = document.getElementById("c-" + name);
  if (!im || !canvas) return;
  const [H, W] = im.shape;
  if (canvas.width !== W || canvas.height !== H) { canvas.width = W; canvas.height = H; }
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(W, H);
  const px = im.pixels, out = data.data;
  if (pixelsToRgb) pixelsToRgb(out);
  else for (let i = 0, j = 0; i < px.length; i++, j += 4) {
    const k = px[i] * 3;
    out[j] = LUT[k]; out[j + 1] = LUT[k + 1]; out[j + 2] = LUT[k + 2]; out[j + 3] = 255;
  }
  ctx.putImageData(data, 0, 0);
  im.dirty = false;
  colourBar(name, im);
}

function fmt(v) {
  const a = Math.abs(v);
  return a !== 0 && (a >= 1e4 || a < 1e-2) ? v.toExponential(1) : v.toFixed(a < 10 ? 2 : 0);
}

function colourBar(name, im) {
  const c = document.getElementById("cb-" + name);
  if (!c) return;
  const H = c.clientHeight || 200;
  c.width = 46; c.height = H;
  const ctx = c.getContext("2d");
  for (let y = 0; y < H; y++) {
    const k = (1 + Math.round((1 - y / (H - 1)) * 254)) * 3;
    ctx.fillStyle = `rgb(${LUT[k]},${LUT[k + 1]},${LUT[k + 2]})`;
    ctx.fillRect(0, y, 10, 1);
  }
  const lo = im.log ? Math.expm1(im.lo) : im.lo, hi = im.log ? Math.expm1(im.hi) : im.hi;
  ctx.fillStyle = "#ccc"; ctx.font = "10px sans-serif";
  ctx.fillText(fmt(hi), 12, 10); ctx.fillText(fmt(lo), 12, H - 2);
  c.title = `${fmt(lo)} … ${fmt(hi)} ${im.unit || ""} (0.5 / 99.5 percentiles)`;
  c.dataset.lo = lo; c.dataset.hi = hi;
}

function drawOverlay() {
  const canvas = document.getElementById("c-sum");
  if (!regions || !regions.bf || !images.sum) return;
  const ctx = canvas.getContext("2d");
  const lw = Math.max(1, canvas.width / 256);
  ctx.lineWidth = lw;
  const [by, bx, br] = regions.bf, [ay, ax, ri, ro] = regions.adf;
  ctx.strokeStyle = "#4fc3f7";
  ctx.beginPath(); ctx.arc(bx, by, br, 0, 2 * Math.PI); ctx.stroke();
  ctx.strokeStyle = "#ff8a65";
  ctx.beginPath(); ctx.arc(ax, ay, ri, 0, 2 * Math.PI); ctx.stroke();
  ctx.beginPath(); ctx.arc(ax, ay, ro, 0, 2 * Math.PI); ctx.stroke();
  document.getElementById("regions").textContent =
    `BF (${by.toFixed(1)}, ${bx.toFixed(1)}) r=${br.toFixed(1)}; ADF (${ay.toFixed(1)}, ${ax.toFixed(1)}) ${ri.toFixed(1)}…${ro.toFixed(1)}`;
}

function setStatus(text, cls) {
  const s = document.getElementById("status");
  s.textContent = text; s.className = "status " + (cls || "");
}

function gauge(id, value, max, text) {
  const m = document.getElementById("g-" + id);
  m.max = Math.max(max, 1); m.value = value;
  document.getElementById("t-" + id).textContent = text;
}

function draw() {
  scheduled = false;
  if (!header) return;
  const t0 = performance.now();
  const overlayDirty = images.sum && (images.sum.dirty || dragging);
  for (const name of ["sum", "bf", "adf", "com_mag", "frame"]) {
    if (images[name] && (images[name].dirty || (name === "sum" && overlayDirty))) paint(name);
  }
  if (images.com_angle && (images.com_angle.dirty || (images.com_mag && images.com_mag.drawnFor !== stats.version))) {
    const ang = images.com_angle.pixels, mag = images.com_mag ? images.com_mag.pixels : null;
    paint("com_angle", (out) => {
      for (let i = 0, j = 0; i < ang.length; i++, j += 4) {
        if (ang[i] === 0) { out[j] = out[j + 1] = out[j + 2] = 48; out[j + 3] = 255; continue; }
        const [r, g, b] = hsv((ang[i] - 1) / 254, mag ? Math.min(1, (mag[i] - 1) / 200 + 0.15) : 1);
        out[j] = 255 * r; out[j + 1] = 255 * g; out[j + 2] = 255 * b; out[j + 3] = 255;
      }
    });
    if (images.com_mag) images.com_mag.drawnFor = stats.version;
  }
  drawOverlay();
  const h = header, L = h.ledger || {};
  const cls = h.status.startsWith("failed") ? "failed" : (h.status === "running" ? "running" : "");
  setStatus(h.status, cls);
  document.getElementById("run").textContent = h.run_id ?
    `run ${h.run_id}: ${h.detector} ${h.mode} nav ${h.nav_shape.join("×")} sig ${h.sig_shape.join("×")}` : "";
  document.getElementById("fps").textContent = Math.round(h.fps);
  const exp = L.expected || 0;
  if (exp) {
    gauge("received", L.received, exp, `${L.received} / ${exp}`);
    gauge("processed", h.processed, exp, `${h.processed} / ${exp}`);
    gauge("missing", L.missing, exp, `${L.missing}`);
    const inRing = Math.max(0, L.received - L.decoded);
    gauge("ring", inRing, exp, `${inRing}`);
    document.getElementById("t-blocked").textContent = (L.blocked_s || 0).toFixed(3);
  }
  const hs = document.getElementById("history");
  hs.max = h.history.count; hs.disabled = h.history.count === 0;
  if (h.history.index === null || h.history.index === undefined) hs.value = h.history.count;
  document.getElementById("history-label").textContent = h.history.index === null || h.history.index === undefined ?
    `live (${h.history.count} earlier scans kept)` : `scan ${h.history.index + 1} of ${h.history.count}`;
  if (images.frame && images.frame.pos) document.getElementById("pos").textContent =
    `(${images.frame.pos.join(", ")})` + (images.frame.valid ? "" : " not scanned yet");
  stats.drawn += 1;
  stats.drawMs = performance.now() - t0;
  send({ type: "ack", version: h.version });
}

// --- interaction -------------------------------------------------------------------------
function toImage(canvas, ev) {
  const r = canvas.getBoundingClientRect();
  return [(ev.clientY - r.top) / r.height * canvas.height, (ev.clientX - r.left) / r.width * canvas.width];
}

let lastRegionsSent = 0, regionsTimer = null;
function sendRegions(force) {
  const now = performance.now();
  clearTimeout(regionsTimer);
  if (force || now - lastRegionsSent > 100) {
    lastRegionsSent = now;
    send({ type: "regions", bf: regions.bf, adf: regions.adf });
  } else {
    regionsTimer = setTimeout(() => sendRegions(true), 100);
  }
}

const sumCanvas = document.getElementById("c-sum");
sumCanvas.addEventListener("mousedown", (ev) => {
  if (!regions || !regions.bf) return;
  const [y, x] = toImage(sumCanvas, ev);
  const tol = Math.max(2, sumCanvas.width / 64);
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
  const [y, x] = toImage(sumCanvas, ev);
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
    pickTimer = setTimeout(() => send({ type: "pick", y, x }), 30);
  });
}

document.getElementById("history").addEventListener("input", (ev) => {
  const v = Number(ev.target.value), count = header ? header.history.count : 0;
  send({ type: "view", history: v >= count ? null : v });
});

connect();
