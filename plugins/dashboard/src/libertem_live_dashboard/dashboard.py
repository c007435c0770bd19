"""The dashboard from Python, beside a script of one's own::

    from libertem_live_dashboard import Dashboard

    with Dashboard(port=8050) as dash:          # prints the URL to open
        aq = ctx.make_acquisition(conn=conn, nav_shape=(128, 128))
        ctx.run_udf(dataset=aq, udf=[my_udf, *dash.udfs(aq)])

Every live run in this process is followed (the result hooks); the
dashboard's own views (virtual bright/dark field, centre of mass, the frame
under the pointer) need its UDF in the run: ``dash.udfs(aq)``.  Without it
the page shows the run's status, the ledger, frames/s, and the sum frame
if a ``SumUDF`` runs.
"""
from __future__ import annotations

from typing import Any

from libertem_live_dashboard.server import BEHIND_GAP_S, SUM_FPS, DashboardServer
from libertem_live_dashboard.state import LiveState
from libertem_live_dashboard.udf import DashboardUDF


class Dashboard:
    def __init__(self, host: str = "127.0.0.1", port: int = 8050, *, token: str | None = None,
                 history: int = 10, max_fps: float = 60.0, sum_fps: float = SUM_FPS,
                 behind_gap_s: float = BEHIND_GAP_S, quiet: bool = False):
        self.state = LiveState(history=history)
        self.server = DashboardServer(self.state, host=host, port=port, token=token,
                                      max_fps=max_fps, sum_fps=sum_fps,
                                      behind_gap_s=behind_gap_s)
        self.quiet = quiet

    @property
    def url(self) -> str:
        return self.server.url

    def start(self) -> Dashboard:
        self.server.start()
        self.state.attach()
        if not self.quiet:
            print(f"libertem-live dashboard: open {self.url}", flush=True)
        return self

    def stop(self) -> None:
        self.state.detach()
        self.server.stop()

    def __enter__(self) -> Dashboard:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def udfs(self, aq: Any) -> list[DashboardUDF]:
        """The dashboard's UDF for a run on ``aq`` (regions as last set in a browser)."""
        return [DashboardUDF.for_shape(tuple(aq.shape.sig), int(aq.shape.nav.size),
                                       self.state.regions)]
