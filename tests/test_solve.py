"""The solver wrapper: the rounded LP start is feasible, used, and never changes the answer."""

from __future__ import annotations

import numpy as np
import pytest

from polyfleet.plan import build_candidates, build_milp
from polyfleet.plan.rounding import rounded_start
from polyfleet.plan.solve import SolveOptions, Status, solve_milp
from polyfleet.spec import build_spec


def _spec(f: float = 0.5, cap: float = 0.7):
    accs = [
        {"id": f"a{i}", "vendor": v, "hbm_gb": 80, "hbm_tbps": 3, "bf16_tflops": 900, "stack": s}
        for i, (v, s) in enumerate([("nvidia", "cuda"), ("amd", "rocm"), ("nvidia", "cuda")])
    ]
    offers = [
        {
            "id": f"o{j}",
            "provider": f"p{j % 3}",
            "accelerator": f"a{j % 3}",
            "chips_per_instance": 8,
            "usd_per_chip_hour": 1.0 + 0.1 * j,
            "available_instances": 6,
        }
        for j in range(6)
    ]
    workloads = [
        {
            "name": f"w{i}",
            "kind": "inference",
            "model": {"name": "m", "params_b": 1, "layers": 2, "kv_heads": 1, "head_dim": 8},
            "requests_per_s": 7 + 3 * i,
            "input_tokens": 10,
            "output_tokens": 10,
            "allow_api": False,
            "throughput": {
                f"a{k}": {"chips_per_replica": 1 + (i + k) % 2, "requests_per_s": 1.5 + k} for k in range(3)
            },
        }
        for i in range(4)
    ]
    return build_spec(
        {
            "catalog": "none",
            "accelerators": accs,
            "offers": offers,
            "workloads": workloads,
            "policy": {"max_spend_share": {"provider": cap}, "survive_provider_loss": f},
        }
    )


def test_rounded_start_satisfies_every_row():
    spec = _spec()
    milp = build_milp(build_candidates(spec), spec.policy)
    v = rounded_start(milp, SolveOptions())
    assert v is not None
    activity = milp.A @ v
    assert np.all(activity >= milp.row_lower - 1e-6) and np.all(activity <= milp.row_upper + 1e-6)
    ints = milp.integer
    assert np.allclose(v[ints], np.round(v[ints]))


def test_rounded_start_does_not_change_the_optimum():
    spec = _spec()
    milp = build_milp(build_candidates(spec), spec.policy)
    plain = solve_milp(milp, SolveOptions(rounding_start_above=10**9))
    started = solve_milp(milp, SolveOptions(rounding_start_above=0))
    assert plain.status == started.status == Status.OPTIMAL
    assert started.rounded_start and not plain.rounded_start
    assert started.objective == pytest.approx(plain.objective, rel=1e-6)


def test_floor_and_fill_covers_demand_within_room_at_least_marginal_cost():
    """Tiny workloads: rounding every fractional pair up opens instances nobody fills; the
    fill puts each workload's missing replica where a rented instance has free chips."""
    from polyfleet.plan.rounding import _floor_and_fill

    spec = _spec(f=0.0, cap=1.0)
    cand = build_candidates(spec)
    milp = build_milp(cand, spec.policy)
    xs = milp.cols["x"]
    x_lp = np.zeros(xs.stop - xs.start)
    # every workload 60% of its demand on its first candidate: the fill must add the rest
    for w in range(len(cand.workloads)):
        ks = np.flatnonzero(milp.x_workload == w)
        x_lp[ks[0]] = 0.6 * milp.peak_rps[w] / milp.x_rps[ks[0]]
    room = np.full(len(cand.offers), 6.0)
    x = _floor_and_fill(milp, x_lp, np.zeros(0), room)
    served = np.bincount(milp.x_workload, milp.x_rps * x, minlength=len(cand.workloads))
    assert np.all(served >= milp.peak_rps - 1e-9)
    chips = np.bincount(milp.x_offer, milp.x_chips * x, minlength=len(cand.offers))
    instances = np.ceil(chips / milp.u_cpi)
    assert np.all(instances <= room)
    # no offer holds an instance that another offer's free chips could have avoided:
    # the fill never opens a second 8-chip instance while one is under half full
    assert np.all((chips == 0) | (chips > 8 * (instances - 1)))
    room_zero = room.copy()
    room_zero[:] = 0
    none_fit = _floor_and_fill(milp, x_lp, np.zeros(0), room_zero)
    assert np.array_equal(none_fit, np.floor(x_lp))  # no room: nothing is added


