"""The receive loop every driver runs: one thread per acquisition that asks
the driver's framing for frames and does everything else.

Why one loop: stop requests, flushing for live updates, the idle time-out,
the wait for the end-of-series marker, booking frames in the ledger and
turning socket trouble into errors that say which frame and what to do are
the same for every detector.  Written once here, a driver only says how to
read the next frames of its wire format (:class:`Framing`).
"""
from __future__ import annotations

import logging
import threading
import time
import warnings
from typing import Protocol

from libertem_live.errors import (
    AcquisitionError, AcquisitionTimeoutError, DetectorConnectionError, MissingEndWarning,
    StalledError, StreamTruncatedError,
)
from libertem_live.sdk.signals import (
    EndOfSeries, IdleTimeout, PeerClosed, ReceiveSignal, Stalled, Stopped, Truncated,
)
from libertem_live.transport.ring import RingWriter
from libertem_live.transport.stream import FrameStream

log = logging.getLogger(__name__)

FLUSH_LATENCY_S = 0.02
"""A partly filled ring slot is published at the latest this long after its
first frame, so live results at low frame rates do not wait for slots to fill
(50 updates per second is more than a screen shows)."""

END_TIMEOUT_S = 2.0
"""How long, after the last expected frame, the loop waits for the
detector's end-of-series marker before it warns that none came."""


class Framing(Protocol):
    """A driver's wire format, as the receive loop uses it.

    ``receive`` reads what the detector sent and writes the frames into
    ``out`` under the indices the detector gave them (0-based within the
    series): ``out.put(index, payload)`` per frame, or the batch methods of
    the :class:`~libertem_live.transport.ring.RingWriter`.  It returns
    ``True`` while the series goes on and ``False`` once it read the
    series' end marker.  When nothing arrives it must return within about a
    tenth of a second (having written nothing, or raising
    :class:`~libertem_live.sdk.signals.IdleTimeout`), so that the loop can
    notice stop requests and time-outs; it may also raise the other signals
    of :mod:`libertem_live.sdk.signals`, or an
    :class:`~libertem_live.errors.AcquisitionError` of its own.  It never
    calls ``flush`` on ``out``: the loop does.
    """

    def receive(self, out: RingWriter, stop: threading.Event) -> bool: ...


