"""The ``polyfleet`` click group; commands register on it from their modules.

The command modules import the planner, the gateway and matplotlib, so they load on the
first command looked up, not at start: ``polyfleet --version`` answers in well under
0.3 s (``bench/cli_startup.py`` measures it).
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
import sys
from pathlib import Path

import click

from polyfleet import __version__


class _LazyGroup(click.Group):
    """A group whose command modules (``polyfleet/cli/*.py`` not starting with ``_``) load on demand."""

    _loaded = False

    def _load(self) -> None:
        if not _LazyGroup._loaded:
            _LazyGroup._loaded = True
            for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
                if not info.name.startswith("_"):
                    importlib.import_module(f"polyfleet.cli.{info.name}")
            _add_wide(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load()
        return super().get_command(ctx, cmd_name)


def _add_wide(group: click.Group) -> None:
    """Give every command that renders tables (it has ``--format``) a ``--wide`` flag."""
    from polyfleet.cli._common import wide_option

    for command in group.commands.values():
        names = {p.name for p in command.params}
        if "fmt" in names and "wide" not in names:
            command.params.append(wide_option())
        if isinstance(command, click.Group):
            _add_wide(command)


def _tolerant_streams() -> None:
    """A terminal whose encoding lacks a character (latin-1 and '…') gets '?', not a traceback."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", "strict") == "strict":
            with contextlib.suppress(ValueError, OSError):  # a detached stream
                reconfigure(errors="replace")


@click.group(cls=_LazyGroup)
@click.version_option(version=__version__, prog_name="polyfleet")
def main() -> None:
    """Plan AI work across clouds and chip vendors: cheapest fleet under lock-in and N-1 policies."""
    _tolerant_streams()