def test_small_offers_stay_open_to_the_rounded_plan():
    """Tightening capacity by 10% must not close offers of a few instances (floor(0.9) = 0)."""
    from test_plan_constraints import acc, inference, make, offer

    offers = [offer(f"a{i:02d}", f"p{i % 3}", "acc-a", cpi=8, avail=1) for i in range(20)]
    offers.append(offer("big", "px", "acc-a", cpi=8, price=2.0))
    spec = make([acc("acc-a")], offers, [inference("w", 100, {"acc-a": (1, 1.0)})])
    milp = build_milp(build_candidates(spec), spec.policy)
    rounded = rounded_start(milp, SolveOptions())
    assert rounded is not None
    activity = milp.A @ rounded
    assert np.all(activity >= milp.row_lower - 1e-6) and np.all(activity <= milp.row_upper + 1e-6)
    # 100 one-chip replicas need 100 chips, bought in whole 8-chip instances: at least
    # ceil(100 / 8) = 13 instances at $1/chip-h, which the 20 one-instance $1 offers hold.
    # That bound is the optimum (the exact solve, symmetric over 20 equal offers, proves it
    # only after a minute), and the rounded plan must reach it.
    assert milp.cost @ rounded == pytest.approx(13 * 8 * 730)


def test_whole_replica_rows_lift_the_lp_bound_but_not_the_plan():
    """D = 0.3 rps, best replica 1 rps: the LP buys 0.3 of a replica without the row, 1 with it."""
    from dataclasses import replace

    from polyfleet.plan.build import FAMILIES
    from test_plan_constraints import acc, inference, make, offer

    spec = make([acc("acc-a")], [offer("o1", "p1", "acc-a")], [inference("w", 0.3, {"acc-a": (1, 1.0)})])
    cand = build_candidates(spec)
    milp = build_milp(cand, spec.policy)
    rows = np.flatnonzero((milp.row_family == "demand") & (milp.row_lower == 1.0))
    assert len(rows) == 1
    relaxed = replace(milp, integer=np.zeros_like(milp.integer))
    with_row = solve_milp(relaxed)
    without = solve_milp(replace(relaxed, row_lower=np.where(np.arange(len(milp.row_lower)) == rows[0],
                                                               -np.inf, milp.row_lower)))  # fmt: skip
    assert with_row.values[milp.cols["x"]].sum() == pytest.approx(1.0)
    assert without.values[milp.cols["x"]].sum() == pytest.approx(0.3)
    assert solve_milp(milp).objective == pytest.approx(730.0, rel=1e-6)  # one whole replica either way
    assert "demand" in FAMILIES


def test_survival_replica_rows_lift_the_lp_but_not_the_plan():
    """D = 1.5 rps over two providers, f = 0.5: without either provider, 0.75 rps must stay,
    so at least one whole replica elsewhere; the LP alone would keep 0.75 of one."""
    from dataclasses import replace

    from test_plan_constraints import acc, inference, make, offer

    spec = make(
        [acc("acc-a")],
        [offer("o1", "p1", "acc-a"), offer("o2", "p2", "acc-a")],
        [inference("w", 1.5, {"acc-a": (1, 1.0)})],
        policy={"survive_provider_loss": 0.5},
    )
    milp = build_milp(build_candidates(spec), spec.policy)
    cut = np.flatnonzero((milp.row_family == "replicas") & (milp.row_lower > 0))
    assert len(cut) == 2 and np.all(milp.row_lower[cut] == 1.0)
    relaxed = solve_milp(replace(milp, integer=np.zeros_like(milp.integer)))
    x = relaxed.values[milp.cols["x"]]
    assert np.all(x >= 1.0 - 1e-6)  # each provider keeps a whole replica for the other's loss
    assert solve_milp(milp).objective == pytest.approx(2 * 730.0, rel=1e-6)


def _feasible(milp, v) -> bool:
    activity = milp.A @ v
    rows_ok = np.all(activity >= milp.row_lower - 1e-6) and np.all(activity <= milp.row_upper + 1e-6)
    ints = milp.integer
    return bool(rows_ok and np.allclose(v[ints], np.round(v[ints])))


@pytest.mark.parametrize("f, cap", [(0.5, 0.7), (0.0, 1.0), (0.6, 0.45)])
def test_lp_plan_is_a_whole_plan_between_the_lp_bound_and_the_rounding(f, cap):
    import time

    from polyfleet.plan.solve import _lp_plan, _lp_seconds

    spec = _spec(f=f, cap=cap)
    milp = build_milp(build_candidates(spec), spec.policy)
    dived, lp_bound, method, lp_seconds = _lp_plan(milp, SolveOptions(), time.perf_counter())
    assert method in ("greedy", "dive", "restricted-milp", "lns")
    rounded = rounded_start(milp, SolveOptions())
    assert dived is not None and _feasible(milp, dived)
    bound, _ = _lp_seconds(milp, SolveOptions())
    assert lp_bound == pytest.approx(bound, rel=1e-9) and lp_seconds > 0
    best = solve_milp(milp, SolveOptions(rounding_start_above=10**9))
    assert bound - 1e-6 <= best.objective <= milp.objective @ dived + 1e-6
    if rounded is not None:
        assert milp.cost @ dived <= milp.cost @ rounded + 1e-6


