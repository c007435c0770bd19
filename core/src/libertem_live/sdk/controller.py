"""Controllers a driver can use as they are."""
from __future__ import annotations

from libertem_live.errors import AcquisitionStateError


class PassiveOnlyError(AcquisitionStateError, NotImplementedError):
    """Active mode was asked of a detector that LiberTEM cannot arm (its own
    software starts every acquisition)."""
