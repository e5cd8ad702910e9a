"""Infeasible plans name who cannot be met, and the closest offer with its shortfall (exit 1).

Bad input (exit 2) is tested in test_spec_errors.py; here what is well-formed but has no
answer: an SLO or demand no offer meets (docs/planning-model.md, Outputs: status).
"""

from __future__ import annotations

import pytest

from conftest import run_cli, write_spec
from polyfleet.plan.exclusions import shortfall
from test_plan_constraints import acc, inference, make, offer, solve

CARD = {"name": "m8", "params_b": 8, "layers": 32, "kv_heads": 8, "head_dim": 128, "hidden": 4096}


def _slo_spec(tpot_ms: float) -> dict:
    """Two chips that differ only in memory bandwidth: the faster one is closer to a tight TPOT."""
    slow, fast = acc("slow"), acc("fast")
    slow["hbm_tbps"], fast["hbm_tbps"] = 1.0, 4.0
    work = inference("chat", 1, {}, allow_api=False, slo={"tpot_ms": tpot_ms})
    work["model"] = CARD
    return {
        "catalog": "none",
        "accelerators": [slow, fast],
        "offers": [offer("o-slow", "p1", "slow"), offer("o-fast", "p2", "fast")],
        "workloads": [work],
    }


def test_shortfall_is_reached_over_target() -> None:
    assert shortfall("slo: tpot 40 ms unreachable, one request alone: 52 ms") == pytest.approx(1.3)
    assert shortfall("memory: weights + KV need 141.6 GB, at most 31.0 GB usable") == pytest.approx(
        141.6 / 31
    )
    assert shortfall("spec: no TFLOPS") == float("inf")


def test_unreachable_slo_names_the_closest_offer_not_the_farthest(tmp_path) -> None:
    import yaml

    path = write_spec(tmp_path, yaml.safe_dump(_slo_spec(0.5)))
    result = run_cli("plan", path)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "workload 'chat'" in result.stderr
    assert "closest: o-fast:" in result.stderr and "o-slow" not in result.stderr


def test_absurd_demand_names_the_workload_and_its_closest_offer() -> None:
    # D = 1e15 req/s; o1 has 100 one-chip instances of 2 rps replicas: 200 req/s at most,
    # o2 50 instances of 1 rps: 50.  The bound: 250 / 1e15 of the peak; closest: o1 (200).
    spec = make(
        [acc("acc-a"), acc("acc-b", "vb")],
        [offer("o1", "p1", "acc-a"), offer("o2", "p2", "acc-b", avail=50)],
        [inference("w", 1e15, {"acc-a": (1, 2.0), "acc-b": (1, 1.0)})],
    )
    result = solve(spec)
    assert result["status"] == "infeasible"
    assert result["infeasible"]["family"] == "demand"
    assert result["infeasible"]["subject"] == "w"
    message = result["infeasible"]["message"]
    assert "workload 'w' cannot be met" in message
    assert "closest: o1 serves 200 of 1e+15 requests/s on all 100 instances" in message


def test_bool_for_a_number_is_bad_input(tmp_path) -> None:
    path = write_spec(
        tmp_path,
        "workloads:\n  - name: svc\n    kind: inference\n    model: llama-3.1-8b\n"
        "    requests_per_s: true\n    input_tokens: 100\n    output_tokens: 10\n",
    )
    result = run_cli("plan", path)
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"polyfleet: {path}:5: workloads[0].requests_per_s: expected a number, got true"
    )


# --- context length -----------------------------------------------------------------------


def _context_spec(api_context: int | None) -> dict:
    """A 1,000-token-context model asked for 600 + 600 token requests; one api offer."""
    card = {**CARD, "name": "short", "context_tokens": 1000}
    work = inference("chat", 1, {}, input_tokens=600, output_tokens=600)
    work["model"] = card
    api = {"id": "a1", "provider": "pa", "model": "short", "usd_per_mtok_in": 1, "usd_per_mtok_out": 1}
    if api_context is not None:
        api["context_tokens"] = api_context
    return {
        "catalog": "none",
        "accelerators": [acc("acc-a")],
        "offers": [offer("o1", "p1", "acc-a")],
        "api_offers": [api],
        "workloads": [work],
    }


def test_request_longer_than_the_context_cannot_be_placed(tmp_path) -> None:
    import yaml

    # 1,200 tokens > the card's 1,000 and the api offer states no limit of its own (so the
    # card's holds): nothing can take the request, exit 1 naming the workload
    path = write_spec(tmp_path, yaml.safe_dump(_context_spec(None)))
    result = run_cli("plan", path)
    assert result.exit_code == 1
    assert "infeasible (context)" in result.stderr and "workload 'chat'" in result.stderr
    assert "a request of 1200 tokens exceeds short's context of 1000" in result.stderr


def test_api_offer_with_a_longer_context_of_its_own_takes_the_request() -> None:
    from polyfleet.spec import build_spec

    # the host states 2,000 tokens: all of the demand is bought there (no offers to rent)
    result = solve(build_spec({**_context_spec(2000), "accelerators": [], "offers": []}))
    assert result["status"] == "optimal"
    (alloc,) = result["workloads"][0]["allocations"]
    assert (alloc["offer"], alloc["share"]) == ("a1", 1.0)


# --- a measured throughput whose replica cannot hold the weights --------------------------

TPUT = """\
workloads:
  - name: chat
    kind: inference
    model: llama-3.1-70b
    requests_per_s: 10
    input_tokens: 1000
    output_tokens: 200
    allow_api: false
    stacks: [cuda]
    throughput:
      nvidia-h100-sxm: {chips_per_replica: CHIPS, requests_per_s: 5FORCE}
"""


@pytest.mark.parametrize(
    ("chips", "force", "warned"), [(1, "", True), (1, ", force: true", False), (2, "", False)]
)
def test_throughput_override_that_cannot_hold_the_weights_warns(tmp_path, chips, force, warned) -> None:
    from polyfleet.spec import load_spec

    # llama-3.1-70b: 70.6 B params x 2 bytes (bf16) = 141 GB; one H100 holds 80 GB, two 160
    path = write_spec(tmp_path, TPUT.replace("CHIPS", str(chips)).replace("FORCE", force))
    warnings = load_spec(path).warnings
    expected = (
        f"{path}:11: workloads[0].throughput.nvidia-h100-sxm: a replica of 1 x nvidia-h100-sxm (80 GB) "
        "cannot hold llama-3.1-70b's 141 GB of weights; planned as given (add force: true if the "
        "measurement is meant)"
    )
    assert warnings == ([expected] if warned else [])
