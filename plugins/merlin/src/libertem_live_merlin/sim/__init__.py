"""A simulated Quantum Detectors Merlin: control and data TCP ports.

:class:`MerlinSim` (:mod:`.server`) serves MPX control requests and streams
acquisitions of pre-encoded frames (:mod:`.source`, :mod:`.encode`) with a
known ground truth; :mod:`.faults` maps the kit's stream faults onto the
Merlin data port.  Run standalone: ``python -m libertem_live_merlin.sim``.
It shares the wire format (:mod:`..wire`, :mod:`..headers`) with the driver,
never the driver's receiver or connection.
"""
from __future__ import annotations

from .camera_sim import CameraSim, TriggerClient
from .faults import INEXPRESSIBLE, SUPPORTED_FAULTS
from .server import MerlinSim

__all__ = ["MerlinSim", "SUPPORTED_FAULTS", "INEXPRESSIBLE", "CameraSim", "TriggerClient"]
