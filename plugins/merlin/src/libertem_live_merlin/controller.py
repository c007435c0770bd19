"""Active mode: LiberTEM configures the Merlin over the control port and starts
every run itself.

Order matters: settings are written before the format is read back (so the
DataSet's shape and dtype match what the detector will send), the data
socket is connected and drained of stale messages *before*
``CMD STARTACQUISITION`` (the acquisition header goes out right away), and
the receiver is running before any trigger (``soft_trigger=True`` or the
user's ``on_ready_for_data`` hook).  Every run ends with
``CMD STOPACQUISITION``, successful or not, so that an early stop or an
error never leaves the detector acquiring into a socket nobody reads.
"""
from __future__ import annotations

import logging
import socket
import threading
from typing import TYPE_CHECKING, Any, Optional, Union

from libertem_live.driver import FrameFormat, FrameFormatError, FrameStream

from .decode import MerlinDecoder
from .headers import sorted_format_for
from .wire import dtype_for

if TYPE_CHECKING:
    from .connection import MerlinConnection

log = logging.getLogger(__name__)

_started_lock = threading.Lock()
_started: set[tuple[str, int]] = set()


def _key(host: str, port: int) -> tuple[str, int]:
    try:
        return socket.gethostbyname(host), int(port)
    except OSError:
        return host, int(port)


def started_here(host: str, port: int) -> bool:
    """Whether an active run of this process started the Merlin behind this
    control port and has not stopped it yet.  Scripts written for LiberTEM-live
    0.3 send ``CMD STARTACQUISITION`` from ``on_ready_for_data`` themselves;
    the upstream-compatible control client asks this to tell that harmless
    second start from a detector busy with someone else's acquisition."""
    with _started_lock:
        return _key(host, port) in _started


def _mark(ctl: Any, running: bool) -> None:
    k = _key(ctl.host, ctl.port)
    with _started_lock:
        (_started.add if running else _started.discard)(k)

_FILE_FORMATS = {"sorted": 0, "binary": 0, "raw": 2, 0: 0, 2: 2}
_RAW_LAYOUTS = {(256, 256): "1x1", (512, 512): "2x2", (514, 514): "2x2G"}


def _ms(seconds: float) -> str:
    """Seconds -> the milliseconds the Merlin control port takes, without float noise."""
    return f"{seconds * 1e3:.9g}"


