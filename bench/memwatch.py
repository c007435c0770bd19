"""Peak memory of a process tree, sampled in a thread (RSS of the main
process; PSS of main + workers, so that shared memory counts once).

Sampled every 0.25 s, as upstream's anchor benchmark does: reading a PSS walks
every page table of the tree, and at 20 samples/s that walk took ~10 % of the
CPU (perf, Merlin U16 run), CPU the measured pipeline then lacked."""
from __future__ import annotations

import os
import threading

import psutil


class MemWatch:
    def __init__(self, interval: float = 0.25, exclude: set[int] | None = None):
        self.exclude = exclude or set()
        self.interval = interval
        self.peak_main_rss = 0
        self.peak_tree_pss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process(os.getpid())
        try:
            self.peak_main_rss = max(self.peak_main_rss, me.memory_info().rss)
            total = 0
            for p in [me] + me.children(recursive=True):
                if p.pid in self.exclude:
                    continue
                try:
                    total += p.memory_full_info().pss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    pass
            self.peak_tree_pss = max(self.peak_tree_pss, total)
        except psutil.NoSuchProcess:
            pass

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> MemWatch:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
