"""Driver discovery and its errors, with real distributions on disk."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from libertem_live.api import LiveContext
from libertem_live.errors import DriverError, UnknownDetectorError
from libertem_live.plugin import PLUGIN_API_VERSION

from toydists import GOOD_DRIVER, make_dist, registry_for


def _good(name: str, api: int = PLUGIN_API_VERSION) -> str:
    return GOOD_DRIVER.replace("{name}", name).replace("{api}", str(api))


@pytest.fixture
def ctx_factory():
    made = []

    def make(registry):
        from libertem.executor.inline import InlineJobExecutor
        ctx = LiveContext(executor=InlineJobExecutor(), registry=registry)
        made.append(ctx)
        return ctx
    yield make
    for ctx in made:
        ctx.close()


def test_unknown_name_suggests_and_lists(tmp_path: Path, ctx_factory) -> None:
    make_dist(tmp_path, "toy-alpha", "1.2.3", {"alpha": "toy_alpha_mod"},
              {"toy_alpha_mod": _good("alpha")})
    ctx = ctx_factory(registry_for(tmp_path))
    with pytest.raises(UnknownDetectorError) as info:
        ctx.make_connection("alhpa")
    msg = str(info.value)
    assert "Did you mean 'alpha'?" in msg
    assert "alpha (toy-alpha 1.2.3)" in msg
    assert ctx.make_connection("alpha").open(x=1) == ("alpha", {"x": 1})


def test_broken_driver_keeps_traceback_and_hides_nothing(tmp_path: Path, ctx_factory) -> None:
    make_dist(tmp_path, "toy-good", "1.0", {"good": "toy_good_mod"},
              {"toy_good_mod": _good("good")})
    make_dist(tmp_path, "toy-broken", "0.9", {"broken": "toy_broken_mod"},
              {"toy_broken_mod": "import numpy\nraise ImportError('libfoo.so missing')\n"})
    ctx = ctx_factory(registry_for(tmp_path))
    assert ctx.make_connection("good").open() == ("good", {})
    with pytest.raises(DriverError) as info:
        ctx.make_connection("broken")
    msg = str(info.value)
    assert "broken (toy-broken 0.9)" in msg and "libfoo.so missing" in msg
    assert "good (toy-good 1.0)" in msg, "the message names the drivers that work"
    assert isinstance(info.value.__cause__, ImportError), "original exception is chained"
    assert info.value.__cause__.__traceback__ is not None


def test_two_drivers_claiming_one_name(tmp_path: Path, ctx_factory) -> None:
    make_dist(tmp_path, "toy-one", "1.0", {"same": "toy_one_mod"}, {"toy_one_mod": _good("same")})
    make_dist(tmp_path, "toy-two", "2.0", {"same": "toy_two_mod"}, {"toy_two_mod": _good("same")})
    ctx = ctx_factory(registry_for(tmp_path))
    with pytest.raises(DriverError, match="two drivers claim the name 'same'") as info:
        ctx.make_connection("same")
    assert "toy-one" in str(info.value) and "toy-two" in str(info.value)


def test_incompatible_plugin_api(tmp_path: Path, ctx_factory) -> None:
    make_dist(tmp_path, "toy-old", "0.1", {"old": "toy_old_mod"},
              {"toy_old_mod": _good("old", api=PLUGIN_API_VERSION + 1)})
    ctx = ctx_factory(registry_for(tmp_path))
    with pytest.raises(DriverError, match="plugin API version") as info:
        ctx.make_connection("old")
    assert "toy-old" in str(info.value)


def test_entry_point_without_detectors(tmp_path: Path, ctx_factory) -> None:
    make_dist(tmp_path, "toy-empty", "0.1", {"empty": "toy_empty_mod"},
              {"toy_empty_mod": "x = 1\n"})
    ctx = ctx_factory(registry_for(tmp_path))
    with pytest.raises(DriverError, match="registers no detector"):
        ctx.make_connection("empty")


def test_installed_memory_driver_is_listed() -> None:
    import libertem_live
    rows = {r["name"]: r for r in libertem_live.list_detectors()}
    assert rows["memory"]["status"] == "ok"
    assert rows["memory"]["distribution"] == "libertem-live-core"
    assert rows["memory"]["version"] == libertem_live.__version__


def test_cli_lists_detectors() -> None:
    out = subprocess.run([sys.executable, "-m", "libertem_live.cli", "detectors"],
                         capture_output=True, text=True, check=True).stdout
    assert "memory" in out and "libertem-live-core" in out


def test_plugin_hook_sees_lifecycle(tmp_path: Path, ctx_factory) -> None:
    """An installed plugin (a scan engine, say) receives the same hook calls."""
    import numpy as np
    from libertem.udf.sum import SumUDF
    from libertem_live.api import Hooks

    make_dist(tmp_path, "toy-scanengine", "1.0", {"scanengine": "toy_scan_mod"}, {
        "toy_scan_mod": _good("scanengine") + """
