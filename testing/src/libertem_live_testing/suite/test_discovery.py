from __future__ import annotations

from typing import Any

from libertem_live.plugin import PLUGIN_API_VERSION
from libertem_live.registry import default_registry


class TestDiscovery:
    def test_driver_is_registered(self, live_driver: Any) -> None:
        records = {r.name: r for r in default_registry().records()}
        assert live_driver.name in records, (
            f"driver {live_driver.name!r} is not found through the entry-point group "
            f"'libertem_live.detectors'; found: {sorted(records)}")
        record = records[live_driver.name]
        assert record.status == "ok", f"driver {record.label} is {record.status}: {record.error}"
        assert record.info is not None and record.info.plugin_api == PLUGIN_API_VERSION

    def test_make_connection_finds_driver(self, live_driver: Any, live_ctx: Any) -> None:
        builder = live_ctx.make_connection(live_driver.name)
        assert callable(getattr(builder, "open", None)), "make_connection(name) has no open()"
