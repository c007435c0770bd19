"""The web server: one page, its static files, one websocket per browser.

aiohttp runs in a thread of its own with its own event loop.  The result
hooks wake nobody: while a connected browser is ready for an update, a
ticker looks for a newer published state ``max_fps`` times a second (a few
times a second once nothing new came for a while) and wakes the browsers that
are ready for one.  A browser is ready when it acknowledged the previous update
(it does so after drawing, in ``requestAnimationFrame``, so updates never
outpace its screen) and ``1/max_fps`` passed since the last one.

The newest state is rendered (copied, colour limits, 8-bit, the changed
rectangle against the render before) in a worker thread, once for all
browsers and at most ``max_fps`` times a second; states no browser asks for
are never rendered.  A browser then gets the union of the changed rectangles
since the render it already has, so nothing per browser depends on the
number of pixels except the bytes sent.  Nothing is queued per browser: a
slow or stalled one only sees fewer updates.

While the acquisition is behind the detector (see BEHIND_S) the browsers
step back to one update every few seconds: then the pages' CPU would come
out of the acquisition.
"""
from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
from aiohttp import WSMsgType, web

from libertem_live_dashboard import encode, messages
from libertem_live_dashboard.state import LiveState, Snapshot

log = logging.getLogger(__name__)

#: A browser that has not acknowledged an update for this long gets the next one anyway.
ACK_TIMEOUT_S = 5.0
#: Renders kept for changed rectangles; a browser further behind gets whole images.
CHAIN_LENGTH = 32
#: Packed image sets kept per render (one per distinct render the browsers have).
BODIES_KEPT = 8
#: Images of a frame's size (the sum frame) are rendered again at most
#: ``sum_fps`` times a second while a scan runs (default SUM_FPS): they cost
#: most of a render (a 512 x 512 frame 5-13 ms here, the scan's images
#: together about 1 ms) and of a page's drawing (about 25 ms of Chromium's
#: CPU), and after the first partitions they change slowly.  The scan's
#: images follow at the full update rate; a finished scan is rendered whole.
SIG_IMAGES = frozenset({"sum"})
SUM_FPS = 2.0
#: With nothing newly published for IDLE_AFTER_S, the server looks for a new
#: state every IDLE_POLL_S instead of ``max_fps`` times a second (the first
#: update of a scan comes that much later; every later one at the full rate).
IDLE_AFTER_S = 1.0
IDLE_POLL_S = 0.2
#: The acquisition is behind when the frames it received but has not yet
#: decoded are more than BEHIND_S seconds of its processing (Snapshot.behind_s):
#: the detector (or a recording) sends faster than the machine processes.
#: Then every CPU second counts, so from then until BEHIND_HOLD_S after it
#: caught up, each browser gets at most one update every ``behind_gap_s``
#: (default BEHIND_GAP_S), whatever its own pace; a browser's request (a
#: dragged region, the pointer on the scan, a scan of the history) is still
#: answered at once.
BEHIND_S = 1.0
BEHIND_HOLD_S = 2.0
BEHIND_GAP_S = 2.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(eq=False)
class Rendered:
    """A snapshot made ready to send, shared by every browser.

    ``changed`` says, per image, which rectangle differs from the render
    before it in the live chain (``seq`` consecutive; None for a scan of the
    history, which is sent whole)."""

    snap: Snapshot
    planes: dict[str, encode.Plane]
    changed: dict[str, tuple[int, int, int, int] | None]
    damage: np.ndarray | None
    fields: dict[str, Any]
    seq: int | None = None
    rendered_at: dict[str, float] = field(default_factory=dict)
    bodies: dict[Any, tuple[list[dict[str, Any]], bytes]] = field(default_factory=dict)