class ReceiveLoop:
    """Runs a :class:`Framing` for one :class:`FrameStream` in its own thread.

    ``timeout``: seconds without a frame (also before the first) before the
    acquisition fails with :class:`AcquisitionTimeoutError`.  The thread is
    stopped and joined when the stream closes; a thread that does not stop
    within ``join_timeout`` is reported in the log and stays listed in
    :func:`stuck_receivers` (the conformance kit fails the driver for it).
    """

    def __init__(self, stream: FrameStream, framing: Framing, *, name: str,
                 timeout: float, source: str, flush_latency: float = FLUSH_LATENCY_S,
                 end_timeout: float | None = None, join_timeout: float = 10.0):
        self.stream = stream
        self.framing = framing
        self.timeout = float(timeout)
        self.source = source
        self.flush_latency = flush_latency
        self.end_timeout = min(self.timeout, END_TIMEOUT_S) if end_timeout is None else end_timeout
        self.join_timeout = join_timeout
        self.frames = 0
        self.ended = threading.Event()
        """Set when the end marker was read (or the loop gave up waiting)."""
        self._complete_at: float | None = None
        self._out: RingWriter | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        stream.on_close(self.stop)

    def start(self) -> ReceiveLoop:
        _LIVE.add(self)
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # --- the thread ----------------------------------------------------------------
    def _run(self) -> None:
        stream = self.stream
        try:
            self._receive(stream)
        except Stopped:
            stream.ledger.finish_short()
        except BaseException as e:  # noqa: BLE001 - every failure reaches the consumer
            if self._complete_at is not None:
                log.warning("%s: after the last frame: %s", self.source, e)
                stream.ledger.note(f"after the last frame: {e}")
            elif not stream.stopped:
                self._publish_what_came()
                stream.fail(self._translate(e))
        finally:
            self.ended.set()

    def _publish_what_came(self) -> None:
        """Frames complete before a failure still count (and get processed)."""
        out = self._out
        if out is None:
            return
        try:
            out.flush()
            self.frames = out.frames
        except Exception:  # noqa: BLE001 - the original error matters more
            log.debug("could not publish the frames before the failure", exc_info=True)

    def _receive(self, stream: FrameStream) -> None:
        out = self._out = stream.writer()
        stop = stream.stop_event
        expected = stream.expected
        receive = self.framing.receive
        now = time.monotonic()
        last_frame = last_flush = now
        while True:
            if stop.is_set():
                raise Stopped("stop requested")
            try:
                more = receive(out, stop)
            except EndOfSeries:
                more = False
            except IdleTimeout:
                more = True
            now = time.monotonic()
            n = out.frames
            if n != self.frames:
                self.frames = n
                last_frame = now
            elif out.pending:
                out.flush()
                last_flush = now
            if out.pending and now - last_flush >= self.flush_latency:
                out.flush()
                last_flush = now
            if not more:
                break
            if expected is not None and out.next_index >= expected:
                self._all_frames_in(out, expected)
                return
            if now - last_frame > self.timeout:
                raise IdleTimeout(f"no frame for {self.timeout:g} s")
        out.flush()
        if expected is not None and out.next_index < expected:
            raise StreamTruncatedError(
                f"the {self.source} ended the series after {self.frames} frames, but "
                f"{expected} were expected; check the detector's frame count (it must equal the scan's "
                "positions) and whether the scan was stopped early")
        stream.finish()

    def _all_frames_in(self, out: RingWriter, expected: int) -> None:
        """Every expected frame is in: end the stream at once (the UDFs need
        no more), then read the end marker so that the next series starts
        on a clean stream."""
        out.flush()
        if out.next_index > expected:
            raise AcquisitionError(
                f"the {self.source} sent frame {out.next_index - 1}, but the series "
                f"announced {expected} frames (0..{expected - 1})")
        self.stream.finish()
        self._complete_at = time.monotonic()
        deadline = self._complete_at + self.end_timeout
        stop = self.stream.stop_event
        while time.monotonic() < deadline:
            try:
                more = self.framing.receive(out, _NEVER)
            except EndOfSeries:
                more = False
            except IdleTimeout:
                more = True
            if out.frames > self.frames:
                out.flush()
                raise AcquisitionError(
                    f"the {self.source} sent more frames than the {expected} announced; "
                    "the extra ones were dropped")
            if not more:
                return
            if stop.is_set() and self._closing_early:
                return
        self.stream.ledger.note("the detector sent no end-of-series marker")
        warnings.warn(MissingEndWarning(
            f"every one of the {expected} frames came from the {self.source}, but no "
            f"end-of-series marker within {self.end_timeout:g} s. The result is complete; "
            "the detector may still think it is acquiring, so check it before the next scan"),
            stacklevel=1)

    _closing_early = False

    def _translate(self, e: BaseException) -> BaseException:
        """A signal or foreign exception -> the error the user sees."""
        ledger = self.stream.ledger
        n, expected = self.frames, self.stream.expected
        of = "" if expected is None else f" of {expected}"
        if isinstance(e, AcquisitionError):
            if e.ledger is None:
                e.ledger = ledger
            return e
        detail = f" ({e.detail})" if isinstance(e, ReceiveSignal) and e.detail else ""
        if isinstance(e, IdleTimeout):  # raised by the loop itself
            what = "no frame at all" if n == 0 else f"no frame after frame {n - 1}"
            return AcquisitionTimeoutError(
                f"{what} from the {self.source} for {self.timeout:g} s ({n}{of} frames "
                "received). Is the detector triggered and the scan running? For slow scans "
                "open the connection with a larger timeout", ledger)
        if isinstance(e, Stalled):
            return StalledError(
                f"the {self.source} stopped sending in the middle of frame {n}{detail}; "
                f"{n}{of} frames were complete. Check the detector and the network, then "
                "repeat the scan", ledger)
        if isinstance(e, Truncated):
            return DetectorConnectionError(
                f"the {self.source} closed the connection in the middle of frame {n}"
                f"{detail}; {n}{of} frames were complete. The detector software stopped or "
                "the network dropped; check the detector, then repeat the scan", ledger)
        if isinstance(e, PeerClosed):
            return DetectorConnectionError(
                f"the {self.source} closed the connection after {n}{of} frames{detail}. "
                "The detector software stopped or restarted, or the network dropped; check "
                "the detector, then repeat the scan", ledger)
        err = AcquisitionError(
            f"the receiver for the {self.source} failed at frame {n}: "
            f"{type(e).__name__}: {e}", ledger)
        err.__cause__ = e
        return err

    # --- control from other threads --------------------------------------------------
    def stop(self) -> None:
        """Stop the thread and wait for it (the stream is closing).  A
        complete series still gets its bounded wait for the end marker."""
        if self._thread is threading.current_thread():
            return
        self._closing_early = self._complete_at is None
        self.stream.stop_event.set()
        if self._thread.is_alive():
            self._thread.join(self.join_timeout)
        if self._thread.is_alive():
            log.error("the receiver thread %s did not stop within %.1f s; its driver does "
                      "not honour the stop flag", self._thread.name, self.join_timeout)
        else:
            _LIVE.discard(self)


class _Never:
    """A stop flag that is never set: the wait for the end marker has its
    own deadline and must not be cut short by the stream closing."""

    def is_set(self) -> bool:
        return False

    def wait(self, timeout: float | None = None) -> bool:
        if timeout:
            time.sleep(min(timeout, 0.1))
        return False


_NEVER: threading.Event = _Never()  # type: ignore[assignment]
_LIVE: set[ReceiveLoop] = set()


def stuck_receivers() -> list[str]:
    """Names of receiver threads that were asked to stop and did not."""
    return sorted(loop._thread.name for loop in list(_LIVE)
                  if loop.stream.stopped and loop.alive)
