"""The server on real sockets, with websocket clients from Python: updates,
flow control (latest state, no backlog), several clients, regions, tokens."""
from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import numpy as np
import pytest

from libertem_live_dashboard.encode import unpack
from libertem_live_dashboard.server import DashboardServer
from libertem_live_dashboard.state import LiveState

from conftest import NAV, Live, SyntheticRun


async def _next_update(ws, timeout: float = 30.0):
    while True:
        msg = await ws.receive(timeout=timeout)
        if msg.type == aiohttp.WSMsgType.BINARY:
            return unpack(msg.data) + (len(msg.data),)
        if msg.type == aiohttp.WSMsgType.TEXT:
            raise AssertionError(f"unexpected text message {msg.data}")
        raise AssertionError(f"websocket ended: {msg.type}")


async def _ack(ws, header) -> None:
    await ws.send_str(json.dumps({"type": "ack", "version": header["version"]}))


async def _follow_until(ws, done, timeout: float = 60.0):
    """Receive and acknowledge updates until done(header, images) is true;
    the images are those of the last update (rectangles)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        header, images, _ = await _next_update(ws)
        await _ack(ws, header)
        if done(header, images):
            return header, images
    raise AssertionError("condition not reached in time")


def run(coro):
    return asyncio.run(coro)


def test_page_and_static_files_are_served(live: Live) -> None:
    async def main():
        async with aiohttp.ClientSession() as s:
            for path, kind in [("/", "text/html"), ("/static/app.js", "text/javascript"),
                               ("/static/style.css", "text/css")]:
                async with s.get(f"http://127.0.0.1:{live.port}{path}") as r:
                    assert r.status == 200 and r.content_type == kind
            async with s.get(f"http://127.0.0.1:{live.port}/static/../server.py") as r:
                assert r.status == 404
            async with s.get(f"http://127.0.0.1:{live.port}/") as r:
                page = await r.text()
            assert "http" not in page.replace("http-equiv", ""), "nothing from elsewhere"
    run(main())


def test_updates_fill_the_scan(live: Live) -> None:
    async def main():
        async with aiohttp.ClientSession() as s, s.ws_connect(live.ws_url()) as ws:
            full = NAV[0] * NAV[1]
            header, _ = await _follow_until(ws, lambda h, i: h["processed"] == full)
            assert header["ledger"]["expected"] == full and header["ledger"]["missing"] == 0
            assert header["nav_shape"] == list(NAV) and header["detector"] == "memory"
            assert header["fps"] > 0
    run(main())
    snap = live.dash.state.current
    assert set(snap.images) >= {"sum", "bf", "adf", "com_y", "com_x"}


def test_a_client_that_does_not_acknowledge_gets_no_backlog(live: Live) -> None:
    async def main():
        async with aiohttp.ClientSession() as s, s.ws_connect(live.ws_url()) as ws:
            first, _, _ = await _next_update(ws)
            state = live.dash.state
            deadline = time.monotonic() + 30
            while state.current.version < first["version"] + 20:
                assert time.monotonic() < deadline, "the acquisition went on"
                await asyncio.sleep(0.01)
            stats = live.dash.server.stats()
            assert [c["updates"] for c in stats] == [1], "nothing sent without an ack"
            before = state.current.version
            await _ack(ws, first)
            header, _, _ = await _next_update(ws)
            assert header["version"] >= before, "after the ack: the newest state, not the next"
    run(main())


def test_a_finished_scan_is_sent_once_and_then_nothing(ctx, data) -> None:
    """With nothing new published, a client that acknowledged everything gets
    no message: an open page on an idle dashboard costs nothing."""
    lv = Live(ctx, data, continuous=False).start()
    try:
        async def main():
            async with aiohttp.ClientSession() as s, s.ws_connect(lv.ws_url()) as ws:
                header, _ = await _follow_until(
                    ws, lambda h, i: h["history"]["count"] == 1
                    and h["version"] == lv.dash.state.current.version)
                assert header["status"] == "complete"
                with pytest.raises(asyncio.TimeoutError):
                    await ws.receive(timeout=2.0)
                # read after a quiet spell: the server counts an update once its
                # send returned, which can be after this client already had it
                sent = lv.dash.server.stats()[0]["updates"]
                with pytest.raises(asyncio.TimeoutError):
                    await ws.receive(timeout=1.0)
                assert lv.dash.server.stats()[0]["updates"] == sent
        run(main())
    finally:
        lv.close()


def test_two_clients_both_update(live: Live) -> None:
    async def follow(s, n):
        async with s.ws_connect(live.ws_url()) as ws:
            versions = []
            for _ in range(n):
                header, _, _ = await _next_update(ws)
                versions.append(header["version"])
                await _ack(ws, header)
            return versions

    async def main():
        async with aiohttp.ClientSession() as s:
            a, b = await asyncio.gather(follow(s, 15), follow(s, 15))
        for v in (a, b):
            assert v == sorted(v) and len(set(v)) == 15
    run(main())


def test_dragged_regions_change_the_virtual_image(live: Live) -> None:
    state = live.dash.state

    async def main():
        async with aiohttp.ClientSession() as s, s.ws_connect(live.ws_url()) as ws:
            await _follow_until(ws, lambda h, i: h["history"]["count"] >= 1)
            before = state.snapshots()[-1]
            assert before.regions["bf"][0] == pytest.approx((64 - 1) / 2)
            await ws.send_str(json.dumps({"type": "regions", "bf": [8, 56, 3],
                                          "adf": [31.5, 31.5, 10, 30]}))
            n = len(state.snapshots())
            await _follow_until(ws, lambda h, i: h["history"]["count"] >= min(n + 2, 5)
                                and state.snapshots()[-1].regions["bf"] == [8.0, 56.0, 3.0])
            return before, state.snapshots()[-1]

    before, after = run(main())
    assert after.regions["adf"] == [31.5, 31.5, 10.0, 30.0]
    assert after.images["bf"].mean() < 0.2 * before.images["bf"].mean(), \
        "the bright field off the direct beam is dark"


def test_history_view_and_pointer_frame(live: Live) -> None:
    async def main():
        async with aiohttp.ClientSession() as s, s.ws_connect(live.ws_url()) as ws:
            await _follow_until(ws, lambda h, i: h["history"]["count"] >= 2)
            old = live.dash.state.snapshots()[0]
            await ws.send_str(json.dumps({"type": "view", "history": 0}))
            await ws.send_str(json.dumps({"type": "pick", "y": 3, "x": 4}))
            header, images = await _follow_until(
                ws, lambda h, i: h["history"]["index"] == 0 and "frame" in i)
            assert header["version"] == old.version
            expected = old.thumbs[3, 4] if old.thumbs is not None else None
            return images["frame"], expected

    frame, expected = run(main())
    assert frame.shape == (64, 64) and frame.max() > frame.min()
    if expected is not None:
        assert np.corrcoef(frame.ravel(), np.log1p(expected).ravel())[0, 1] > 0.9


def test_bad_messages_are_answered_and_ignored(live: Live) -> None:
    async def main():
        async with aiohttp.ClientSession() as s, s.ws_connect(live.ws_url()) as ws:
            await ws.send_str(json.dumps({"type": "regions", "bf": [1, 1, "__import__('os')"],
                                          "adf": [1, 1, 2, 3]}))
            while True:
                msg = await ws.receive(timeout=30)
                if msg.type == aiohttp.WSMsgType.TEXT:
                    return json.loads(msg.data)
    answer = run(main())
    assert answer["type"] == "error" and "finite number" in answer["error"]
    assert live.dash.state.regions is None


def test_token_and_origin(ctx, data) -> None:
    assert DashboardServer(LiveState(), host="0.0.0.0").token, \
        "serving beyond loopback always needs a token"
    assert DashboardServer(LiveState(), host="127.0.0.1").token is None
    lv = Live(ctx, data, token="s3cret").start()
    try:
        async def main():
            base = f"http://127.0.0.1:{lv.port}"
            async with aiohttp.ClientSession() as s:
                async with s.get(base + "/") as r:
                    assert r.status == 403
                async with s.get(base + "/?token=s3cret") as r:
                    assert r.status == 200
                with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                    await s.ws_connect(lv.ws_url())
                assert e.value.status == 403
                with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                    await s.ws_connect(lv.ws_url("s3cret"), origin="http://evil.example")
                assert e.value.status == 403
                async with s.ws_connect(lv.ws_url("s3cret")) as ws:
                    header, _, _ = await _next_update(ws)
                    assert header["type"] == "update"
        run(main())
    finally:
        lv.close()


def test_the_sum_frame_is_rendered_less_often_than_the_scan_images() -> None:
    """While a scan runs, the frame-sized sum is rendered at most
    ``sum_fps`` times a second (kept and reported unchanged in between);
    the scan's images every time; a finished scan wholly."""
    from dataclasses import replace

    from libertem_live_dashboard import server
    from libertem_live_dashboard.state import Snapshot
    ramp = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    nav = np.arange(64, dtype=np.float32).reshape(8, 8)
    running = Snapshot(version=1, run_id=1, status="running", nav_shape=(8, 8),
                       sig_shape=(64, 64), damage_source=np.ones((8, 8), bool),
                       sources={"sum": ramp, "bf": nav, "adf": nav, "com_y": nav, "com_x": nav})
    first = server.render(running, None)
    later = replace(running, version=2, cache={},
                    sources=dict(running.sources, sum=ramp[::-1].copy(), bf=nav[::-1].copy()))
    second = server.render(later, first, sum_fps=1e-3)
    assert second.planes["sum"] is first.planes["sum"] and second.changed["sum"] is None
    assert second.changed["bf"] is not None
    done = server.render(replace(later, version=3, status="complete", cache={}), second,
                         sum_fps=1e-3)
    assert done.changed["sum"] is not None
    assert np.array_equal(done.planes["sum"].pixels, first.planes["sum"].pixels[::-1])