def test_dive_alone_gives_a_whole_plan():
    from polyfleet.plan.dive import dive, keep_columns
    from polyfleet.plan.highs import build_highs

    spec = _spec()
    milp = build_milp(build_candidates(spec), spec.policy)
    h = build_highs(milp, SolveOptions(), np.zeros_like(milp.integer), milp.upper)
    h.run()
    lp = np.asarray(h.getSolution().col_value)
    v = dive(h, milp, lp, keep_columns(milp, lp, milp.u_provider), deadline=float("inf"))
    assert v is not None
    v = v.copy()
    v[milp.integer] = np.round(v[milp.integer])
    assert _feasible(milp, v)
    assert milp.objective @ v >= milp.objective @ lp - 1e-6


def test_keep_placements_holds_the_lp_choice_and_the_three_cheapest_per_job():
    from polyfleet.plan.dive import PLACEMENTS_KEPT, keep_placements
    from test_plan_constraints import acc, make, offer, training

    offers = [offer(f"o{i}", f"p{i % 3}", "acc-a", price=1.0 + 0.1 * i) for i in range(6)]
    spec = make([acc("acc-a")], offers, [training()])
    milp = build_milp(build_candidates(spec), spec.policy)
    ys = milp.cols["y"]
    lp = np.zeros(milp.n_cols)
    lp[ys.stop - 1] = 1.0  # the LP put the job on its dearest placement
    keep = keep_placements(milp, lp)
    cost = milp.objective[ys]
    cheapest = np.argsort(cost, kind="stable")[:PLACEMENTS_KEPT]
    assert keep[cheapest].all() and keep[-1]
    assert keep.sum() == PLACEMENTS_KEPT + 1


def test_keep_columns_holds_the_lp_support_and_the_cheapest_per_provider():
    from polyfleet.plan.dive import keep_columns

    spec = _spec()
    milp = build_milp(build_candidates(spec), spec.policy)
    xs, us = milp.cols["x"], milp.cols["u"]
    lp = np.zeros(milp.n_cols)
    lp[xs.start + 3] = 0.5  # one column the LP uses
    keep = keep_columns(milp, lp, milp.u_provider)
    assert keep[3]
    per_rps = milp.x_chips * (milp.cost[us] / milp.u_cpi)[milp.x_offer] / milp.x_rps
    prov = milp.u_provider[milp.x_offer]
    for w in np.unique(milp.x_workload):
        for p in np.unique(prov):
            ks = np.flatnonzero((milp.x_workload == w) & (prov == p))
            if len(ks):
                assert keep[ks[np.argmin(per_rps[ks])]]
                # nothing dearer at that provider is kept unless the LP uses it (here each
                # provider sells one vendor's chips, so the per-vendor best adds nothing)
                dearer = ks[per_rps[ks] > per_rps[ks].min()]
                assert not keep[dearer[dearer != 3]].any()


def test_keep_columns_holds_the_cheapest_per_vendor_so_a_vendor_cap_can_be_met():
    # p1 sells nvidia at $1 and amd at $3 per chip-hour, p2 nvidia at $1.2; one replica
    # (1 chip, 1 rps) serves 1 rps.  The cheapest per provider are both nvidia; the amd
    # column is kept as the cheapest amd one.  With any vendor capped at 80% of spend and
    # 2 rps to serve, all-nvidia is out (100%); the optimum is one nvidia and one amd
    # replica: 730 x (1 + 3) = $2,920 (amd 75%).
    from polyfleet.plan.dive import keep_columns
    from test_plan_constraints import acc, inference, make, offer

    spec = make(
        [acc("nv", "nvidia"), acc("am", "amd")],
        [offer("p1-nv", "p1", "nv", price=1.0), offer("p1-am", "p1", "am", price=3.0),
         offer("p2-nv", "p2", "nv", price=1.2)],
        [inference("w", 2.0, {"nv": (1, 1.0), "am": (1, 1.0)})],
        policy={"max_spend_share": {"vendor": 0.8}},
    )  # fmt: skip
    cand = build_candidates(spec)
    milp = build_milp(cand, spec.policy)
    keep = keep_columns(milp, np.zeros(milp.n_cols), milp.u_provider)
    ids = [cand.offers[o].id for o in milp.x_offer]
    assert keep[ids.index("p1-am")] and keep.all()
    exact = solve_milp(milp, SolveOptions(rounding_start_above=10**9))
    assert exact.status == Status.OPTIMAL and milp.cost @ exact.values == pytest.approx(730 * 4)
    forced = solve_milp(milp, SolveOptions(rounding_start_above=0, time_limit_s=2))
    assert milp.cost @ forced.values == pytest.approx(730 * 4)


