import os
import sys
from typing import Any, Iterator

import pytest

# make tests/_helpers importable regardless of the pytest import mode
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="session")
def live_ctx(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The LiveContext users get (``LiveContext()``), shared by the whole session.

    Overrides the kit's module-scoped fixture: worker start-up costs several
    seconds on a small box, and every module here uses the same kind of context.
    """
    from libertem_live.api import LiveContext
    inline = request.config.getoption("--live-executor") == "inline"
    ctx = LiveContext(executor="inline" if inline else None)
    try:
        yield ctx
    finally:
        ctx.close()
