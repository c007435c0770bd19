"""Active mode for the memory driver: arming starts streaming the array."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from libertem_live.driver import FrameFormat, FrameStream, NavShapeError

if TYPE_CHECKING:
    from libertem_live.detectors.memory.connection import MemoryConnection


class MemoryController:
    def __init__(self, settings: dict[str, Any] | None = None,
                 nav_shape: tuple[int, ...] | None = None):
        self.settings = dict(settings or {})
        self.nav_shape = nav_shape
        self.armed = 0
        self.stopped = 0

    def frame_format(self, conn: MemoryConnection) -> FrameFormat:
        fmt = conn.frame_format()
        fmt.metadata["settings"] = dict(self.settings)
        return fmt

    def arm(self, conn: MemoryConnection, nimages: int) -> FrameStream:
        if nimages > conn.nframes:
            raise NavShapeError(
                f"the memory detector holds {conn.nframes} frames, but the acquisition "
                f"asks for {nimages}"
            )
        self.armed += 1
        return conn.start_series(nimages)

    def stop(self, conn: MemoryConnection, stream: FrameStream,
             error: BaseException | None) -> None:
        self.stopped += 1

    def determine_nav_shape(self, nimages: int | None) -> tuple[int, ...] | None:
        """The array is the scan: its nav axes are the scan shape when the
        acquisition does not give one (as upstream's memory detector did)."""
        if self.nav_shape is None:
            return None
        if nimages is not None and math.prod(self.nav_shape) != nimages:
            return None
        return tuple(self.nav_shape)
