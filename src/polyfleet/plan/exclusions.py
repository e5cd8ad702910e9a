"""Why offers were excluded from a workload, and the error when none is left.

Candidate building counts each exclusion by kind (stack, spot, context, memory, slo,
spec, capacity, other) and keeps, per kind, the offer closest to working as the example
the error names.  A workload no offer can host is infeasible (``Unplaceable``, exit 1)
when a physical limit excluded them, else bad input (``SpecError``, exit 2).
"""

from __future__ import annotations

import math
import re
from collections import Counter

from polyfleet.errors import SpecError
from polyfleet.spec import Spec


class Unplaceable(SpecError):
    """No offer can meet a workload's SLO, deadline or memory: the plan is infeasible (exit 1).

    A ``SpecError`` so callers that only build candidates still print one line; ``plan``
    turns it into an infeasible ``Plan`` naming the workload and the closest offer.
    """

    def __init__(self, workload: str, kind: str, message: str):
        super().__init__(message)
        self.workload = workload
        self.kind = kind


def shortfall(reason: str) -> float:
    """How far an excluded offer is from working: reached / target for an SLO reason.

    An SLO reason names the target and what the offer reaches ("tpot 40 ms unreachable,
    one request alone: 52.3 ms"), so the ratio of the two numbers is its shortfall
    (1.31); a memory reason the GB needed and usable.  Anything else sorts last.
    """
    unit = {"slo": "ms", "memory": "GB"}.get(reason.split(":")[0])
    numbers = [float(n) for n in re.findall(rf"(\d+(?:\.\d+)?) {unit}", reason)] if unit else []
    if len(numbers) >= 2 and min(numbers[:2]) > 0:
        return max(numbers[:2]) / min(numbers[:2])
    return math.inf


def keep_closest(reasons: Counter, why: str, offer_id: str, score: float) -> None:
    """Keep, per kind of exclusion, the offer closest to working (lowest score) as the example."""
    kind = why.split(":")[0] or "other"
    best = reasons.get(("score", kind))  # type: ignore[call-overload]
    if best is None or score < best:
        reasons[("score", kind)] = score  # type: ignore[index]
        reasons[("example", kind)] = f"closest: {offer_id}: {why}"  # type: ignore[index]


def describe(reasons: Counter) -> str:
    """The exclusions counted by kind, each with its closest offer: 'N by slo (closest: ...)'."""
    parts = []
    for kind in ("stack", "spot", "context", "memory", "slo", "spec", "capacity", "other"):
        n = reasons.get(kind, 0)
        if n:
            example = reasons.get(("example", kind), "")  # type: ignore[call-overload]
            parts.append(f"{n} by {kind}" + (f" ({example})" if example else ""))
    return "; ".join(parts) if parts else "no offers in the catalog"


def no_offer_error(spec: Spec, w_index: int, n_offers: int, reasons: Counter) -> SpecError:
    """The error for workload ``w_index`` when every one of ``n_offers`` offers was excluded."""
    w = spec.workloads[w_index]
    message = f"no offer can host workload {w.name!r}: {n_offers} offers excluded, {describe(reasons)}"
    physical = [k for k in ("context", "slo", "capacity", "memory", "other") if reasons.get(k, 0)]
    if physical:  # an SLO, deadline or model no offer can meet: infeasible, exit 1
        return Unplaceable(w.name, physical[0], message)
    return spec.error(message, "workloads", w_index)
