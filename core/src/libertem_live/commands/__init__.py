"""The subcommands of ``libertem-live``, one module each; :mod:`libertem_live.cli`
only wires them into argparse, so that ``--help`` stays cheap to import."""
