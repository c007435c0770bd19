"""Frames of the memory driver are raw pixels."""
from libertem_live.driver import RawDecoder

__all__ = ["RawDecoder"]
