"""What a driver may declare about fault kinds."""
from __future__ import annotations

import pytest

from libertem_live.driver import FaultKind
from libertem_live_testing import Capabilities


def test_inexpressible_kinds_carry_their_reason() -> None:
    caps = Capabilities(faults={"frame_gap"},
                        inexpressible={"corrupt_payload": "raw pixels carry no checksum"})
    assert caps.missing("fault:frame_gap") is None
    why = caps.missing("fault:corrupt_payload")
    assert why is not None and "raw pixels carry no checksum" in why
    assert "Capabilities.faults" in (caps.missing("fault:never_ends") or "")
    assert FaultKind.CORRUPT_PAYLOAD in caps.inexpressible


def test_a_kind_cannot_be_both_or_lack_a_reason() -> None:
    with pytest.raises(ValueError, match="both declared and inexpressible"):
        Capabilities(faults={"frame_gap"}, inexpressible={"frame_gap": "why"})
    with pytest.raises(ValueError, match="needs its reason"):
        Capabilities(inexpressible={"frame_gap": ""})
    with pytest.raises(ValueError):
        Capabilities(faults={"frame_gpa"})
