"""Public names that load on first use (every driver package's __init__)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_lazy_names_in_a_real_package(tmp_path: Path) -> None:
    pkg = tmp_path / "lazypkg"
    pkg.mkdir()
    (pkg / "heavy.py").write_text("LOADED = True\nvalue = 41\n")
    (pkg / "__init__.py").write_text(
        "from libertem_live.driver import lazy_names\n"
        "OWN = 1\n"
        "__getattr__, __dir__ = lazy_names(__name__, {'value': '.heavy', "
        "'answer': ('lazypkg.heavy', 'value')}, also=['OWN'])\n")
    code = (
        "import sys, lazypkg\n"
        "assert 'lazypkg.heavy' not in sys.modules\n"
        "assert dir(lazypkg) == ['OWN', 'answer', 'value'], dir(lazypkg)\n"
        "assert lazypkg.value == 41 and lazypkg.answer == 41\n"
        "assert 'value' in vars(lazypkg)\n"
        "try:\n    lazypkg.nope\nexcept AttributeError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "module 'lazypkg' has no attribute 'nope'" in out.stdout
