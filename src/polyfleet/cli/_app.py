"""The ``polyfleet`` click group; commands register on it from their modules."""

from __future__ import annotations

import click


@click.group()
@click.version_option(package_name="polyfleet")
def main() -> None:
    """Plan AI work across clouds and chip vendors: cheapest fleet under lock-in and N-1 policies."""
