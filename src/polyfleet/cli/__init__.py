"""``polyfleet`` commands.  Thin: parse, call the library, render, set the exit code.

Exit codes: 0 success; 1 infeasible, or no plan within the time limit; 2 bad input (one
line on stderr, never a traceback).

Every public module in this package registers its commands on ``main`` when imported;
they are imported here by discovery, so a new command group is one new file.
"""

import importlib
import pkgutil

from polyfleet.cli._app import main

for _info in pkgutil.iter_modules(__path__):
    if not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    main()
