"""``polyfleet`` commands.  Thin: parse, call the library, render, set the exit code.

Exit codes: 0 a plan; 1 infeasible, or no plan within the time limit; 2 bad input (one
line on stderr, never a traceback).
"""

from polyfleet.cli import catalog, export, perf, plan  # noqa: F401  (register commands)
from polyfleet.cli._app import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    main()
