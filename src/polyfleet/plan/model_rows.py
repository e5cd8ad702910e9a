"""The row accumulator and build context that every constraint family writes into.

``build.py`` lays out the columns and calls one ``define_<family>`` per constraint family
(``constraints_core.py``, ``constraints_policy.py``); each adds a block of rows through a
``BuildContext`` from NumPy index arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from polyfleet.plan.candidates import Candidates
from polyfleet.spec import ApiWorkload, InferenceWorkload, Policy, TrainingWorkload


class Rows:
    """Accumulates row blocks as COO triplets."""

    def __init__(self) -> None:
        self.i: list[np.ndarray] = []
        self.j: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.family: list[np.ndarray] = []
        self.label: list[np.ndarray] = []
        self.n = 0

    def add(
        self,
        family: str,
        labels: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        vals: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
    ) -> np.ndarray:
        """Add ``len(labels)`` rows; ``rows`` indexes within the block.  Returns row ids."""
        n = len(labels)
        if n == 0:
            return np.zeros(0, int)
        self.i.append(np.asarray(rows, int) + self.n)
        self.j.append(np.asarray(cols, int))
        self.v.append(np.asarray(vals, float))
        self.lo.append(np.broadcast_to(np.asarray(lo, float), n))
        self.hi.append(np.broadcast_to(np.asarray(hi, float), n))
        self.family.append(np.full(n, family, dtype=object))
        self.label.append(np.asarray(labels, dtype=object))
        ids = np.arange(self.n, self.n + n)
        self.n += n
        return ids


@dataclass
class BuildContext:
    cand: Candidates
    policy: Policy
    cols: dict[str, slice]
    cost: np.ndarray
    rows: Rows
    elastic: str | None
    slack_rows: dict[str, np.ndarray] = field(default_factory=dict)

    def col(self, name: str, index: np.ndarray | int = 0) -> np.ndarray:
        return self.cols[name].start + np.asarray(index, int)


def workload_kinds(cand: Candidates) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    inf = np.array([isinstance(w, InferenceWorkload) for w in cand.workloads], bool)
    tr = np.array([isinstance(w, TrainingWorkload) for w in cand.workloads], bool)
    api = np.array([isinstance(w, ApiWorkload) for w in cand.workloads], bool)
    return inf, tr, api