def test_an_acquisition_that_cannot_start_is_shown_and_tried_again(ctx, data) -> None:
    """A detector that refuses to arm (here: a closed connection) fails the
    run on the page; the continuous loop goes on trying, and stops when asked."""
    import threading

    from libertem_live_dashboard import runner as runner_mod
    from libertem_live_dashboard.runner import Runner
    state = LiveState()
    conn = ctx.make_connection("memory").open(data=data)
    conn.close()
    r = Runner(ctx, conn, state, mode="active", nav_shape=NAV, continuous=True)
    t = threading.Thread(target=r.run, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 30
        while len(r.errors) < 2:
            assert t.is_alive(), "the loop ended after a failed start"
            assert time.monotonic() < deadline, f"no second try in 30 s; errors {r.errors}"
            time.sleep(0.05)
        assert state.current.status.startswith("failed: cannot start an acquisition")
    finally:
        r.stop()
        t.join(10 + runner_mod.ERROR_PAUSE_S)
    assert not t.is_alive()


def test_pages_step_back_while_the_acquisition_is_behind_the_detector() -> None:
    """A scan whose received-but-undecoded frames are seconds of work gets
    its pages at most one update per ``behind_gap_s`` (the CPU is the
    acquisition's), told so in the header; a page's request is answered at
    once all the same; a scan that keeps up gets every update it acks."""
    from libertem_live_dashboard import server as server_mod
    state = LiveState()
    dash = DashboardServer(state, behind_gap_s=1.0).start()
    scan = SyntheticRun(state, fps=1000.0).start()

    async def count(ws, seconds: float) -> list[dict]:
        headers, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                header, _, _ = await _next_update(ws, timeout=max(0.01, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                break
            headers.append(header)
            await _ack(ws, header)
        return headers

    async def main():
        url = f"ws://127.0.0.1:{dash.port}/ws"
        async with aiohttp.ClientSession() as s, s.ws_connect(url) as ws:
            keeping_up = await count(ws, 2.0)
            scan.backlog = 5000  # 5 s of work waiting
            await _follow_until(ws, lambda h, i: h["slowed_s"] > 0, timeout=30)
            behind = await count(ws, 3.0)
            t0 = time.monotonic()
            await ws.send_str(json.dumps({"type": "pick", "y": 1, "x": 2}))
            await _next_update(ws)
            answered = time.monotonic() - t0
            return keeping_up, behind, answered

    try:
        keeping_up, behind, answered = run(main())
    finally:
        scan.stop()
        dash.stop()
    assert len(keeping_up) >= 10 and all(h["slowed_s"] == 0 for h in keeping_up)
    assert all(h["behind_s"] < server_mod.BEHIND_S for h in keeping_up)
    assert 1 <= len(behind) <= 4, [h["version"] for h in behind]
    assert all(h["slowed_s"] == 1.0 and h["behind_s"] > 3 for h in behind)
    assert answered < 0.5, f"a request waited {answered:.2f} s"
