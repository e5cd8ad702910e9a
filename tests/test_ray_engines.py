"""Ray engines give the one-process numbers exactly: ``polyfleet risk --engine ray`` (Monte
Carlo chunks) and ``polyfleet deal``'s out-of-sample evaluation (Ray tasks).

Both run on one local Ray instance started once for this module (starting Ray costs about
7 s on two cores, so the deal and risk engines share it)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from polyfleet.deals.evaluate import local_mapper, out_of_sample
from polyfleet.deals.evaluate import ray_mapper as deal_ray_mapper
from polyfleet.deals.problem import build_problem
from polyfleet.risk import RiskAssumptions, fleet_from_plan, monte_carlo, ray_mapper
from polyfleet.spec import build_spec
from test_deals import _brute_force_doc
from test_risk import tiny_plan

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def test_ray_engine_matches_local_engine(local_ray: None) -> None:
    fleet = fleet_from_plan(tiny_plan())
    a = RiskAssumptions(outage_probability_per_month=0.2, capacity_shock_probability_per_month=0.3)
    local = monte_carlo(fleet, a, 10_000, seed=11)
    remote = monte_carlo(fleet, a, 10_000, seed=11, mapper=ray_mapper())
    np.testing.assert_array_equal(remote.cost_usd, local.cost_usd)
    np.testing.assert_array_equal(remote.unserved, local.unserved)
    assert local.cost_usd.std() > 0  # the scenarios are not all alike


def test_risk_cli_ray_engine_reuses_running_instance(local_ray: None, tmp_path) -> None:
    from conftest import run_cli

    path = tmp_path / "plan.json"
    path.write_text(json.dumps(tiny_plan()), encoding="utf-8")
    args = ["risk", path, "--scenarios", "5000", "--seed", "2", "--format", "json"]
    local = json.loads(run_cli(*args).stdout)
    result = run_cli(*args, "--engine", "ray")
    assert result.exit_code == 0, result.stderr
    remote = json.loads(result.stdout)
    assert remote.pop("engine") == "ray" and local.pop("engine") == "local"
    assert remote == local
    assert ray.is_initialized()  # the CLI leaves an instance it did not start running


def test_deal_ray_out_of_sample_matches_local(local_ray: None) -> None:
    spec = build_spec(_brute_force_doc(True))
    pb = build_problem(spec)
    unc, risk = spec.model.uncertainty, spec.model.risk
    firsts = [np.zeros(pb.n_first), np.array([1.0, 60000.0, 0, 0, 1.0, 3.0])]
    local = out_of_sample(pb, unc, risk, firsts, local_mapper, count=70)  # two chunks of 64 and 6
    remote = out_of_sample(pb, unc, risk, firsts, deal_ray_mapper(), count=70)
    np.testing.assert_allclose(remote.cost, local.cost, rtol=1e-9)
    assert local.cost.shape == (2, 70) and local.cost[0].std() > 0
    assert set(remote.families) == set(local.families)
