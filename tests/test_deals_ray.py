"""Parallel engines of ``polyfleet deal`` (Ray tasks, worker processes) give the one-process numbers."""

from __future__ import annotations

import numpy as np
import pytest

from polyfleet.deals.evaluate import local_mapper, out_of_sample, ray_mapper
from polyfleet.deals.problem import build_problem
from polyfleet.spec import build_spec
from test_deals import _brute_force_doc

ray = pytest.importorskip("ray")


def test_ray_out_of_sample_matches_local() -> None:
    spec = build_spec(_brute_force_doc(True))
    pb = build_problem(spec)
    unc, risk = spec.model.uncertainty, spec.model.risk
    firsts = [np.zeros(pb.n_first), np.array([1.0, 60000.0, 0, 0, 1.0, 3.0])]
    local = out_of_sample(pb, unc, risk, firsts, local_mapper, count=70)  # two chunks of 64 and 6
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        remote = out_of_sample(pb, unc, risk, firsts, ray_mapper(), count=70)
    finally:
        ray.shutdown()
    np.testing.assert_allclose(remote.cost, local.cost, rtol=1e-9)
    assert local.cost.shape == (2, 70) and local.cost[0].std() > 0
    assert set(remote.families) == set(local.families)


def test_worker_processes_match_one_process() -> None:
    from polyfleet.deals.benders import Evaluations, PoolEvaluations, build_solvers, wait_and_see
    from polyfleet.deals.evaluate import in_sample

    spec = build_spec(_brute_force_doc(False))
    pb = build_problem(spec)
    unc, risk = spec.model.uncertainty, spec.model.risk
    sc = in_sample(pb, unc, risk)
    solvers = build_solvers(pb, sc)
    local = Evaluations(solvers)
    pool = PoolEvaluations(pb, sc, 2)
    try:
        for first in (np.zeros(pb.n_first), np.array([1.0, 60000.0, 1.0, 4.0, 1.0, 3.0])):
            np.testing.assert_allclose(pool(first)[0], local(first)[0], rtol=1e-9)
            np.testing.assert_allclose(pool(first)[1], local(first)[1], rtol=1e-7, atol=1e-6)
        np.testing.assert_allclose(pool.wait_and_see(), [wait_and_see(pb, s) for s in solvers], rtol=1e-9)
    finally:
        pool.close()
