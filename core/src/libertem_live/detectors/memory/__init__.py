"""The built-in ``memory`` driver: streams a numpy array as if it came from a
detector, through the same receive loop and ring as every network driver.

It registers through the ``libertem_live.detectors`` entry point exactly as a
third-party driver does (``plugin.py``), imports only
:mod:`libertem_live.driver`, and has the rooms every driver has, so it is the
template to copy:

* ``plugin.py``: the hook implementation (cheap to import);
* ``connection.py``: the connection on :class:`~libertem_live.driver.BaseConnection`;
* ``controller.py``: active mode;
* ``receiver.py``: the framing the core's receive loop runs;
* ``decode.py``: bytes -> pixels in the workers;
* ``errors.py``: the driver's own error classes.

A network driver adds ``client.py`` (control plane), ``wire.py`` (parsing,
no I/O) and ``sim/`` (its simulator).
"""
from __future__ import annotations

from libertem_live.driver import lazy_names

__all__ = ["MemoryAcquisition", "MemoryConnectionBuilder"]

# upstream's names; every live acquisition is a LiveAcquisition
__getattr__, __dir__ = lazy_names(__name__, {
    "MemoryAcquisition": ("libertem_live.driver", "LiveAcquisition"),
    "MemoryConnectionBuilder": "libertem_live.detectors.memory.compat",
}, also=__all__)
