"""Rule 5 of the nav-shape rules (what the controller knows), through the
public API: in active mode the controller is asked ``determine_nav_shape(None)``
when ``nav_shape`` is not concrete; the method is optional."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from libertem.udf.sum import SumUDF

from libertem_live.api import LiveContext
from libertem_live.errors import NavShapeError


@pytest.fixture(scope="module")
def ctx():
    c = LiveContext(executor="inline")
    yield c
    c.close()


@pytest.fixture
def data() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 500, size=(4, 6, 5, 5), dtype=np.uint16)


class Delegating:
    """A controller that arms the memory detector through its own controller;
    it has no ``determine_nav_shape`` (the method is optional)."""

    def __init__(self, inner: Any):
        self.inner = inner

    def frame_format(self, conn: Any) -> Any:
        return self.inner.frame_format(conn)

    def arm(self, conn: Any, nimages: int) -> Any:
        return self.inner.arm(conn, nimages)

    def stop(self, conn: Any, stream: Any, error: BaseException | None) -> None:
        self.inner.stop(conn, stream, error)


class KnowsShape(Delegating):
    """A controller whose settings imply the scan shape."""

    def __init__(self, inner: Any, shape: Any):
        super().__init__(inner)
        self.shape = shape
        self.asked: list[Any] = []

    def determine_nav_shape(self, nimages: int | None) -> Any:
        self.asked.append(nimages)
        return self.shape


def test_active_without_nav_shape_asks_the_controller(ctx, data) -> None:
    with ctx.make_connection("memory").open(data=data) as conn:
        ctrl = KnowsShape(conn.get_active_controller(), (4, 6))
        aq = ctx.make_acquisition(conn=conn, controller=ctrl)
        assert ctrl.asked == [None], "active mode has no announced image count"
        assert tuple(aq.shape.nav) == (4, 6)
        res = ctx.run_udf(dataset=aq, udf=SumUDF())
    assert np.array_equal(res["intensity"].data, data.sum(axis=(0, 1)))


def test_placeholders_are_filled_against_the_controllers_count(ctx, data) -> None:
    with ctx.make_connection("memory").open(data=data) as conn:
        ctrl = KnowsShape(conn.get_active_controller(), (4, 6))
        aq = ctx.make_acquisition(conn=conn, controller=ctrl, nav_shape=(-1, 3))
        assert tuple(aq.shape.nav) == (8, 3), "rule 3 shapes what rule 5 counted"
        assert ctrl.asked == [None]
        res = ctx.run_udf(dataset=aq, udf=SumUDF())
    assert np.array_equal(res["intensity"].data, data.sum(axis=(0, 1)))


def test_concrete_nav_shape_wins_and_controller_is_not_asked(ctx, data) -> None:
    with ctx.make_connection("memory").open(data=data) as conn:
        ctrl = KnowsShape(conn.get_active_controller(), (24,))
        aq = ctx.make_acquisition(conn=conn, controller=ctrl, nav_shape=(2, 12))
        assert tuple(aq.shape.nav) == (2, 12)
        assert ctrl.asked == []


def test_controller_answer_is_checked(ctx, data) -> None:
    with ctx.make_connection("memory").open(data=data) as conn:
        ctrl = KnowsShape(conn.get_active_controller(), (-1, 6))
        with pytest.raises(NavShapeError, match="nav_shape from the controller must not "
                                                "contain -1"):
            ctx.make_acquisition(conn=conn, controller=ctrl)
        ctrl = KnowsShape(conn.get_active_controller(), (0, 6))
        with pytest.raises(NavShapeError, match="from the controller .* contains 0"):
            ctx.make_acquisition(conn=conn, controller=ctrl, nav_shape=(-1, 2))
        ctrl = KnowsShape(conn.get_active_controller(), (5, 5))
        with pytest.raises(NavShapeError, match="does not fit 25 images"):
            ctx.make_acquisition(conn=conn, controller=ctrl, nav_shape=(-1, 2))


@pytest.mark.parametrize("make", [
    lambda inner: Delegating(inner),
    lambda inner: KnowsShape(inner, None),
], ids=["no method", "returns None"])
def test_controller_that_knows_nothing_needs_concrete_nav_shape(ctx, data, make) -> None:
    with ctx.make_connection("memory").open(data=data) as conn:
        ctrl = make(conn.get_active_controller())
        with pytest.raises(NavShapeError, match="concrete nav_shape"):
            ctx.make_acquisition(conn=conn, controller=ctrl)
        with pytest.raises(NavShapeError, match="placeholders.*concrete nav_shape"):
            ctx.make_acquisition(conn=conn, controller=ctrl, nav_shape=(-1, 6))
        aq = ctx.make_acquisition(conn=conn, controller=ctrl, nav_shape=(4, 6))
        res = ctx.run_udf(dataset=aq, udf=SumUDF())
    assert np.array_equal(res["intensity"].data, data.sum(axis=(0, 1)))


def test_error_says_why_the_controller_did_not_help(ctx, data) -> None:
    with ctx.make_connection("memory").open(data=data) as conn:
        ctrl = KnowsShape(conn.get_active_controller(), None)
        with pytest.raises(NavShapeError, match=r"the controller, KnowsShape, does not know"):
            ctx.make_acquisition(conn=conn, controller=ctrl)
        ctrl = Delegating(conn.get_active_controller())
        with pytest.raises(NavShapeError, match=r"active mode .* the controller has no "
                                                r"determine_nav_shape"):
            ctx.make_acquisition(conn=conn, controller=ctrl)


def test_passive_mode_keeps_its_rules(ctx, data) -> None:
    """The pending acquisition's shape (rule 4) decides; no controller exists."""
    with ctx.make_connection("memory").open(data=data, passive_count=1) as conn:
        pending = conn.wait_for_acquisition(timeout=5)
        aq = ctx.make_acquisition(conn=conn, pending_aq=pending)
        assert tuple(aq.shape.nav) == (4, 6)
        res = ctx.run_udf(dataset=aq, udf=SumUDF())
    assert np.array_equal(res["intensity"].data, data.sum(axis=(0, 1)))
