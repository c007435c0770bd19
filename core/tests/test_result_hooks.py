"""Result hooks: a frontend (a plugin or the user's Hooks object) follows every
live UDF run: started, partial results, ended; and can never break the run."""
from __future__ import annotations

import logging
import numpy as np
import pytest
from libertem.common.buffers import BufferWrapper
from libertem.executor.inline import InlineJobExecutor
from libertem.udf.base import UDF
from libertem.udf.sum import SumUDF

from libertem_live.api import Hooks, LiveContext
from libertem_live.errors import StreamTruncatedError

from toydists import make_dist, registry_for


@pytest.fixture(scope="module")
def ctx():
    c = LiveContext(executor=InlineJobExecutor())
    yield c
    c.close()


@pytest.fixture
def data():
    return np.random.default_rng(5).integers(0, 100, size=(4, 8, 6, 6), dtype=np.uint16)


class Recorder(Hooks):
    """Keeps what each result hook saw, copied (the buffers change later)."""

    def __init__(self):
        self.events: list[tuple] = []

    def on_acquisition_started(self, env):
        self.events.append(("started", env.run_id, env.detector, env.mode, env.nav_shape,
                            env.sig_shape, env.metadata.get("detector")))

    def on_partial_results(self, env):
        self.events.append(("partial", env.run_id, int(env.damage.sum()),
                            env.buffers[0]["intensity"].data.copy(), env.ledger.received,
                            env.frames_per_s))

    def on_acquisition_ended(self, env):
        self.events.append(("ended", env.run_id, env.outcome, env.error, env.ledger.processed,
                            None if env.buffers is None else env.buffers[0]["intensity"].data.copy()))

    def kinds(self) -> list[str]:
        return [e[0] for e in self.events]


@pytest.mark.parametrize("iterate", [False, True], ids=["run_udf", "run_udf_iter"])
def test_started_partials_ended_for_a_complete_run(ctx, data, iterate) -> None:
    rec = Recorder()
    with ctx.make_connection("memory").open(data=data) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 8), frames_per_partition=8,
                                  hooks=rec)
        if iterate:
            for res in ctx.run_udf_iter(dataset=aq, udf=SumUDF()):
                final = res.buffers[0]["intensity"].data.copy()
        else:
            final = ctx.run_udf(dataset=aq, udf=SumUDF())["intensity"].data
    truth = data.sum(axis=(0, 1))
    assert np.array_equal(final, truth), "the hooks change nothing in the results"
    kinds = rec.kinds()
    assert kinds[0] == "started" and kinds[-1] == "ended"
    assert kinds[1:-1] == ["partial"] * 4, "one partial per partition of 8 frames"
    started, partials, ended = rec.events[0], rec.events[1:-1], rec.events[-1]
    assert started[2:] == ("memory", "active", (4, 8), (6, 6), "memory")
    assert {e[1] for e in rec.events} == {started[1]}, "one run id for the whole run"
    assert [p[2] for p in partials] == [8, 16, 24, 32]
    assert np.array_equal(partials[-1][3], truth)
    assert partials[0][3].sum() < truth.sum(), "partial results are partial"
    assert all(p[4] >= p[2] for p in partials), "the ledger received what was processed"
    assert partials[-1][5] > 0
    assert ended[2:5] == ("complete", None, 32)
    assert np.array_equal(ended[5], truth)


def test_run_ids_differ_between_runs(ctx, data) -> None:
    rec = Recorder()
    with ctx.make_connection("memory").open(data=data) as conn:
        for _ in range(2):
            aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 8), hooks=rec)
            ctx.run_udf(dataset=aq, udf=SumUDF())
    ids = [e[1] for e in rec.events if e[0] == "started"]
    assert len(ids) == 2 and ids[0] != ids[1]


def test_failed_run_reports_the_error_the_caller_gets(ctx, data) -> None:
    rec = Recorder()
    with ctx.make_connection("memory").open(data=data, fault="ends_short@20") as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 8), frames_per_partition=8,
                                  hooks=rec)
        with pytest.raises(StreamTruncatedError) as info:
            ctx.run_udf(dataset=aq, udf=SumUDF())
    ended = rec.events[-1]
    assert ended[0] == "ended" and ended[2] == "failed"
    assert ended[3] is info.value
    assert rec.kinds().count("ended") == 1


