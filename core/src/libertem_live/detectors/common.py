"""Names upstream LiberTEM-live kept in ``libertem_live.detectors.common``
that user scripts and test helpers import."""
from __future__ import annotations

import os
import pathlib

__all__ = ["UndeadException", "cleanup_handle_dir"]


class UndeadException(RuntimeError):
    """A simulator's server threads did not end within the time ``stop()``
    gives them.  Kept for scripts written for upstream LiberTEM-live, which
    catch it around a simulator's ``stop()``."""


def cleanup_handle_dir(path: str | os.PathLike[str] | None) -> None:
    """Remove a socket file and the (then empty) directory holding it.

    Upstream's tests and scripts tidy up the temporary handle directory of a
    shared-memory receiver with it; the file may not exist yet when a
    connection never started, so a missing file is no error."""
    if path is None:
        return
    p = pathlib.Path(path)
    p.unlink(missing_ok=True)
    if p.parent.exists():
        p.parent.rmdir()