def render(snap: Snapshot, prev: Rendered | None, sum_fps: float = SUM_FPS) -> Rendered:
    """Runs in a worker thread: everything that costs per pixel."""
    views = snap.views()
    now = time.monotonic()
    kept: dict[str, encode.Plane] = {}
    rendered_at = {}
    if prev is not None and snap.status == "running" and prev.snap.run_id == snap.run_id:
        for name in SIG_IMAGES:
            at = prev.rendered_at.get(name)
            if name in prev.planes and at is not None and now - at < 1.0 / sum_fps:
                kept[name] = prev.planes[name]
                rendered_at[name] = at
    planes = {p.name: p for p in encode.planes_of(views.images, views.damage, frozenset(kept))}
    changed: dict[str, tuple[int, int, int, int] | None] = {}
    for name, plane in planes.items():
        before = prev.planes.get(name) if prev is not None else None
        changed[name] = encode.bounding_rect(None if before is None else before.pixels,
                                             plane.pixels)
        rendered_at[name] = now
    for name, plane in kept.items():
        planes[name] = plane
        changed[name] = None
    fields = {
        "type": "update", "version": snap.version, "run_id": snap.run_id,
        "status": snap.status, "detector": snap.detector, "mode": snap.mode,
        "nav_shape": list(snap.nav_shape), "sig_shape": list(snap.sig_shape),
        "ledger": snap.ledger_dict(), "fps": round(snap.fps, 1),
        "elapsed_s": round(snap.elapsed_s, 3), "regions": snap.regions,
        "processed": views.processed, "behind_s": round(snap.behind_s, 2),
    }
    return Rendered(snap=snap, planes=planes, changed=changed, damage=views.damage,
                    fields=fields, rendered_at=rendered_at)


@dataclass(eq=False)
class Client:
    ws: web.WebSocketResponse
    peer: str
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    asked: asyncio.Event = field(default_factory=asyncio.Event)
    acked: bool = True
    last_send: float = 0.0
    base: Rendered | None = None
    pick: tuple[int, int] | None = None
    frame_key: Any = None
    history: int | None = None
    bytes_sent: int = 0
    updates_sent: int = 0
    acks: deque = field(default_factory=lambda: deque(maxlen=100_000))


