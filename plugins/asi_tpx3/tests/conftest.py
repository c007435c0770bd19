import os
import sys
from typing import Any, Iterator

import pytest

# make tests/_helpers importable regardless of the pytest import mode
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="session")
def live_ctx(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The kit's LiveContext (two pipelined workers), shared by the whole session.

    Overrides the kit's module-scoped fixture: worker start-up costs several
    seconds on a small box, and every module here uses the same kind of context.
    """
    from libertem_live.api import LiveContext
    if request.config.getoption("--live-executor") == "inline":
        from libertem.executor.inline import InlineJobExecutor
        ctx = LiveContext(executor=InlineJobExecutor())
    else:
        from libertem.executor.pipelined import PipelinedExecutor
        ctx = LiveContext(executor=PipelinedExecutor(
            spec=PipelinedExecutor.make_spec(cpus=range(2), cudas=[]), pin_workers=False))
    try:
        yield ctx
    finally:
        ctx.close()
