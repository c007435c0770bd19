"""``libertem-live sim`` and ``libertem-live record``, run as the installed console
command; simulators are found through the plugin API (a toy distribution on
PYTHONPATH declares one, as a third-party driver would)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from toydists import make_dist

PLUGIN = """
from libertem_live.driver import PLUGIN_API_VERSION, DetectorInfo, hookimpl


def _open(**params):
    raise RuntimeError("not used")


@hookimpl
def libertem_live_detectors():
    return [
        DetectorInfo(name="toysim", open=_open, plugin_api=PLUGIN_API_VERSION,
                     description="a toy with a simulator", simulator="toy_sim_mod:main"),
        DetectorInfo(name="toybare", open=_open, plugin_api=PLUGIN_API_VERSION,
                     description="a toy without one"),
        DetectorInfo(name="toybroken", open=_open, plugin_api=PLUGIN_API_VERSION,
                     description="names a missing simulator", simulator="toy_no_such:main"),
    ]
"""

SIM = """
import sys
sys.stderr.write("SIM MODULE IMPORTED\\n")


def main(argv, prog=None):
    print(f"prog={prog} argv={argv}")
    return 3
"""


def _command() -> list[str]:
    exe = shutil.which("libertem-live", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the libertem-live console script is not installed in this environment")
    return [exe]


def _run(args: list[str], path: Path | None = None, cwd: Path | None = None,
         ) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    return subprocess.run(_command() + args, capture_output=True, text=True, env=env,
                          timeout=180, cwd=cwd)


@pytest.fixture
def toy_path(tmp_path: Path) -> Path:
    make_dist(tmp_path, "toy-sims", "1.0", {"toysim": "toy_plugin_mod"}, {
        "toy_plugin_mod": PLUGIN, "toy_sim_mod": SIM})
    return tmp_path


def test_sim_lists_only_drivers_with_a_simulator_and_imports_none(toy_path: Path) -> None:
    out = _run(["sim"], toy_path)
    assert out.returncode == 0, out.stderr
    names = [line.split()[0] for line in out.stdout.splitlines()[:-2] if line.strip()]
    assert "toysim" in names and "toybroken" in names
    assert "toybare" not in names and "memory" not in names
    assert "SIM MODULE IMPORTED" not in out.stderr


def test_sim_runs_a_third_party_simulator_with_its_arguments(toy_path: Path) -> None:
    out = _run(["sim", "toysim", "--port", "0", "--help"], toy_path)
    assert out.returncode == 3, out.stderr
    assert "prog=libertem-live sim toysim argv=['--port', '0', '--help']" in out.stdout


def test_sim_without_a_simulator_names_those_with_one(toy_path: Path) -> None:
    out = _run(["sim", "toybare"], toy_path)
    assert out.returncode == 1
    assert "'toybare' driver ships no simulator" in out.stderr
    assert "toysim" in out.stderr
    unknown = _run(["sim", "toysimm"], toy_path)
    assert unknown.returncode == 1 and "Did you mean 'toysim'" in unknown.stderr


def test_sim_naming_a_missing_module_is_a_clear_error(toy_path: Path) -> None:
    out = _run(["sim", "toybroken"], toy_path)
    assert out.returncode == 2
    assert "'toy_no_such:main'" in out.stderr and "DetectorInfo.simulator" in out.stderr
    assert "Traceback" not in out.stderr


def test_subcommand_help_shows_defaults() -> None:
    out = _run(["record", "--help"])
    assert out.returncode == 0
    assert out.stdout.startswith("usage: libertem-live record")
    assert "(default: 60.0)" in out.stdout and "(default: pipelined)" in out.stdout


DATA = np.arange(2 * 3 * 4 * 5, dtype=np.int64).reshape(2, 3, 4, 5)


def test_record_memory_writes_the_ground_truth_and_prints_the_ledger(tmp_path: Path) -> None:
    out_file = tmp_path / "rec.npy"
    out = _run(["record", "memory", "--nav-shape", "2", "3", "--out", str(out_file),
                "--executor", "inline", "--no-progress",
                "--param", f"data={DATA.tolist()!r}", "--param", "frames_per_stack=2"])
    assert out.returncode == 0, out.stderr
    np.testing.assert_array_equal(np.load(out_file), DATA)
    assert "expected=6, received=6" in out.stdout and "processed=6, missing=0" in out.stdout
    sidecar = json.loads((tmp_path / "rec.json").read_text())
    assert sidecar["complete"] and sidecar["ledger"]["received"] == 6


def test_record_refuses_to_overwrite(tmp_path: Path) -> None:
    out_file = tmp_path / "rec.npy"
    out_file.write_bytes(b"precious")
    out = _run(["record", "memory", "--nav-shape", "2", "3", "--out", str(out_file),
                "--param", "data=[[[[1]]]]"])
    assert out.returncode == 2
    assert "exists; pass --overwrite" in out.stderr
    assert out_file.read_bytes() == b"precious"


@pytest.mark.parametrize("param,message", [
    ("data", "--param 'data': expected KEY=VALUE"),
    ("=5", "expected KEY=VALUE"),
    ("no_such_parameter=1", "takes no parameter 'no_such_parameter'; it takes data,"),
])
def test_record_bad_param_is_a_clear_error(tmp_path: Path, param: str, message: str) -> None:
    out = _run(["record", "memory", "--nav-shape", "1", "1", "--out", str(tmp_path / "x.npy"),
                "--executor", "inline", "--param", "data=[[[[1]]]]", "--param", param])
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "x.npy").exists()


def test_record_acquisition_error_has_message_and_ledger_not_traceback(tmp_path: Path) -> None:
    out = _run(["record", "memory", "--nav-shape", "2", "3", "--out", str(tmp_path / "f.npy"),
                "--executor", "inline", "--no-progress", "--param", f"data={DATA.tolist()!r}",
                "--param", "fault='frame_gap@2'", "--param", "frames_per_stack=1"])
    assert out.returncode == 1
    assert "FrameGapError" in out.stderr and "Traceback" not in out.stderr
    assert "missing=1" in out.stdout
    assert (tmp_path / "f.incomplete.npy").exists() and not (tmp_path / "f.npy").exists()


COMMANDS_PLUGIN = """
from libertem_live.driver import CommandInfo, hookimpl


