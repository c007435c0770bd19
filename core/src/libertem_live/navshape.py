"""The rules that turn what the user, the hooks, the detector and the
controller know into a scan (navigation) shape.

Order, as the usage documentation promises:

1. a concrete tuple of positive integers is used as-is;
2. a result of the ``on_determine_nav_shape`` hook (passive mode);
3. placeholders (``-1``, at most two; two are filled with a square);
4. what the detector or pending acquisition knows;
5. what the controller knows;
6. a square, if the number of images is a perfect square;
7. otherwise a :class:`~libertem_live.errors.NavShapeError`.

The controller (rule 5) is only there in active mode; a passive acquisition
was armed by the detector's own software, and what that software set up
reaches us through the pending acquisition (rule 4).  In active mode nobody
has announced a number of images: LiberTEM arms the detector for exactly
``prod(nav_shape)`` frames.  So the controller is asked
``determine_nav_shape(None)``, meaning "the scan shape your settings imply,
or None", and its answer also gives the image count that placeholders
(rule 3) are filled against.  The hook (rule 2) and the square guess
(rule 6) need an announced image count, so they do not apply in active mode.

``determine_nav_shape(nimages)`` is optional on a controller: one without it
knows nothing (see :func:`controller_hint`).  ``nimages`` is the announced
image count, or None when there is none (active mode); the method returns a
tuple of positive sizes (whose product must be ``nimages`` when given) or
None.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from libertem_live.errors import NavShapeError, NavShapeUnknownError

NavShape = tuple[int, ...]


def _prod(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


def is_concrete(nav_shape: Sequence[int] | None) -> bool:
    return nav_shape is not None and all(int(n) > 0 for n in nav_shape)


def _check_entries(nav_shape: Sequence[int], what: str) -> NavShape:
    try:
        shape = tuple(int(n) for n in nav_shape)
    except (TypeError, ValueError):
        raise NavShapeError(f"{what} must be a tuple of integers, got {nav_shape!r}") from None
    if len(shape) == 0:
        raise NavShapeError(f"{what} must have at least one dimension, got {nav_shape!r}")
    bad = [n for n in shape if n == 0 or n < -1]
    if bad:
        raise NavShapeError(
            f"{what} {shape!r} contains {bad[0]}: use positive sizes, or -1 as a placeholder"
        )
    return shape


def fill_placeholders(nav_shape: Sequence[int], nimages: int) -> NavShape:
    """Fill ``-1`` entries like numpy's reshape; two placeholders become a square."""
    shape = _check_entries(nav_shape, "nav_shape")
    holes = [i for i, n in enumerate(shape) if n == -1]
    if not holes:
        return shape
    if len(holes) > 2:
        raise NavShapeError(
            f"nav_shape {shape!r} has {len(holes)} placeholders (-1); at most two are allowed"
        )
    known = _prod([n for n in shape if n != -1])
    if nimages % known != 0:
        raise NavShapeError(
            f"nav_shape {shape!r} does not fit {nimages} images: {nimages} is not divisible "
            f"by {known}, the product of the given sizes"
        )
    rest = nimages // known
    filled = list(shape)
    if len(holes) == 1:
        filled[holes[0]] = rest
    else:
        side = math.isqrt(rest)
        if side * side != rest:
            raise NavShapeError(
                f"nav_shape {shape!r}: two placeholders need a square, but {nimages} images "
                f"leave {rest} positions, which is not a square number"
            )
        filled[holes[0]] = filled[holes[1]] = side
    return tuple(filled)


def validate(nav_shape: Sequence[int], nimages: int | None, source: str) -> NavShape:
    shape = _check_entries(nav_shape, f"nav_shape from {source}")
    if -1 in shape:
        raise NavShapeError(f"nav_shape from {source} must not contain -1, got {shape!r}")
    if nimages is not None and _prod(shape) != nimages:
        if source == "on_determine_nav_shape":
            # worded as LiberTEM-live 0.3 worded it, which scripts match on
            raise NavShapeError(
                f"Result {shape!r} of Hooks.on_determine_nav_shape ({_prod(shape)} positions) "
                f"is not compatible with number of images ({nimages})"
            )
        raise NavShapeError(
            f"nav_shape {shape!r} from {source} has {_prod(shape)} positions, but the "
            f"acquisition has {nimages} images"
        )
    return shape


ControllerHint = Callable[[int | None], Sequence[int] | None]


def controller_hint(controller: Any) -> ControllerHint | None:
    """The controller's ``determine_nav_shape``, or None for a controller
    without one (the method is optional)."""
    return getattr(controller, "determine_nav_shape", None)


def resolve(
    nav_shape: Sequence[int] | None,
    nimages: int | None,
    *,
    hook: Callable[[], Sequence[int] | None] | None = None,
    detector_hint: Sequence[int] | None = None,
    controller_hint: ControllerHint | None = None,
    active: bool = False,
) -> NavShape:
    """Apply the rules above; ``nimages`` is None when nobody announced it
    (``active``: in active mode, whose words the errors then use).  The
    controller is asked at most once."""
    if nav_shape is not None:
        shape = _check_entries(nav_shape, "nav_shape")
        if -1 not in shape:
            return validate(shape, nimages, "make_acquisition")
    if hook is not None:
        hooked = hook()
        if hooked is not None:
            return validate(hooked, nimages, "on_determine_nav_shape")
    asked: list[NavShape | None] = []

    def ask_controller() -> NavShape | None:
        if controller_hint is None:
            return None
        if not asked:
            told = controller_hint(nimages)
            asked.append(None if told is None else validate(told, nimages, "the controller"))
        return asked[0]

    if nav_shape is not None:
        count = nimages
        if count is None:
            told = ask_controller()
            count = None if told is None else _prod(told)
        if count is None:
            raise (NavShapeUnknownError if active else NavShapeError)(
                f"nav_shape {tuple(nav_shape)!r} has placeholders, but the number of images "
                f"is unknown{_nobody_knows(controller_hint, active)}; pass a concrete nav_shape"
            )
        return fill_placeholders(nav_shape, count)
    if detector_hint is not None:
        return validate(detector_hint, nimages, "the detector")
    told = ask_controller()
    if told is not None:
        return told
    if nimages is not None:
        side = math.isqrt(nimages)
        if side * side == nimages and nimages > 0:
            return (side, side)
        raise NavShapeError(
            f"cannot determine nav_shape: the acquisition has {nimages} images, which is not "
            "a square number, and neither the detector nor a hook gave a shape; pass "
            "nav_shape=(height, width), or (-1, width), or implement "
            "Hooks.on_determine_nav_shape"
        )
    if active:
        raise NavShapeUnknownError(
            "In active mode, please pass the full `nav_shape`: the number of images is unknown"
            f"{_nobody_knows(controller_hint, active)}; pass a concrete nav_shape=(height, width)"
        )
    raise NavShapeError(
        f"cannot determine nav_shape: the number of images is unknown"
        f"{_nobody_knows(controller_hint, active)}; pass a concrete nav_shape=(height, width)"
    )


def _nobody_knows(hint: ControllerHint | None, active: bool) -> str:
    if hint is None:
        if not active:
            return ""
        knows = "the controller has no determine_nav_shape"
    else:
        owner = getattr(hint, "__self__", None)
        who = f"the controller, {type(owner).__name__}," if owner is not None \
            else "the controller"
        knows = f"{who} does not know the scan shape"
    return (" (in active mode the detector is armed for exactly prod(nav_shape) frames, "
            f"and {knows})")
