"""The frame transport every driver shares.

A receiver (its own thread) copies each frame's payload once into a slot of
a shared-memory ring; only slot handles travel to the LiberTEM workers, which
decode straight out of the slot and mark the frames consumed.  See
``docs/transport.rst`` for the design and its measured throughput.
"""
from libertem_live.transport.ring import Ring, RingSpec, RingWriter, Stack
from libertem_live.transport.stream import FrameStream

__all__ = ["Ring", "RingSpec", "RingWriter", "Stack", "FrameStream"]
