"""What every driver offers scripts written for upstream LiberTEM-live.

Upstream had one builder class per detector (``DectrisConnectionBuilder``,
``MerlinConnectionBuilder``, ...), each doing what
``ctx.make_connection(name)`` does here: ``open(**params)`` makes the
connection.  A driver names its connection class once instead of writing
the class again.
"""
from __future__ import annotations

from typing import Any

from libertem_live.parameters import load_named


class UpstreamConnectionBuilder:
    """Subclasses set :attr:`connection` to ``"package.module:ClassName"``;
    the class is imported when ``open`` is called, so importing the driver's
    package stays cheap."""

    connection: str = ""

    def open(self, *args: Any, **params: Any) -> Any:
        if not self.connection:
            raise TypeError(f"{type(self).__name__} names no connection class: set its "
                            "`connection` to 'package.module:ClassName'")
        return load_named(self.connection)(*args, **params)