def test_shave_drops_every_replica_the_rows_do_not_need():
    from polyfleet.plan.dive import derive, shave

    spec = _spec()
    milp = build_milp(build_candidates(spec), spec.policy)
    best = solve_milp(milp, SolveOptions(rounding_start_above=10**9))
    xs = milp.cols["x"]
    padded = best.values.copy()
    used = np.flatnonzero(padded[xs] > 0.5)
    padded[xs.start + used] += 2  # two spare replicas on every used candidate
    padded = derive(milp, padded)
    shaved = shave(milp, padded, deadline=float("inf"))
    assert _feasible(milp, shaved)
    assert milp.cost @ shaved < milp.cost @ padded
    assert milp.cost @ shaved >= milp.cost @ best.values - 1e-6
    # a local minimum: taking any one more replica away breaks a row
    for k in np.flatnonzero(shaved[xs] > 0.5):
        trial = shaved.copy()
        trial[xs.start + k] -= 1
        assert not _feasible(milp, derive(milp, trial))


def _synthetic(n_w: int, n_o: int, seed: int):
    """A seeded synthetic fleet from bench/plan_scale.py (caps, survival, training, api)."""
    from conftest import load_bench

    module = load_bench("plan_scale")
    doc = module.generate(n_w, n_o, np.random.default_rng([seed, n_w, n_o]))
    return build_spec(doc)


#: seeds whose 8-workload, 40-offer fleet HiGHS proves optimal in about a second, and on which
#: the 2-second budget ends on the LP plan path (LNS), not an exact solve
@pytest.mark.parametrize("seed", [2, 10])
def test_large_model_path_returns_a_plan_that_keeps_every_row(seed):
    """The LP plan path (dive + restricted MILP), forced on a model small enough to solve
    exactly: its plan satisfies every row, and its reported gap is never smaller than its
    true distance from the optimum."""
    spec = _synthetic(8, 40, seed)
    milp = build_milp(build_candidates(spec), spec.policy)
    exact = solve_milp(milp, SolveOptions(rounding_start_above=10**9, time_limit_s=60))
    assert exact.status == Status.OPTIMAL and exact.method == "highs"
    fast = solve_milp(milp, SolveOptions(rounding_start_above=0, time_limit_s=2.0))
    assert fast.status in (Status.OPTIMAL, Status.FEASIBLE)
    if fast.status == Status.FEASIBLE:  # the LP plan path answered, and says which step
        assert fast.method in ("greedy", "restricted-milp", "dive", "lns")
    assert _feasible(milp, fast.values)
    assert fast.objective >= exact.objective * (1 - 1e-6)
    if fast.status == Status.FEASIBLE and np.isfinite(fast.gap):
        true_gap = (fast.objective - exact.objective) / fast.objective
        assert fast.gap >= true_gap - 1e-6


def test_subset_keeps_rows_and_block_arrays_aligned():
    from polyfleet.plan.dive import subset

    spec = _synthetic(8, 40, 10)
    milp = build_milp(build_candidates(spec), spec.policy)
    best = solve_milp(milp, SolveOptions(rounding_start_above=10**9))
    xs, ys = milp.cols["x"], milp.cols["y"]
    keep = np.ones(milp.n_cols, bool)
    keep[xs] = best.values[xs] > 0.5  # only the replica columns the plan uses
    keep[xs.start] = True
    cols = np.flatnonzero(keep)
    sub = subset(milp, cols)
    assert sub.n_cols == len(cols) and sub.A.shape == (milp.A.shape[0], len(cols))
    for name, sl in milp.cols.items():  # every block keeps its length minus what was dropped
        assert sub.cols[name].stop - sub.cols[name].start == int(keep[sl].sum())
    kx = cols[(cols >= xs.start) & (cols < xs.stop)] - xs.start
    assert np.array_equal(sub.x_offer, milp.x_offer[kx]) and np.array_equal(sub.x_rps, milp.x_rps[kx])
    assert len(sub.y_job) == ys.stop - ys.start
    # the plan restricted to the subset, scattered back, is the same plan of the full model
    v_sub = best.values[cols]
    assert np.allclose(sub.A @ v_sub, milp.A @ best.values)
    assert sub.cost @ v_sub == pytest.approx(milp.cost @ best.values)