@hookimpl
def libertem_live_commands():
    return [CommandInfo(name="toycmd", main="toy_sim_mod:main", help="a toy's own program"),
            CommandInfo(name="record", main="toy_sim_mod:main", help="claims a core name"),
            CommandInfo(name="toymissing", main="toy_no_such:main", help="names no module")]
"""


@pytest.fixture
def toy_commands(tmp_path: Path) -> Path:
    make_dist(tmp_path, "toy-commands", "1.0", {"toycmd": "toy_cmd_plugin_mod"}, {
        "toy_cmd_plugin_mod": COMMANDS_PLUGIN, "toy_sim_mod": SIM})
    return tmp_path


def test_a_plugin_adds_a_subcommand(toy_commands: Path) -> None:
    """``libertem-live toycmd ARGS`` runs the plugin's function with every
    argument after the name (its own --help included); the core's own names
    stay the core's, and --help says which plugin command was left out."""
    out = _run(["toycmd", "--port", "0", "--help"], toy_commands)
    assert out.returncode == 3, out.stderr
    assert "prog=libertem-live toycmd argv=['--port', '0', '--help']" in out.stdout
    helped = _run(["--help"], toy_commands)
    assert helped.returncode == 0, helped.stderr
    text = "".join(helped.stdout.split())  # argparse wraps lines anywhere
    assert "atoy'sownprogram[toy-commands]" in text
    assert "'record'oftoy-commands:acommandoflibertem-live-core" in text
    assert "SIM MODULE IMPORTED" not in helped.stderr, "listing imports no command's module"
    record = _run(["record", "--help"], toy_commands)
    assert record.returncode == 0 and "usage: libertem-live record" in record.stdout
    missing = _run(["toymissing"], toy_commands)
    assert missing.returncode == 2
    assert "'toy_no_such:main'" in missing.stderr and "CommandInfo.main" in missing.stderr
    assert "Traceback" not in missing.stderr