def test_closing_the_iterator_early_is_cancelled(ctx, data) -> None:
    rec = Recorder()
    with ctx.make_connection("memory").open(data=data) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 8), frames_per_partition=8,
                                  hooks=rec)
        gen = ctx.run_udf_iter(dataset=aq, udf=SumUDF())
        next(gen)
        gen.close()
    ended = rec.events[-1]
    assert ended[0] == "ended" and ended[2] == "cancelled"
    assert rec.kinds().count("ended") == 1


class Boom(Hooks):
    def on_acquisition_started(self, env):
        raise RuntimeError("frontend bug in started")

    def on_partial_results(self, env):
        raise RuntimeError("frontend bug in partial")

    def on_acquisition_ended(self, env):
        raise RuntimeError("frontend bug in ended")


@pytest.fixture(scope="module")
def front(tmp_path_factory):
    """A context whose registry holds a frontend plugin (result hooks, no driver)
    beside the memory driver; yields (ctx, the frontend's module)."""
    root = tmp_path_factory.mktemp("front")
    make_dist(root, "toy-front", "1.0", {"front": "toy_front_mod"}, {
        "toy_front_mod": """
from libertem_live.plugin import hookimpl
SEEN = []

@hookimpl
def on_acquisition_started(env):
    SEEN.append("started")

@hookimpl
def on_partial_results(env):
    SEEN.append(int(env.damage.sum()))

@hookimpl
def on_acquisition_ended(env):
    SEEN.append(env.outcome)
""",
        "toy_mem2_mod": "from libertem_live.detectors.memory.plugin import libertem_live_detectors\n",
    })
    make_dist(root, "toy-mem2", "1.0", {"memory": "toy_mem2_mod"}, {})
    registry = registry_for(root)
    assert [r.name for r in registry.records()] == ["memory"], \
        "a frontend without a driver is no broken driver"
    ctx = LiveContext(executor=InlineJobExecutor(), registry=registry)
    import toy_front_mod
    yield ctx, toy_front_mod
    ctx.close()


def test_a_failing_hook_never_breaks_the_run(front, data, caplog) -> None:
    """The user's broken hooks are logged once each; a plugin's hooks still run."""
    ctx, mod = front
    mod.SEEN.clear()
    with caplog.at_level(logging.ERROR, logger="libertem_live.dispatch"):
        with ctx.make_connection("memory").open(data=data) as conn:
            aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 8),
                                      frames_per_partition=8, hooks=Boom())
            res = ctx.run_udf(dataset=aq, udf=SumUDF())
    assert np.array_equal(res["intensity"].data, data.sum(axis=(0, 1)))
    assert mod.SEEN == ["started", 8, 16, 24, 32, "complete"]
    failures = [r.getMessage() for r in caplog.records]
    assert len(failures) == 3, "each failing hook is logged once, not per partition"
    assert all("acquisition goes on" in m for m in failures)


def test_no_result_hooks_for_offline_datasets(front, data) -> None:
    ctx, mod = front
    mod.SEEN.clear()
    ds = ctx.load("memory", data=data, sig_dims=2)
    res = ctx.run_udf(dataset=ds, udf=SumUDF())
    assert np.array_equal(res["intensity"].data, data.sum(axis=(0, 1)))
    assert mod.SEEN == []


class ScaledSum(UDF):
    """Sums frames times ``factor``: a parameter a frontend can change mid-run."""

    def __init__(self, factor: float = 1.0):
        super().__init__(factor=factor)

    def get_result_buffers(self) -> dict[str, BufferWrapper]:
        return {"total": self.buffer(kind="nav", dtype="float64")}

    def process_frame(self, frame) -> None:
        self.results.total[:] = frame.sum() * self.params.factor


class Doubler(Hooks):
    def __init__(self):
        self.asked = False

    def on_partial_results(self, env):
        if not self.asked:
            self.asked = True
            env.update_parameters(env.udfs[0], factor=2.0)


def test_hook_changes_udf_parameters_for_the_next_partitions(ctx, data) -> None:
    with ctx.make_connection("memory").open(data=data) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 8), frames_per_partition=8,
                                  hooks=Doubler())
        res = ctx.run_udf(dataset=aq, udf=ScaledSum())
    per_frame = data.reshape(32, -1).sum(axis=1).astype(np.float64)
    got = res["total"].data.reshape(-1)
    assert np.array_equal(got[:8], per_frame[:8]), "the first partition ran before the ask"
    assert np.array_equal(got[8:], 2 * per_frame[8:])
