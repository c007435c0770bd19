"""The nav-shape rules as the usage page states them."""
from __future__ import annotations

import pytest

from libertem_live import navshape
from libertem_live.errors import NavShapeError


@pytest.mark.parametrize("given, n, expected", [
    ((-1, 64), 16384, (256, 64)),
    ((4, -1, -1), 16384, (4, 64, 64)),
    ((-1,), 10, (10,)),
    ((2, -1, 5), 30, (2, 3, 5)),
])
def test_placeholders(given, n, expected) -> None:
    assert navshape.resolve(given, n) == expected


@pytest.mark.parametrize("given, n, match", [
    ((-1, -1, -1), 8, "at most two"),
    ((-1, 7), 64, "not divisible"),
    ((2, -1, -1), 12, "not a square"),
    ((0, 5), 5, "contains 0"),
    ((-2, 5), 10, "contains -2"),
    (("a", 5), 10, "tuple of integers"),
])
def test_placeholder_errors(given, n, match) -> None:
    with pytest.raises(NavShapeError, match=match):
        navshape.resolve(given, n)


def test_order_concrete_before_hook() -> None:
    def hook():
        raise AssertionError("hook must not be asked when the shape is concrete")
    assert navshape.resolve((4, 4), 16, hook=hook) == (4, 4)


def test_hook_before_placeholders_and_detector() -> None:
    assert navshape.resolve((-1, 4), 16, hook=lambda: (2, 8), detector_hint=(16,)) == (2, 8)


def test_hook_none_falls_through() -> None:
    assert navshape.resolve(None, 16, hook=lambda: None, detector_hint=(2, 8)) == (2, 8)


def test_hook_result_checked() -> None:
    with pytest.raises(NavShapeError, match="on_determine_nav_shape"):
        navshape.resolve(None, 16, hook=lambda: (-1, 4))
    with pytest.raises(NavShapeError, match="15 positions"):
        navshape.resolve(None, 16, hook=lambda: (3, 5))


def test_detector_then_controller_then_square() -> None:
    assert navshape.resolve(None, 16, detector_hint=(1, 16), controller_hint=lambda n: (2, 8)) \
        == (1, 16)
    assert navshape.resolve(None, 16, controller_hint=lambda n: (2, 8)) == (2, 8)
    assert navshape.resolve(None, 16, controller_hint=lambda n: None) == (4, 4)


def test_no_way_to_know() -> None:
    with pytest.raises(NavShapeError, match="not a square number"):
        navshape.resolve(None, 12)
    with pytest.raises(NavShapeError, match="number of images is unknown"):
        navshape.resolve(None, None)
    with pytest.raises(NavShapeError, match="acquisition has 12 images"):
        navshape.resolve((4, 4), 12)


def test_active_mode_asks_the_controller_once_with_none() -> None:
    asked = []

    def hint(n):
        asked.append(n)
        return (3, 4)

    assert navshape.resolve((2, -1), None, controller_hint=hint) == (2, 6)
    assert asked == [None]
    asked.clear()
    assert navshape.resolve(None, None, controller_hint=hint) == (3, 4)
    assert asked == [None]


def test_controller_method_is_optional() -> None:
    class Plain:
        pass

    class Unsure:
        def determine_nav_shape(self, nimages):
            return None

    assert navshape.controller_hint(Plain()) is None
    with pytest.raises(NavShapeError, match="number of images is unknown"):
        navshape.resolve(None, None, controller_hint=navshape.controller_hint(Plain()))
    with pytest.raises(NavShapeError, match="the controller, Unsure, does not know"):
        navshape.resolve(None, None, controller_hint=navshape.controller_hint(Unsure()))


def test_messages_upstream_scripts_match_on() -> None:
    """Scripts written for LiberTEM-live 0.3 match these two messages; ours keep
    its words and add the numbers and the cause."""
    with pytest.raises(NavShapeError,
                       match=r"^Result \(8, 8\).* is not compatible with number of images \(16\)$"):
        navshape.resolve(None, 16, hook=lambda: (8, 8))
    with pytest.raises(RuntimeError, match=r"In active mode, please pass the full `nav_shape"):
        navshape.resolve(None, None, active=True)
