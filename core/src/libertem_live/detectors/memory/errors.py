"""Errors of the memory driver: it raises the core's classes unchanged (an
array cannot be unreachable or corrupt); listed here so that every driver
has the same rooms."""
from libertem_live.driver import AcquisitionStateError, NavShapeError

__all__ = ["AcquisitionStateError", "NavShapeError"]
