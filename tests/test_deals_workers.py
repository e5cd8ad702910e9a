"""``polyfleet deal``'s worker processes give the one-process numbers (its Ray engine is
checked in tests/test_ray_engines.py, on the Ray instance the risk engine's tests start)."""

from __future__ import annotations

import numpy as np

from polyfleet.deals.problem import build_problem
from polyfleet.spec import build_spec
from test_deals import _brute_force_doc


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
