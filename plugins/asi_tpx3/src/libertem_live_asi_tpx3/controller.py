"""Active mode for ASI TPX3: not available, and why.

The ASI software (Accos / the CheeTah T3 server) is configured, armed and
triggered by its own user interface; the TPX3 stream carries data only and
there is no control plane LiberTEM could use (protocols.md section 3). The
module exists so that every driver plugin has the same layout
(connection / controller / receiver / decode); it holds the one error that
active mode raises, with the way out.
"""
from __future__ import annotations

from typing import Any

from libertem_live.errors import AcquisitionStateError

__all__ = ["PassiveOnlyError", "active_mode_error"]


class PassiveOnlyError(AcquisitionStateError, NotImplementedError):
    """Raised for active-mode calls on an ASI TPX3 connection."""


def active_mode_error(params: dict[str, Any]) -> PassiveOnlyError:
    """The error for ``conn.get_active_controller(**params)``."""
    extra = f" (got parameters {sorted(params)})" if params else ""
    return PassiveOnlyError(
        "ASI TPX3 supports passive mode only: the detector is armed and triggered from the "
        f"ASI software, LiberTEM cannot control it{extra}. Use "
        "`pending = conn.wait_for_acquisition(timeout)` and "
        "`ctx.make_acquisition(conn=conn, pending_aq=pending)` instead"
    )
