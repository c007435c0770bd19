"""Frames of the memory driver are raw pixels."""
from libertem_live.transport.raw import RawDecoder

__all__ = ["RawDecoder"]
