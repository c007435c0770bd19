"""The web server: one page, its static files, one websocket per browser.

aiohttp runs in a thread of its own with its own event loop.  Each browser
gets a sender task that waits until (a) something new was published, (b) the
browser acknowledged the previous update (it does so after drawing, in
``requestAnimationFrame``, so updates never outpace its screen) and (c) at
least ``1/max_fps`` passed; then it sends the newest state, as the changed
rectangles of what that browser already has.  Nothing is queued per
browser, so a slow or stalled one only sees fewer updates.
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


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(eq=False)
class Client:
    ws: web.WebSocketResponse
    peer: str
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    acked: bool = True
    last_send: float = 0.0
    sent_version: int = -1
    sent: dict[str, np.ndarray] = field(default_factory=dict)
    pick: tuple[int, int] | None = None
    frame_key: Any = None
    history: int | None = None
    bytes_sent: int = 0
    updates_sent: int = 0
    acks: deque = field(default_factory=lambda: deque(maxlen=100_000))


class DashboardServer:
    """Serves ``state`` on ``host:port`` (port 0: any free one)."""

    def __init__(self, state: LiveState, host: str = "127.0.0.1", port: int = 0,
                 token: str | None = None, max_fps: float = 60.0):
        self.state = state
        self.host = host
        self.port = int(port)
        if token is None and not is_loopback(host):
            token = secrets.token_urlsafe(24)
        self.token = token
        self.max_fps = float(max_fps)
        self.clients: set[Client] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

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
        self.state.add_listener(self._on_publish)
        return self

    def stop(self) -> None:
        self.state.remove_listener(self._on_publish)
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
        for c in list(self.clients):
            await c.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _on_publish(self) -> None:
        """Called from the acquisition's thread: only schedules a wake-up."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        for c in self.clients:
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
        return ws

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
        elif isinstance(msg, messages.Regions):
            self.state.set_regions({"bf": msg.bf, "adf": msg.adf})
        elif isinstance(msg, messages.Pick):
            client.pick = None if msg.y is None else (msg.y, msg.x)
        elif isinstance(msg, messages.View):
            client.history = msg.history
            client.sent_version = -1
        client.wake.set()

    def _snapshot_for(self, client: Client) -> Snapshot:
        if client.history is not None:
            shots = self.state.snapshots()
            if client.history < len(shots):
                return shots[client.history]
        return self.state.current

    def _has_news(self, client: Client) -> bool:
        snap = self._snapshot_for(client)
        return snap.version != client.sent_version or _frame_key(client, snap) != client.frame_key

    async def _send_loop(self, client: Client) -> None:
        min_gap = 1.0 / self.max_fps
        while not client.ws.closed:
            if not client.acked:
                try:
                    await asyncio.wait_for(client.wake.wait(), ACK_TIMEOUT_S)
                except asyncio.TimeoutError:
                    client.acked = True
                client.wake.clear()
                continue
            if not self._has_news(client):
                await client.wake.wait()
                client.wake.clear()
                continue
            gap = client.last_send + min_gap - time.monotonic()
            if gap > 0:
                await asyncio.sleep(gap)
            message = await asyncio.to_thread(self._encode_for, client,
                                              self._snapshot_for(client))
            client.acked = False
            client.last_send = time.monotonic()
            try:
                await client.ws.send_bytes(message)
            except (ConnectionError, RuntimeError):
                return
            client.bytes_sent += len(message)
            client.updates_sent += 1

    def _encode_for(self, client: Client, snap: Snapshot) -> bytes:
        planes = snap.cache.get("planes")
        if planes is None:
            planes = encode.planes_of(snap.images, snap.damage)
            snap.cache["planes"] = planes
        parts = []
        for plane in planes:
            rect = encode.changed_rect(client.sent.get(plane.name), plane.pixels)
            if rect is not None:
                parts.append((plane, rect))
                client.sent[plane.name] = plane.pixels
        extra = []
        frame_key = _frame_key(client, snap)
        if frame_key != client.frame_key:
            client.frame_key = frame_key
            frame = self._frame_at(snap, client.pick)
            if frame is not None:
                extra.append(frame)
        client.sent_version = snap.version
        header = {
            "type": "update", "version": snap.version, "run_id": snap.run_id,
            "status": snap.status, "detector": snap.detector, "mode": snap.mode,
            "nav_shape": list(snap.nav_shape), "sig_shape": list(snap.sig_shape),
            "ledger": snap.ledger, "fps": round(snap.fps, 1), "elapsed_s": round(snap.elapsed_s, 3),
            "regions": snap.regions, "processed": snap.processed,
            "history": {"count": len(self.state.history), "index": client.history},
            "sent_at": time.time(),
        }
        return encode.pack(header, parts, extra)

    @staticmethod
    def _frame_at(snap: Snapshot, pick: tuple[int, int] | None) -> Any:
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
        if snap.damage is not None:
            try:
                valid = bool(np.asarray(snap.damage)[idx])
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


def _frame_key(client: Client, snap: Snapshot) -> Any:
    """What the frame under a browser's pointer depends on: a scanned position's
    thumbnail never changes within a run, so it is sent once."""
    if client.pick is None:
        return None
    scanned = False
    if snap.damage is not None:
        try:
            scanned = bool(np.asarray(snap.damage)[client.pick])
        except IndexError:
            pass
    return (client.pick, snap.run_id, id(snap.thumbs), scanned)


_STATIC = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
_NO_CACHE = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def _static_bytes(name: str) -> bytes:
    return resources.files("libertem_live_dashboard").joinpath("static", name).read_bytes()