class MerlinActiveController:
    """Settings for an active Merlin acquisition; ``None`` leaves a setting as
    the detector has it.

    ``counter_depth`` (1, 6, 12, 24) -> COUNTERDEPTH;
    ``acquisition_time`` / ``acquisition_period``: **seconds**, like every
    time in libertem-live (DECTRIS ``count_time``/``frame_time`` too); they
    are sent as the milliseconds ACQUISITIONTIME/ACQUISITIONPERIOD expect;
    ``frames_per_trigger`` -> NUMFRAMESPERTRIGGER (scan width for line
    triggers; with ``soft_trigger`` and no value, the whole scan per trigger);
    ``trigger_start`` / ``trigger_stop`` -> TRIGGERSTART/TRIGGERSTOP (0
    internal, 5 soft); ``continuous_rw`` -> CONTINUOUSRW (not with 24 bit);
    ``file_format``: ``"sorted"`` (FILEFORMAT 0) or ``"raw"`` (2);
    ``run_headless`` -> RUNHEADLESS (default on: no GUI updates slowing the
    Merlin PC); ``file_enable`` -> FILEENABLE (default off: no saving on the
    Merlin PC); ``extra_settings``: further ``{NAME: value}`` SETs, written last.

    ``soft_trigger=True``: sets TRIGGERSTART 5 (unless given) and sends
    ``CMD SOFTTRIGGER`` once the receiver runs, so a test setup needs no hook.
    Otherwise trigger in ``on_ready_for_data``, e.g.
    ``env.aq.conn.get_control().cmd("SOFTTRIGGER")``, or start the scan engine
    there.  The scan size always becomes NUMFRAMESTOACQUIRE.
    """

    def __init__(self, counter_depth: Optional[int] = None, *,
                 acquisition_time: Optional[float] = None,
                 acquisition_period: Optional[float] = None,
                 frames_per_trigger: Optional[int] = None,
                 trigger_start: Optional[int] = None, trigger_stop: Optional[int] = None,
                 continuous_rw: Optional[bool] = None,
                 file_format: Union[str, int, None] = None,
                 run_headless: Optional[bool] = True, file_enable: Optional[bool] = False,
                 soft_trigger: bool = False,
                 extra_settings: Optional[dict[str, Any]] = None,
                 arm_timeout: float = 10.0, stop_command: str = "STOPACQUISITION"):
        if counter_depth is not None and counter_depth not in (1, 6, 12, 24):
            raise ValueError(f"counter_depth must be 1, 6, 12 or 24, got {counter_depth!r}")
        if file_format is not None and file_format not in _FILE_FORMATS:
            raise ValueError(f"file_format must be 'sorted' or 'raw' (or FILEFORMAT 0 / 2), "
                             f"got {file_format!r}")
        for name, v in (("acquisition_time", acquisition_time),
                        ("acquisition_period", acquisition_period)):
            if v is not None and not 0 < v < 60:
                raise ValueError(f"{name} is in seconds and must be in (0, 60), got {v!r}; "
                                 "did you pass milliseconds?")
        if soft_trigger and trigger_start is None:
            trigger_start = 5
        self.soft_trigger = soft_trigger
        self.frames_per_trigger = frames_per_trigger
        self.arm_timeout = arm_timeout
        self.stop_command = stop_command
        settings: list[tuple[str, Any]] = [
            ("RUNHEADLESS", None if run_headless is None else int(bool(run_headless))),
            ("FILEENABLE", None if file_enable is None else int(bool(file_enable))),
            ("FILEFORMAT", None if file_format is None else _FILE_FORMATS[file_format]),
            ("COUNTERDEPTH", counter_depth),
            ("CONTINUOUSRW", None if continuous_rw is None else int(bool(continuous_rw))),
            ("ACQUISITIONTIME", None if acquisition_time is None else _ms(acquisition_time)),
            ("ACQUISITIONPERIOD",
             None if acquisition_period is None else _ms(acquisition_period)),
            ("TRIGGERSTART", trigger_start),
            ("TRIGGERSTOP", trigger_stop),
            ("NUMFRAMESPERTRIGGER", frames_per_trigger),
        ]
        self.settings = [(k, v) for k, v in settings if v is not None]
        self.settings += list((extra_settings or {}).items())
        self._expect: Optional[MerlinDecoder] = None

    def _configure(self, conn: MerlinConnection) -> None:
        ctl = conn.get_control()
        for name, value in self.settings:
            ctl.set(name, value)

    def frame_format(self, conn: MerlinConnection) -> FrameFormat:
        """Write the settings, then read back what the frames will look like.
        The first frame of every run is checked against this."""
        self._configure(conn)
        ctl = conn.get_control()
        width, height = ctl.get_int("IMAGEX"), ctl.get_int("IMAGEY")
        depth = ctl.get_int("COUNTERDEPTH")
        raw = ctl.get_int("FILEFORMAT") == 2
        if raw:
            layout = _RAW_LAYOUTS.get((height, width))
            if layout is None:
                raise FrameFormatError(
                    f"the Merlin reports a {width}x{height} image in raw format (FILEFORMAT "
                    "2); raw decoding supports 1x1 (256x256) and 2x2 quad (512x512, or "
                    "514x514 with gaps). Use file_format='sorted' for this layout")
            dec = MerlinDecoder("R64", depth, layout, (height, width))
        else:
            pixel_format = sorted_format_for(depth)
            layout = _RAW_LAYOUTS.get((height, width), "Nx1")
            dec = MerlinDecoder(pixel_format, depth, layout, (height, width))
        self._expect = dec
        meta = {"detector": "merlin", "pixel_format": dec.pixel_format, "layout": layout,
                "counter_depth": depth, "settings": dict(self.settings)}
        return FrameFormat(sig_shape=dec.sig_shape, dtype=dtype_for(dec.pixel_format, depth),
                           decoder=dec, metadata=meta)

    def arm(self, conn: MerlinConnection, nimages: int) -> FrameStream:
        ctl = conn.get_control()
        conn.check_idle()
        if self._expect is None:
            self.frame_format(conn)
        if self.soft_trigger and self.frames_per_trigger is None:
            ctl.set("NUMFRAMESPERTRIGGER", nimages)
        ctl.set("NUMFRAMESTOACQUIRE", nimages)
        stale = conn.discard_stale()
        if stale:
            log.info("discarded %d stale messages on %s before arming", stale, conn.where)
        ctl.cmd("STARTACQUISITION")
        _mark(ctl, True)
        stream: Optional[FrameStream] = None
        try:
            stream = conn.receive_next(nimages, expect=self._expect,
                                       header_timeout=self.arm_timeout)
            if self.soft_trigger:
                ctl.cmd("SOFTTRIGGER")
            return stream
        except BaseException:
            if stream is not None:
                stream.close()
            _mark(ctl, False)
            try:
                ctl.cmd(self.stop_command)
            except Exception:
                log.warning("could not stop the Merlin after a failed arm", exc_info=True)
            raise

    def stop(self, conn: MerlinConnection, stream: FrameStream,
             error: BaseException | None) -> None:
        """End the run on the detector: a no-op for an acquisition that ran to its
        end, and what keeps an aborted one from streaming on."""
        ctl = conn.get_control()
        _mark(ctl, False)
        try:
            ctl.cmd(self.stop_command)
        except Exception:
            if error is None:
                raise
            log.warning("could not stop the Merlin after a failed acquisition",
                        exc_info=True)

    def determine_nav_shape(self, nimages: int) -> tuple[int, ...] | None:
        return None

    def __repr__(self) -> str:
        return (f"<MerlinActiveController settings={dict(self.settings)} "
                f"soft_trigger={self.soft_trigger}>")


__all__ = ["MerlinActiveController", "started_here"]
