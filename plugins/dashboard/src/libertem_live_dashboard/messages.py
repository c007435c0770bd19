"""What a browser may send, checked before anything is done with it.

Only these messages exist; each field is a number or null within bounds.
Nothing from the browser is evaluated, formatted into a command or used as a
path; a message that does not fit is answered with an error and ignored.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

#: Longest message accepted from a browser (bytes).
MAX_MESSAGE = 4096


class BadMessage(ValueError):
    """A browser message that does not fit; the text says what was wrong."""


@dataclass
class Ack:
    version: int


@dataclass
class Regions:
    bf: list[float]
    adf: list[float]


@dataclass
class Pick:
    y: int | None
    x: int | None


@dataclass
class View:
    history: int | None


def _number(value: Any, what: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadMessage(f"{what} must be a finite number, got {value!r:.40}")
    if not lo <= value <= hi:
        raise BadMessage(f"{what}={value} is outside {lo}..{hi}")
    return float(value)


def _int_or_none(value: Any, what: str, hi: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadMessage(f"{what} must be an integer or null, got {value!r:.40}")
    if not 0 <= value < max(hi, 1):
        raise BadMessage(f"{what}={value} is outside 0..{hi - 1}")
    return value


def _fields(msg: dict[str, Any], allowed: set[str]) -> None:
    extra = set(msg) - allowed - {"type"}
    if extra:
        raise BadMessage(f"unknown fields {sorted(extra)!r:.80} in a {msg['type']!r} message")


def parse(text: str | bytes, *, sig_shape: tuple[int, ...], nav_shape: tuple[int, ...],
          history: int) -> Ack | Regions | Pick | View:
    """One browser message, validated against the current scan's shapes."""
    if len(text) > MAX_MESSAGE:
        raise BadMessage(f"message of {len(text)} bytes; at most {MAX_MESSAGE} are accepted")
    try:
        msg = json.loads(text)
    except ValueError as e:
        raise BadMessage(f"not JSON: {e}") from None
    if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
        raise BadMessage("a message is a JSON object with a string field 'type'")
    kind = msg["type"]
    if kind == "ack":
        _fields(msg, {"version"})
        v = msg.get("version")
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise BadMessage("ack needs a non-negative integer 'version'")
        return Ack(v)
    if kind == "regions":
        _fields(msg, {"bf", "adf"})
        size = float(max(sig_shape[-2:], default=1))
        bf, adf = msg.get("bf"), msg.get("adf")
        if not (isinstance(bf, list) and len(bf) == 3 and isinstance(adf, list) and len(adf) == 4):
            raise BadMessage("regions needs bf=[cy, cx, r] and adf=[cy, cx, r_inner, r_outer]")
        b = [_number(bf[0], "bf cy", -size, 2 * size), _number(bf[1], "bf cx", -size, 2 * size),
             _number(bf[2], "bf r", 0.5, 2 * size)]
        a = [_number(adf[0], "adf cy", -size, 2 * size), _number(adf[1], "adf cx", -size, 2 * size),
             _number(adf[2], "adf r_inner", 0, 2 * size),
             _number(adf[3], "adf r_outer", 0.5, 2 * size)]
        if a[2] >= a[3]:
            raise BadMessage("adf r_inner must be smaller than r_outer")
        return Regions(b, a)
    if kind == "pick":
        _fields(msg, {"y", "x"})
        ny, nx = (nav_shape[-2], nav_shape[-1]) if len(nav_shape) >= 2 else (1, nav_shape[0] if nav_shape else 1)
        y = _int_or_none(msg.get("y"), "pick y", ny)
        x = _int_or_none(msg.get("x"), "pick x", nx)
        if (y is None) != (x is None):
            raise BadMessage("pick needs both y and x, or neither")
        return Pick(y, x)
    if kind == "view":
        _fields(msg, {"history"})
        return View(_int_or_none(msg.get("history"), "history index", history))
    raise BadMessage(f"unknown message type {kind!r:.40}; known: ack, regions, pick, view")
