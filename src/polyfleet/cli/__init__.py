"""``polyfleet`` commands.  Thin: parse, call the library, render, set the exit code.

Exit codes: 0 success; 1 infeasible, or no plan within the time limit; 2 bad input (one
line on stderr, never a traceback).

Every public module in this package registers its commands on ``main`` when imported;
``main`` imports them by discovery on the first command looked up (so ``--version`` stays
fast), and a new command group is one new file.
"""

from polyfleet.cli._app import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    main()
