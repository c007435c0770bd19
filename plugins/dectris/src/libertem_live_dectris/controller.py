"""Active mode: LiberTEM configures and arms the detector for every run.

Stream options are set *before* arming (the DCU starts pushing as soon as
it is armed), the image count follows the trigger mode (``inte`` needs
``ntrigger`` too), and the detector is disarmed after every run, successful
or not.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from libertem_live.driver import (
    AcquisitionTimeoutError, FrameFormat, FrameStream, NavShapeError,
)

from libertem_live_dectris.wire import TRIGGER_MODES, images_per_series

if TYPE_CHECKING:
    from libertem_live_dectris.connection import DectrisConnection

log = logging.getLogger(__name__)

_ORDERED_SETTINGS = ("roi_mode", "roi_y_size", "roi_bit_depth", "count_time", "frame_time",
                     "compression", "mask_to_zero")


class DectrisActiveController:
    """Settings for an active acquisition; all optional.

    ``trigger_mode`` (``exte``, ``exts``, ``inte``, ``ints``) also sets the
    image counts for the scan; ``count_time`` / ``frame_time`` (s),
    ``compression``, ``roi_mode``, ``roi_y_size``, ``roi_bit_depth``,
    ``mask_to_zero`` are written in the order a DCU needs;
    ``enable_corrections`` applies the detector's pixel mask (read over
    REST) as excluded pixels; in stream V2 the mask of the series' start
    message is applied in any case, as in passive mode.
    ``enable_file_writing=False`` switches the DCU's file writer off.
    """

    def __init__(self, trigger_mode: str | None = None, *, count_time: float | None = None,
                 frame_time: float | None = None, compression: str | None = None,
                 roi_mode: str | None = None, roi_y_size: int | None = None,
                 roi_bit_depth: int | None = None, mask_to_zero: bool | None = None,
                 enable_corrections: bool = False, enable_file_writing: bool | None = None,
                 arm_timeout: float = 10.0):
        if trigger_mode is not None and trigger_mode not in TRIGGER_MODES:
            raise ValueError(f"trigger_mode must be one of {TRIGGER_MODES}, got {trigger_mode!r}")
        self.trigger_mode = trigger_mode
        self.settings = {k: v for k, v in {
            "roi_mode": roi_mode, "roi_y_size": roi_y_size, "roi_bit_depth": roi_bit_depth,
            "count_time": count_time, "frame_time": frame_time, "compression": compression,
            "mask_to_zero": mask_to_zero}.items() if v is not None}
        self.enable_corrections = enable_corrections
        self.enable_file_writing = enable_file_writing
        self.arm_timeout = arm_timeout
        self.series: int | None = None
        self._format: FrameFormat | None = None
        self._excluded: np.ndarray | None = None

    def _configure(self, conn: DectrisConnection) -> None:
        api = conn.get_api_client()
        if self.enable_file_writing is not None:
            api.setFileWriterConfig("mode", "enabled" if self.enable_file_writing else "disabled")
        for name in _ORDERED_SETTINGS:
            if name in self.settings:
                api.setDetectorConfig(name, self.settings[name])
        conn.enable_stream()

    def frame_format(self, conn: DectrisConnection) -> FrameFormat:
        self._configure(conn)
        api = conn.get_api_client()
        self._excluded = api.pixel_mask() != 0 if self.enable_corrections else None
        fmt = conn.frame_format(api.series_config(), excluded=self._excluded)
        fmt.metadata["settings"] = dict(self.settings, trigger_mode=self.trigger_mode)
        # stream V2 announces its pixel mask only after the arm (see arm())
        self._format = fmt
        return fmt

    def _set_counts(self, conn: DectrisConnection, nimages: int) -> None:
        api = conn.get_api_client()
        mode = self.trigger_mode
        if mode is None:
            return
        api.setDetectorConfig("ntrigger", 1)
        api.setDetectorConfig("nimages", 1)
        api.setDetectorConfig("trigger_mode", mode)
        if mode in ("exte", "exts", "inte"):
            api.setDetectorConfig("ntrigger", nimages)
        else:  # ints: one software trigger starts the whole scan
            api.setDetectorConfig("nimages", nimages)

    def arm(self, conn: DectrisConnection, nimages: int) -> FrameStream:
        api = conn.get_api_client()
        # a series left armed (a passive acquisition never consumed, a crashed
        # script) would refuse the arm; disarming an idle DCU is harmless
        api.sendDetectorCommand("disarm")
        self._set_counts(conn, nimages)
        cfg = api.series_config()
        n_detector = images_per_series(cfg.trigger_mode, cfg.nimages, cfg.ntrigger)
        if n_detector != nimages:
            raise NavShapeError(
                f"the detector is configured for {n_detector} images (trigger_mode "
                f"{cfg.trigger_mode!r}, nimages {cfg.nimages}, ntrigger {cfg.ntrigger}), but "
                f"the scan has {nimages} positions; pass trigger_mode= to "
                "get_active_controller so LiberTEM sets the counts, or configure the detector")
        reply = api.sendDetectorCommand("arm")
        series = int(reply["sequence id"])
        self.series = series
        try:
            if conn.stream == "v2":
                start2 = conn.find_series_v2(self.arm_timeout, series=series)
                if start2 is None:
                    raise AcquisitionTimeoutError(
                        f"the detector was armed (series {series}) but its stream V2 start "
                        f"message did not arrive on {conn.where} within {self.arm_timeout:g} s: "
                        "is the stream interface enabled, its format 'cbor' and the port right?")
                if self._format is not None:
                    # LiberTEM reads the corrections when the run starts, after the arm
                    conn.apply_start_v2(self._format, start2, excluded=self._excluded)
                return conn.start_series_v2(start2, nimages)
            start = conn.find_series(self.arm_timeout, series=series)
            if start is None:
                raise AcquisitionTimeoutError(
                    f"the detector was armed (series {series}) but its global header did not "
                    f"arrive on {conn.where} within {self.arm_timeout:g} s: is the stream "
                    "interface enabled and the data port right?")
            return conn.start_series(start, nimages)
        except BaseException:
            api.sendDetectorCommand("disarm")
            raise

    def stop(self, conn: DectrisConnection, stream: FrameStream,
             error: BaseException | None) -> None:
        try:
            conn.get_api_client().sendDetectorCommand("disarm")
        except Exception:
            if error is None:
                raise
            log.warning("could not disarm the detector after a failed acquisition",
                        exc_info=True)

    def determine_nav_shape(self, nimages: int) -> tuple[int, ...] | None:
        return None