class DashboardServer:
    """Serves ``state`` on ``host:port`` (port 0: any free one)."""

    def __init__(self, state: LiveState, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, max_fps: float = 60.0, sum_fps: float = SUM_FPS,
                 behind_gap_s: float = BEHIND_GAP_S):
        self.state = state
        self.host = host
        self.port = int(port)
        if token is None and not is_loopback(host):
            token = secrets.token_urlsafe(24)
        self.token = token
        self.max_fps = float(max_fps)
        if not (self.max_fps > 0 and float(sum_fps) > 0):
            raise ValueError(f"max_fps and sum_fps must be above 0, got {max_fps} and {sum_fps}")
        self.sum_fps = min(float(sum_fps), self.max_fps)
        self.behind_gap_s = max(float(behind_gap_s), 1.0 / self.max_fps)
        self._behind_until = 0.0
        self.clients: set[Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._chain: deque[Rendered] = deque(maxlen=CHAIN_LENGTH)
        self._seq = 0
        self._rendering: asyncio.Future | None = None
        self._rendered_at = 0.0
        self._ticker: asyncio.Future | None = None
        self._someone_ready: asyncio.Event | None = None
        self._render_failed = False
        self.renders = 0

    # --- lifecycle ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        query = f"?token={self.token}" if self.token else ""
        return f"http://{host}:{self.port}/{query}"

    def start(self) -> DashboardServer:
        self._thread = threading.Thread(target=self._serve, name="libertem-live-dashboard",
                                        daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise OSError(f"the dashboard cannot listen on {self.host}:{self.port}: "
                          f"{self._error}; choose another --port or --host") from self._error
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
        try:
            fut.result(10)
        except Exception:
            log.debug("dashboard shutdown", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as e:
            self._error = e
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _startup(self) -> None:
        app = web.Application(client_max_size=messages.MAX_MESSAGE)
        app.router.add_get("/", self._index)
        app.router.add_get("/ws", self._websocket)
        app.router.add_get("/static/{name}", self._static)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.port = sock.getsockname()[1]

    async def _shutdown(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for c in list(self.clients):
            await c.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._rendering is not None:  # a render in its thread: let it end with the loop's tasks
            await asyncio.wait([self._rendering], timeout=5)

    async def _tick(self) -> None:
        """While browsers are connected: wake the ready ones when a state newer
        than the last render was published (polled: the hooks signal nothing).

        It costs nothing while no browser is ready (each one still drawing or
        pacing itself): it waits for an acknowledgement.  It polls at
        ``max_fps`` while states come, and at IDLE_POLL_S once nothing new was
        published for IDLE_AFTER_S, so an open page on an idle dashboard costs
        the server a few wake-ups a second."""
        fast = 1.0 / self.max_fps
        ready = self._someone_ready
        assert ready is not None
        changed_at = time.monotonic()
        seen = self.state.current
        while self.clients:
            if not any(c.acked for c in self.clients):
                ready.clear()
                await ready.wait()
                continue
            now = time.monotonic()
            await asyncio.sleep(fast if now - changed_at < IDLE_AFTER_S else max(fast, IDLE_POLL_S))
            current = self.state.current
            if current is not seen:
                seen = current
                changed_at = time.monotonic()
            last = self._chain[-1].snap if self._chain else None
            if current is not last:
                for c in self.clients:
                    if c.acked:
                        c.wake.set()

    # --- HTTP ----------------------------------------------------------------------------
    def _authorised(self, request: web.Request) -> bool:
        if self.token is None:
            return True
        given = request.query.get("token", "")
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def _index(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return web.Response(status=403, text="this dashboard needs the token printed when "
                                "it started: open the URL with ?token=...")
        return web.Response(body=_static_bytes("index.html"), content_type="text/html",
                            headers=_NO_CACHE)

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        kind = _STATIC.get(name)
        if kind is None:
            raise web.HTTPNotFound()
        return web.Response(body=_static_bytes(name), content_type=kind, headers=_NO_CACHE)

    # --- websocket -------------------------------------------------------------------------
    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            raise web.HTTPForbidden(text="missing or wrong token")
        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            raise web.HTTPForbidden(text=f"websocket from another origin ({origin}) refused")
        ws = web.WebSocketResponse(max_msg_size=messages.MAX_MESSAGE, heartbeat=20,
                                   compress=False)
        await ws.prepare(request)
        client = Client(ws=ws, peer=str(request.remote))
        self.clients.add(client)
        if self._someone_ready is None:
            self._someone_ready = asyncio.Event()
        self._someone_ready.set()
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.ensure_future(self._tick())
        sender = asyncio.ensure_future(self._send_loop(client))
        client.wake.set()
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._receive(client, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
                else:
                    await ws.send_json({"type": "error", "error": "only text messages are read"})
        finally:
            self.clients.discard(client)
            sender.cancel()
            self._wake_ticker()  # the ticker ends when the last browser left
        return ws

    def _wake_ticker(self) -> None:
        if self._someone_ready is not None:
            self._someone_ready.set()

    def _receive(self, client: Client, text: str) -> None:
        snap = self.state.current
        try:
            msg = messages.parse(text, sig_shape=snap.sig_shape or (1, 1),
                                 nav_shape=snap.nav_shape or (1,),
                                 history=len(self.state.history))
        except messages.BadMessage as e:
            asyncio.ensure_future(client.ws.send_json({"type": "error", "error": str(e)}))
            return
        if isinstance(msg, messages.Ack):
            client.acks.append((time.monotonic(), msg.version))
            client.acked = True
            self._wake_ticker()
        else:
            if isinstance(msg, messages.Regions):
                self.state.set_regions({"bf": msg.bf, "adf": msg.adf})
            elif isinstance(msg, messages.Pick):
                client.pick = None if msg.y is None else (msg.y, msg.x)
            elif isinstance(msg, messages.View):
                client.history = msg.history
            client.asked.set()
        client.wake.set()

    async def _target(self, client: Client) -> Rendered | None:
        """The render this browser should have now: a scan of the history it
        looks at, or the newest live state."""
        if client.history is not None:
            shots = self.state.snapshots()
            if client.history < len(shots):
                snap = shots[client.history]
                done = snap.cache.get("rendered")
                if done is None:
                    done = await asyncio.to_thread(render, snap, None)
                    snap.cache["rendered"] = done
                return done
        return await self._live()

    async def _live(self) -> Rendered | None:
        """The newest render, rendering the newest state if none is under way
        and the last render is at least ``1/max_fps`` old: however many
        browsers ask, a state is rendered once and at most ``max_fps`` times
        a second."""
        last = self._chain[-1] if self._chain else None
        if last is not None and last.snap is self.state.current:
            return last
        if self._rendering is None:
            if last is not None and time.monotonic() - self._rendered_at < 1.0 / self.max_fps:
                return last
            self._rendered_at = time.monotonic()
            self._rendering = asyncio.ensure_future(self._render_live(last))
        return await asyncio.shield(self._rendering)

    async def _render_live(self, prev: Rendered | None) -> Rendered | None:
        try:
            done = await asyncio.to_thread(render, self.state.current, prev, self.sum_fps)
        except Exception:
            if not self._render_failed:
                self._render_failed = True
                log.exception("the dashboard could not render the newest state; "
                              "the page keeps the last one")
            return prev
        finally:
            self._rendering = None
        done.seq = self._seq
        self._seq += 1
        self._chain.append(done)
        self.renders += 1
        return done

    def _rects(self, base: Rendered | None, target: Rendered
               ) -> dict[str, tuple[int, int, int, int] | None]:
        """Per image, what a browser holding ``base`` needs of ``target``: the
        union of the changed rectangles of the renders in between (whole
        images where the chain does not reach back to ``base``)."""
        if base is target:
            return {name: None for name in target.planes}
        between: list[Rendered] | None = None
        chain = self._chain
        if (base is not None and base.seq is not None and target.seq is not None
                and chain and base.seq < target.seq and base.seq + 1 >= chain[0].seq
                and target.seq <= chain[-1].seq):
            first = chain[0].seq
            between = [chain[s - first] for s in range(base.seq + 1, target.seq + 1)]
        out = {}
        for name, plane in target.planes.items():
            shape = plane.pixels.shape
            had = base.planes.get(name) if base is not None else None
            if between is None or had is None or had.pixels.shape != shape:
                out[name] = (0, 0) + shape
                continue
            rect = None
            for r in between:
                rect = encode.union_rect(rect, r.changed.get(name, (0, 0) + shape), shape)
            out[name] = None if rect is None else encode.worth_whole(rect, shape)
        return out

    def _images_for(self, client: Client, target: Rendered
                    ) -> tuple[list[dict[str, Any]], bytes]:
        """The packed images a browser holding ``client.base`` needs, shared
        with every browser that holds the same render."""
        base = client.base
        if base is target:
            key: Any = "same"
        elif base is not None and base.seq is not None:
            key = base.seq
        else:
            key = "whole"
        got = target.bodies.get(key)
        if got is None:
            rects = self._rects(base, target)
            got = encode.pack_images([(target.planes[n], r) for n, r in rects.items()
                                      if r is not None])
            if len(target.bodies) >= BODIES_KEPT:
                target.bodies.clear()
            target.bodies[key] = got
        return got

    def _slowed(self) -> bool:
        """Whether the acquisition is behind (or was, BEHIND_HOLD_S ago)."""
        now = time.monotonic()
        snap = self.state.current
        if snap.status == "running" and snap.behind_s > BEHIND_S:
            self._behind_until = now + BEHIND_HOLD_S
        return now < self._behind_until

    async def _send_loop(self, client: Client) -> None:
        min_gap = 1.0 / self.max_fps
        while not client.ws.closed:
            if not client.acked:
                try:
                    await asyncio.wait_for(client.wake.wait(), ACK_TIMEOUT_S)
                except asyncio.TimeoutError:
                    client.acked = True
                    self._wake_ticker()
                client.wake.clear()
                continue
            if not client.asked.is_set() and client.history is None and self._slowed():
                gap = client.last_send + self.behind_gap_s - time.monotonic()
                if gap > 0:
                    try:
                        await asyncio.wait_for(client.asked.wait(), gap)
                    except asyncio.TimeoutError:
                        pass
                    continue
            gap = client.last_send + min_gap - time.monotonic()
            if gap > 0:
                await asyncio.sleep(gap)
            target = await self._target(client)
            if target is None or (target is client.base
                                  and _frame_key(client, target) == client.frame_key):
                await client.wake.wait()
                client.wake.clear()
                continue
            slowed = self.behind_gap_s if self._slowed() else 0.0
            message = self._message(client, target, slowed)
            client.asked.clear()
            client.acked = False
            client.last_send = time.monotonic()
            try:
                await client.ws.send_bytes(message)
            except (ConnectionError, RuntimeError):
                return
            client.bytes_sent += len(message)
            client.updates_sent += 1

    def _message(self, client: Client, target: Rendered, slowed: float = 0.0) -> bytes:
        listed, body = self._images_for(client, target)
        client.base = target
        extra = []
        frame_key = _frame_key(client, target)
        if frame_key != client.frame_key:
            client.frame_key = frame_key
            frame = self._frame_at(target, client.pick)
            if frame is not None:
                extra.append(frame)
        header = dict(target.fields, history={"count": len(self.state.history),
                                              "index": client.history},
                      slowed_s=slowed, sent_at=time.time())
        return encode.pack_message(header, listed, body, extra)

    @staticmethod
    def _frame_at(target: Rendered, pick: tuple[int, int] | None) -> Any:
        snap = target.snap
        thumbs = snap.thumbs
        if pick is None or thumbs is None or len(snap.nav_shape) < 1:
            return None
        y, x = pick
        nav = thumbs.shape[:-2]
        try:
            idx = (y, x) if len(nav) == 2 else (y * (snap.nav_shape[-1]) + x,)
            frame = np.array(thumbs[idx], dtype=np.float32)
        except IndexError:
            return None
        valid = True
        if target.damage is not None:
            try:
                valid = bool(target.damage[idx])
            except IndexError:
                valid = False
        q, lo, hi = encode.quantise(frame, None, log=True)
        if not valid:
            q[:] = 0
        return ({"name": "frame", "lo": lo, "hi": hi, "log": True, "unit": "counts",
                 "pos": [y, x], "bin": snap.thumb_bin, "valid": valid}, q)

    # --- numbers for tests and benchmarks --------------------------------------------
    def stats(self) -> list[dict[str, Any]]:
        return [{"peer": c.peer, "bytes": c.bytes_sent, "updates": c.updates_sent,
                 "acks": len(c.acks)} for c in list(self.clients)]


def _frame_key(client: Client, target: Rendered) -> Any:
    """What the frame under a browser's pointer depends on: a scanned position's
    thumbnail never changes within a run, so it is sent once."""
    if client.pick is None:
        return None
    scanned = False
    if target.damage is not None:
        try:
            scanned = bool(target.damage[client.pick])
        except IndexError:
            pass
    return (client.pick, target.snap.run_id, id(target.snap.thumbs), scanned)


_STATIC = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
_NO_CACHE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def _static_bytes(name: str) -> bytes:
    return resources.files("libertem_live_dashboard").joinpath("static", name).read_bytes()
