"""What a plugin imports from the core: the hook marker, the description
of a driver or of a ``libertem-live`` subcommand, and the plugin-API version
it is written for."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import pluggy

from libertem_live.hookspecs import PROJECT_NAME

if TYPE_CHECKING:
    from libertem_live.parameters import Parameter

#: Major version of the plugin API.  A driver declares the version it was
#: written for; the registry refuses a driver whose version differs, with a
#: message naming the distribution to upgrade.
PLUGIN_API_VERSION = 1

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@dataclass
class DetectorInfo:
    """A driver, as a plugin announces it.

    ``open`` takes the connection parameters as keyword arguments and returns a
    :class:`~libertem_live.protocols.DetectorConnection`.  ``compat_module``
    (a module path) becomes importable as ``libertem_live.detectors.<name>``.

    The parameters users can pass to ``open`` (what ``libertem-live detectors
    NAME`` shows) are read from a signature: of ``signature_of`` when given,
    else of ``open``.  ``parameters`` only adds what each one means (name ->
    words).  A plugin's ``open`` is usually a lazy wrapper, ``open(**params)``,
    so that listing drivers imports nothing heavy, and its signature says
    nothing; name the connection class in ``signature_of`` then, as a
    ``"package.module:ClassName"`` string: it is imported only when someone asks
    for the parameters, never when drivers are listed.

    ``simulator`` names the driver's simulator, if it ships one, as a
    ``"package.module:function"`` string; ``libertem-live sim NAME`` imports it
    only when that simulator is run and calls ``function(argv, prog=...)``
    (``argv``: the command-line arguments after NAME; ``prog``: the command
    name for its ``--help`` and messages), which returns the exit status (None
    counts as 0).  Leaving it None keeps the driver out of ``libertem-live
    sim``; being optional, it did not change :data:`PLUGIN_API_VERSION`.
    """

    name: str
    open: Callable[..., Any]
    plugin_api: int = PLUGIN_API_VERSION
    description: str = ""
    compat_module: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    signature_of: str | Callable[..., Any] | None = None
    simulator: str | None = None

    def describe_parameters(self) -> list[Parameter]:
        """Name, default and meaning of each parameter of ``open``, in order;
        imports ``signature_of`` if it is a string."""
        from libertem_live.parameters import describe
        return describe(self)


@dataclass
class CommandInfo:
    """A subcommand a plugin adds to the ``libertem-live`` console command.

    ``main`` is a ``"package.module:function"`` string, imported only when
    the subcommand runs, so that ``libertem-live --help`` stays cheap; it is
    called as ``function(argv, prog=...)`` with the arguments after the
    subcommand's name (its own parser reads them, ``--help`` included) and
    returns the exit status (None counts as 0).  ``help`` is the line that
    ``libertem-live --help`` shows.  A name the core's own subcommands use,
    or one that another plugin claimed first, is not added; ``libertem-live
    --help`` lists the plugin commands it left out and why.
    """

    name: str
    main: str
    help: str = ""
