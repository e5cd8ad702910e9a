"""Planning: candidates -> MILP -> HiGHS -> ``Plan``; explain and diagnose by re-solving."""

from __future__ import annotations

import time

from polyfleet.errors import SpecError
from polyfleet.plan.build import FAMILIES, Milp, build_milp
from polyfleet.plan.candidates import Candidates, build_candidates
from polyfleet.plan.diagnose import caps_precheck, diagnose
from polyfleet.plan.exclusions import Unplaceable
from polyfleet.plan.explain import explain
from polyfleet.plan.monthly import plan_monthly
from polyfleet.plan.result import Infeasibility, Plan, read_plan
from polyfleet.plan.solve import SolveOptions, Status, solve_milp
from polyfleet.plan.terms import book_blocks
from polyfleet.spec import Spec

DEFAULT_OPTIONS = SolveOptions()

__all__ = [
    "FAMILIES",
    "Candidates",
    "Infeasibility",
    "Milp",
    "Plan",
    "SolveOptions",
    "Status",
    "build_candidates",
    "build_milp",
    "plan",
    "solve_candidates",
]


def solve_candidates(
    cand: Candidates,
    spec: Spec,
    options: SolveOptions = DEFAULT_OPTIONS,
    *,
    families: tuple[str, ...] = FAMILIES,
) -> Plan:
    """Build and solve the MILP for prepared candidates; infeasible plans carry a diagnosis."""
    start = time.perf_counter()
    milp = build_milp(cand, spec.policy, families=families)
    build_seconds = time.perf_counter() - start
    sol = solve_milp(milp, options)
    if sol.status == Status.UNKNOWN:
        message = (
            f"no plan found within the time limit ({options.time_limit_s:g} s); "
            "raise --time-limit or loosen --gap"
        )
        return Plan(
            status=Status.UNKNOWN,
            horizon_months=spec.horizon_months,
            solve_seconds=sol.seconds,
            build_seconds=build_seconds,
            limit="time",
            infeasibility=Infeasibility("time-limit", "", message),
        )
    if sol.status == Status.INFEASIBLE:
        result = Plan(
            status=Status.INFEASIBLE,
            horizon_months=spec.horizon_months,
            solve_seconds=sol.seconds,
            build_seconds=build_seconds,
            infeasibility=diagnose(cand, spec.policy, families, options),
        )
        return result
    result = read_plan(cand, milp, sol, spec.policy, spec.horizon_months)
    result.build_seconds = build_seconds
    return result


def plan(spec: Spec, options: SolveOptions = DEFAULT_OPTIONS, *, with_explain: bool = False) -> Plan:
    """The cheapest plan for ``spec``, carrying the spec's warnings (see :func:`_plan`)."""
    result = _plan(spec, options, with_explain=with_explain)
    result.warnings = list(getattr(spec, "warnings", []))
    return result


def _plan(spec: Spec, options: SolveOptions = DEFAULT_OPTIONS, *, with_explain: bool = False) -> Plan:
    """The cheapest plan for ``spec`` (``docs/planning-model.md``).

    Raises ``SpecError`` when the spec cannot be planned at all (a workload no offer can
    host for a reason of the spec's own: stacks, spot cap, missing data); returns a
    ``Plan`` with status ``infeasible`` naming the workload and the closest offer when no
    offer can meet its SLO, deadline or memory, or when the constraints together cannot
    be met (its ``Infeasibility`` says which family and who).
    """
    try:
        cand = book_blocks(build_candidates(spec))  # a job on a capacity block pays whole days
    except Unplaceable as exc:  # no offer meets a workload's SLO, deadline or memory
        return Plan(
            status=Status.INFEASIBLE,
            horizon_months=spec.horizon_months,
            infeasibility=Infeasibility(exc.kind, exc.workload, exc.message),
        )
    # whole replicas no cap admits: no solve needed (single period: a month's demand differs)
    capped = caps_precheck(cand, spec.policy) if spec.model.periods != "monthly" else None
    if capped is not None:
        return Plan(status=Status.INFEASIBLE, horizon_months=spec.horizon_months, infeasibility=capped)
    if spec.model.periods == "monthly":
        if with_explain:
            raise SpecError(
                "--explain prices policies of single-period plans only", file=spec.file, path="periods"
            )
        return plan_monthly(spec, cand, options)
    result = solve_candidates(cand, spec, options)
    if with_explain and result.feasible:
        result.explain = explain(cand, spec, result, options, solve=solve_candidates)
    return result