CALLS = []

@hookimpl
def on_ready_for_data(env):
    CALLS.append(("ready", tuple(env.aq.shape.nav)))
""",
        "toy_mem_mod": """
from libertem_live.detectors.memory.plugin import libertem_live_detectors
""",
    })
    make_dist(tmp_path, "toy-mem", "1.0", {"memory": "toy_mem_mod"}, {})
    ctx = ctx_factory(registry_for(tmp_path))
    import toy_scan_mod
    user_calls = []

    class Mine(Hooks):
        def on_ready_for_data(self, env):
            user_calls.append("user")

    data = np.ones((2, 3, 4, 4), dtype=np.uint8)
    with ctx.make_connection("memory").open(data=data) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(2, 3), hooks=Mine())
        res = ctx.run_udf(dataset=aq, udf=SumUDF())
    assert res["intensity"].data.sum() == 6 * 16
    assert toy_scan_mod.CALLS == [("ready", (2, 3))]
    assert user_calls == ["user"]


def test_misspelt_hook_is_an_error_naming_distribution_and_hook(tmp_path: Path,
                                                                 ctx_factory) -> None:
    make_dist(tmp_path, "toy-typo", "0.3", {"typo": "toy_typo_mod"}, {"toy_typo_mod": """
from libertem_live.plugin import hookimpl, DetectorInfo

@hookimpl
def libertem_live_detector():
    return [DetectorInfo(name="typo", open=dict)]
"""})
    make_dist(tmp_path, "toy-scan", "1.1", {"scan": "toy_scan_typo_mod"}, {
        "toy_scan_typo_mod": _good("scan") + """
@hookimpl
def on_ready_for_dta(env):
    pass
"""})
    make_dist(tmp_path, "toy-fine", "1.0", {"fine": "toy_fine_mod"},
              {"toy_fine_mod": _good("fine")})
    ctx = ctx_factory(registry_for(tmp_path))
    with pytest.raises(DriverError) as info:
        ctx.make_connection("typo")
    msg = str(info.value)
    assert "toy-typo 0.3" in msg
    assert "'libertem_live_detector'" in msg
    assert "did you mean 'libertem_live_detectors'?" in msg
    with pytest.raises(DriverError, match=r"toy-scan 1\.1.*'on_ready_for_dta' \(did you "
                                          r"mean 'on_ready_for_data'\?\)"):
        ctx.make_connection("scan")
    assert ctx.make_connection("fine").open() == ("fine", {}), "the others still work"


def test_optional_hook_for_another_program_is_allowed(tmp_path: Path, ctx_factory) -> None:
    make_dist(tmp_path, "toy-opt", "1.0", {"opt": "toy_opt_mod"}, {
        "toy_opt_mod": _good("opt") + """
@hookimpl(optionalhook=True)
def some_other_programs_hook():
    pass
"""})
    ctx = ctx_factory(registry_for(tmp_path))
    assert ctx.make_connection("opt").open() == ("opt", {})
