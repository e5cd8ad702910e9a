"""polyfleet's exception tree.

``PolyfleetError`` is the root.  ``SpecError`` is bad input (exit 2): it names the
file, the line, the field path and what was expected.  ``InfeasibleError`` is a
well-formed question with no answer (exit 1): it names the constraint family and the
workload, group or provider that cannot be met.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class PolyfleetError(Exception):
    """Root of every error polyfleet raises on purpose."""


class SpecError(PolyfleetError, ValueError):
    """Bad input: a spec, catalog or plan file that polyfleet cannot accept."""

    def __init__(self, message: str, *, file: str = "", line: int | None = None, path: str = ""):
        self.message = message
        self.file = file
        self.line = line
        self.path = path
        super().__init__(self.render())

    def render(self) -> str:
        """One line: ``file:line: path: message``."""
        where = self.file or "<spec>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class InfeasibleError(PolyfleetError):
    """No plan satisfies every constraint; ``family`` names the constraint family."""

    def __init__(self, family: str, message: str):
        self.family = family
        self.message = message
        super().__init__(f"infeasible ({family}): {message}")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ``; did you mean 'x'?`` suffix for the closest names, or ``""``."""
    options = list(choices)
    prefixed = sorted(c for c in options if c.startswith(name))
    close = prefixed + [
        c for c in difflib.get_close_matches(name, options, n=3, cutoff=0.5) if c not in prefixed
    ]
    close = close[:3]
    if not close:
        return ""
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?"
