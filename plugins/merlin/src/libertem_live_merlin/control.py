"""``MerlinControl``: the control-port client as LiberTEM-live 0.3 scripts use it.

Those scripts import it from ``libertem_live.detectors.merlin`` (or its
``control`` module), read values as ``bytes``, replay command files, and
start the detector themselves from ``Hooks.on_ready_for_data``.  Here active
mode has already started the detector when that hook runs (so that no
trigger is lost), and a Merlin answers a second ``CMD STARTACQUISITION``
with "busy"; this client lets that one answer pass when it was this
process's active run that started the detector, and raises it otherwise
(someone else's acquisition is running).  New code uses
``conn.get_control()``, whose values are text.
"""
from __future__ import annotations

import logging
import os
from typing import Optional, Union

from .client import ControlClient, Value
from .controller import started_here
from .errors import MerlinBusyError

__all__ = ["MerlinControl"]

log = logging.getLogger(__name__)


class MerlinControl(ControlClient):
    """``MerlinControl(host, port, timeout)``; a context manager, as upstream's."""

    def __init__(self, host: str = "127.0.0.1", port: int = 6341, timeout: float = 5.0):
        super().__init__(host, port, timeout=timeout)

    def get(self, param: str) -> bytes:  # type: ignore[override]
        """The value of ``param``, as the bytes the detector sent."""
        return super().get(param).encode("latin-1")

    def cmd(self, cmd: str) -> None:
        try:
            super().cmd(cmd)
        except MerlinBusyError:
            if cmd.strip().upper() == "STARTACQUISITION" and started_here(self.host, self.port):
                log.info("CMD STARTACQUISITION on %s: the active acquisition already "
                         "started the detector", self.where)
                return
            raise

    def send_command_file(self, filename: Union[str, "os.PathLike[str]"]) -> None:
        """Send each non-empty line of ``filename``, a Merlin command line such
        as ``SET,COUNTERDEPTH,12`` or ``CMD,SOFTTRIGGER``, stopping at the first
        line the detector refuses."""
        with open(filename) as fh:
            for number, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                verb, _, rest = line.partition(",")
                name, _, value = rest.partition(",")
                verb = verb.strip().upper()
                arg: Optional[Value] = value.strip() or None
                if verb == "SET" and arg is not None:
                    self.set(name.strip(), arg)
                elif verb == "GET" and arg is None:
                    self.get(name.strip())
                elif verb == "CMD" and arg is None:
                    self.cmd(name.strip())
                else:
                    raise ValueError(
                        f"{filename}, line {number}: {line!r} is not a Merlin command line "
                        "(SET,NAME,VALUE or GET,NAME or CMD,NAME)")
