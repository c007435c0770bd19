"""The ASI TPX3 simulator, apart from the driver: a TCP server of the sparse
CSR stream (:mod:`.server`), synthetic sources with ground truth and capture
replay (:mod:`.source`), the core's fault kinds on this wire (:mod:`.faults`),
the chunk encoder (:mod:`.encode`) and the command line (:mod:`.__main__`,
``python -m libertem_live_asi_tpx3.sim --help``)."""
from __future__ import annotations

from .camera_sim import TpxCameraSim
from .faults import INEXPRESSIBLE, SUPPORTED_FAULTS
from .server import DEFAULT_PORT, Tpx3Sim, write_capture
from .source import SynthAcquisition, SynthConfig

__all__ = ["Tpx3Sim", "TpxCameraSim", "write_capture", "SynthConfig", "SynthAcquisition", "SUPPORTED_FAULTS", "INEXPRESSIBLE",
           "DEFAULT_PORT"]
