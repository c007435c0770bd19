from __future__ import annotations

from typing import Any

import pytest

from libertem_live_testing.suite._util import open_conn, wait_pending


def _resolve(ctx: Any, harness: Any, nav: tuple[int, ...], given: Any, hooks: Any = None,
             announce: bool = True) -> tuple[int, ...]:
    with harness.scenario(nav, announce_nav_shape=announce) as sc:
        with open_conn(ctx, harness, sc) as conn:
            pending = wait_pending(conn, sc)
            aq = ctx.make_acquisition(conn=conn, pending_aq=pending, nav_shape=given,
                                      hooks=hooks)
            return tuple(aq.shape.nav)


@pytest.mark.live_requires("passive")
class TestNavShape:
    def test_concrete_is_used(self, live_driver: Any, live_ctx: Any) -> None:
        assert _resolve(live_ctx, live_driver, (8, 8), (4, 16)) == (4, 16)

    def test_concrete_must_match_image_count(self, live_driver: Any, live_ctx: Any) -> None:
        from libertem_live.errors import NavShapeError
        with pytest.raises(NavShapeError, match="64 images"):
            _resolve(live_ctx, live_driver, (8, 8), (5, 5))

    def test_hook_decides(self, live_driver: Any, live_ctx: Any) -> None:
        from libertem_live.api import Hooks
        seen: list[int] = []

        class Line(Hooks):
            def on_determine_nav_shape(self, env: Any) -> tuple[int, ...]:
                seen.append(env.nimages)
                return (env.nimages,)

        assert _resolve(live_ctx, live_driver, (8, 8), None, hooks=Line()) == (64,)
        assert seen == [64]

    def test_hook_result_is_validated(self, live_driver: Any, live_ctx: Any) -> None:
        from libertem_live.api import Hooks
        from libertem_live.errors import NavShapeError

        class Wrong(Hooks):
            def on_determine_nav_shape(self, env: Any) -> tuple[int, ...]:
                return (3, 3)

        with pytest.raises(NavShapeError, match="on_determine_nav_shape"):
            _resolve(live_ctx, live_driver, (8, 8), None, hooks=Wrong())

    def test_one_placeholder(self, live_driver: Any, live_ctx: Any) -> None:
        assert _resolve(live_ctx, live_driver, (8, 8), (-1, 16)) == (4, 16)

    def test_two_placeholders_make_a_square(self, live_driver: Any, live_ctx: Any) -> None:
        assert _resolve(live_ctx, live_driver, (4, 16), (4, -1, -1)) == (4, 4, 4)

    def test_placeholder_must_divide(self, live_driver: Any, live_ctx: Any) -> None:
        from libertem_live.errors import NavShapeError
        with pytest.raises(NavShapeError, match="not divisible"):
            _resolve(live_ctx, live_driver, (8, 8), (-1, 7))

    @pytest.mark.live_requires("nav_shape_from_detector")
    def test_detector_knows(self, live_driver: Any, live_ctx: Any) -> None:
        assert _resolve(live_ctx, live_driver, (4, 16), None) == (4, 16)

    @pytest.mark.live_requires("nav_shape_can_be_unknown")
    def test_square_fallback(self, live_driver: Any, live_ctx: Any) -> None:
        assert _resolve(live_ctx, live_driver, (4, 16), None, announce=False) == (8, 8)

    @pytest.mark.live_requires("nav_shape_can_be_unknown")
    def test_no_shape_and_not_square_is_an_error(self, live_driver: Any,
                                                  live_ctx: Any) -> None:
        from libertem_live.errors import NavShapeError
        with pytest.raises(NavShapeError, match="not a square"):
            _resolve(live_ctx, live_driver, (4, 8), None, announce=False)
