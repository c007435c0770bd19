"""Recordings for upstream's data tests, made by our simulators' writers.

Upstream LiberTEM-live keeps its detector recordings private; its tests look
for them under ``$TESTDATA_BASE_PATH`` and skip when they are missing.  This
script writes synthetic recordings of the same kind under the names those
tests look for, so that the tests run instead of skipping:

* ``dectris/zmqdump.dat.128x128-id34-exte-bslz4``: a 128x128 scan, 16384
  images of 128x128 uint16 (upstream's are 512x512: smaller frames keep the
  session's 25 DECTRIS tests within CI's time), bitshuffle-LZ4, series 34,
  trigger mode ``exte``, in the ZeroMQ dump format the DECTRIS simulator
  replays;
* ``default.mib``: 1024 frames (a 32x32 scan) of 256x256 at counter depth 12,
  as a Merlin writes them to disk;
* ``asi-tpx3/header_data_with_padding_vals32bits.scr``: one 32x32 scan of
  512x512 event frames as the ASI TPX3 server streams them.

Not written: the 1 GiB Merlin ptycho series (``20200518 165148``), which one
test reads.  The tests these recordings cannot serve are deselected with
their reason in ``compat/deselected.py``.

    python compat/testdata.py DIR

A ``stamp`` file records what was written; a directory whose stamp matches is
left as it is, so the nox session pays for the files once.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

#: bump when a recording's content or layout changes
VERSION = 2


def write_dectris(root: Path) -> None:
    from libertem_live_dectris.sim import write_dump

    path = root / "dectris" / "zmqdump.dat.128x128-id34-exte-bslz4"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dump(path, frames=128 * 128, shape=(128, 128), dtype="uint16",
               compression="bslz4", series=34, pool_size=64)


def write_merlin(root: Path) -> None:
    from libertem_live_merlin.sim.source import make_frames, write_mib

    frames = make_frames(32 * 32, (256, 256), 12, seed=1)
    tmp = root / "default.mib.tmp"
    write_mib(tmp, frames, counter_depth=12)
    os.replace(tmp, root / "default.mib")


def write_tpx3(root: Path) -> None:
    from libertem_live_asi_tpx3.sim import write_capture

    path = root / "asi-tpx3" / "header_data_with_padding_vals32bits.scr"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_capture(path, nav_shape=(32, 32))


def ensure(root: Path) -> bool:
    """Write the recordings unless ``root`` already holds this version; True
    when something was written."""
    stamp = root / "stamp"
    want = json.dumps({"version": VERSION})
    if stamp.exists() and stamp.read_text() == want:
        return False
    root.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    write_dectris(root)
    write_merlin(root)
    write_tpx3(root)
    stamp.write_text(want)
    return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("dir", type=Path)
    args = p.parse_args()
    wrote = ensure(args.dir)
    print(f"{'wrote' if wrote else 'kept'} upstream test recordings in {args.dir}")


if __name__ == "__main__":
    main()
