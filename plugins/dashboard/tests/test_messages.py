"""Browser messages are validated: named fields, bounded numbers, nothing else."""
from __future__ import annotations

import json

import pytest

from libertem_live_dashboard.messages import (
    MAX_MESSAGE, Ack, BadMessage, Pick, Regions, View, parse,
)

SHAPES = dict(sig_shape=(64, 64), nav_shape=(32, 32), history=3)


def p(obj) -> object:
    return parse(json.dumps(obj), **SHAPES)


def test_good_messages() -> None:
    assert p({"type": "ack", "version": 7}) == Ack(7)
    assert p({"type": "regions", "bf": [31.5, 31.5, 8], "adf": [31, 31, 12, 30]}) == \
        Regions([31.5, 31.5, 8.0], [31.0, 31.0, 12.0, 30.0])
    assert p({"type": "pick", "y": 31, "x": 0}) == Pick(31, 0)
    assert p({"type": "pick", "y": None, "x": None}) == Pick(None, None)
    assert p({"type": "view", "history": None}) == View(None)
    assert p({"type": "view", "history": 2}) == View(2)


@pytest.mark.parametrize("msg, words", [
    ({"type": "exec", "code": "import os"}, "unknown message type"),
    ({"type": "ack", "version": "1"}, "non-negative integer"),
    ({"type": "ack", "version": 1, "extra": 2}, "unknown fields"),
    ({"type": "regions", "bf": [1, 2], "adf": [1, 2, 3, 4]}, "regions needs bf"),
    ({"type": "regions", "bf": [1, 2, "3"], "adf": [1, 2, 3, 4]}, "finite number"),
    ({"type": "regions", "bf": [1, 2, 1e9], "adf": [1, 2, 3, 4]}, "outside"),
    ({"type": "regions", "bf": [1, 2, 3], "adf": [1, 2, 9, 4]}, "smaller than r_outer"),
    ({"type": "regions", "bf": [1, 2, True], "adf": [1, 2, 3, 4]}, "finite number"),
    ({"type": "pick", "y": 32, "x": 0}, "outside 0..31"),
    ({"type": "pick", "y": 1, "x": None}, "both y and x"),
    ({"type": "view", "history": 3}, "outside 0..2"),
    ([1, 2], "JSON object"),
])
def test_bad_messages_say_what_is_wrong(msg, words) -> None:
    with pytest.raises(BadMessage, match=words):
        p(msg)


def test_non_finite_and_oversized() -> None:
    with pytest.raises(BadMessage, match="finite"):
        parse('{"type": "regions", "bf": [NaN, 1, 1], "adf": [1, 1, 1, 2]}', **SHAPES)
    with pytest.raises(BadMessage, match=f"at most {MAX_MESSAGE}"):
        parse(json.dumps({"type": "ack", "version": 1, "pad": "x" * MAX_MESSAGE}), **SHAPES)
    with pytest.raises(BadMessage, match="not JSON"):
        parse("{version: 1}", **SHAPES)
