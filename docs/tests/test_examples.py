"""The examples in ``examples/`` run and produce what they promise."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_live_demo_with_memory_driver(tmp_path: Path) -> None:
    out = tmp_path / "demo.png"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "live_demo.py"), "--detector", "memory",
         "--nav", "32", "32", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "equals the simulator's ground truth: True" in proc.stdout
    assert out.stat().st_size > 10_000
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
