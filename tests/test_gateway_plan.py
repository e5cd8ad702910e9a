"""Follow the plan: committed first up to its planned rate, then overflow, then fallback; adherence in usage.

A plan (in the JSON contract's shape) with all three roles becomes a routes file
(``routes_from_plan``), ``polyfleet serve`` routes live traffic by role and planned rate
to fake upstreams, and ``polyfleet usage --adherence`` reports the shares against the plan.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from conftest import run_cli
from gateway_procs import (  # noqa: F401  (fixtures)
    fresh_fixture,
    gateway_fixture,
    upstreams_fixture,
)
from polyfleet.errors import SpecError
from polyfleet.gateway import build_routes
from polyfleet.gateway.routes import routes_from_plan
from polyfleet.gateway.routing import FollowPlan

MESSAGES = [{"role": "user", "content": "say hello to the fleet"}]


def plan(committed_rps: float) -> dict[str, Any]:
    """chat: own replicas (committed), a Sonnet api allocation (overflow), a together fallback."""
    return {
        "status": "optimal",
        "horizon_months": 1,
        "workloads": [
            {
                "name": "chat",
                "kind": "inference",
                "demand": {"requests_per_s": 5.0, "peak_requests_per_s": 2.5 * committed_rps},
                "allocations": [
                    {
                        "offer": "own-h100",
                        "provider": "own",
                        "accelerator": "H100",
                        "replicas": 1,
                        "share": 0.4,
                        "requests_per_s": committed_rps,
                        "usd": 1000.0,
                    },
                    {
                        "offer": "anthropic-sonnet",
                        "provider": "anthropic",
                        "accelerator": None,
                        "replicas": 0,
                        "share": 0.6,
                        "usd": 900.0,
                        "usd_per_mtok_in": 3.0,
                        "usd_per_mtok_out": 15.0,
                    },
                ],
                "api_fallbacks": [
                    {
                        "offer": "together-70b",
                        "provider": "together",
                        "requests_per_s": 20.0,
                        "usd_per_mtok_in": 0.88,
                        "usd_per_mtok_out": 0.88,
                    }
                ],
                "survival": {
                    "own": {
                        "served_fraction": 1.0,
                        "relies_on": [
                            {"offer": "anthropic-sonnet", "provider": "anthropic", "kind": "api"},
                            {"offer": "together-70b", "provider": "together", "kind": "api-fallback"},
                        ],
                    },
                    "anthropic": {
                        "served_fraction": 0.4,
                        "relies_on": [{"offer": "own-h100", "provider": "own", "kind": "replicas"}],
                    },
                },
            }
        ],
    }


def mapping(urls: dict[str, str]) -> dict[str, Any]:
    return {
        "models": {"chat": "llama"},
        "backends": {
            "own-h100": {"url": urls["own-h100"], "usd_per_mtok_in": 0.2, "usd_per_mtok_out": 0.6},
            "anthropic-sonnet": {"url": urls["anthropic-sonnet"], "name": "sonnet"},
            "together-70b": {"url": urls["together-70b"], "name": "together"},
        },
    }


URLS = {
    o: f"http://127.0.0.1:{9000 + i}/v1"
    for i, o in enumerate(("own-h100", "anthropic-sonnet", "together-70b"))
}


def test_routes_give_each_backend_its_role_planned_rate_and_own_prices():
    routes = routes_from_plan(plan(2.0), mapping(URLS))
    [chat] = routes["models"]
    assert chat["policy"] == "plan"
    by_name = {b["name"]: b for b in chat["backends"]}
    assert [(b["name"], b["role"]) for b in chat["backends"]] == [
        ("own-h100", "committed"),
        ("sonnet", "overflow"),
        ("together", "fallback"),
    ]
    assert by_name["own-h100"]["planned_requests_per_s"] == 2.0
    assert (by_name["own-h100"]["planned_share"], by_name["sonnet"]["planned_share"]) == (0.4, 0.6)
    # the api backends at their own input and output prices, not a blend ($3/$15, not $9/$9)
    assert (by_name["sonnet"]["usd_per_mtok_in"], by_name["sonnet"]["usd_per_mtok_out"]) == (3.0, 15.0)
    assert (by_name["together"]["usd_per_mtok_in"], by_name["together"]["weight"]) == (0.88, 0.0)
    build_routes(routes)  # loads as it is


def test_a_fallback_survival_relies_on_must_be_reachable():
    urls = mapping(URLS)
    del urls["backends"]["together-70b"]
    with pytest.raises(SpecError, match=r"'together-70b'.*a fallback survival relies on"):
        routes_from_plan(plan(2.0), urls)


class _Cand:
    def __init__(self, index: int, role: str, price: float, planned: float | None = None, rate: float = 0.0):
        self.index, self.role, self.price, self.planned_rps, self.rate_rps = index, role, price, planned, rate
        self.weight, self.load = 1.0, 0.0


def test_the_plan_policy_fills_committed_to_its_rate_then_overflow_by_price_then_fallback():
    policy = FollowPlan()
    own = _Cand(0, "committed", 0.8, planned=2.0, rate=1.0)
    dear, cheap = _Cand(1, "overflow", 18.0), _Cand(2, "overflow", 2.0)
    fallback = _Cand(3, "fallback", 1.76)
    assert policy.pick([own, dear, cheap, fallback]) is own  # 1.0 of 2.0 req/s: committed first
    own.rate_rps = 2.0
    assert policy.pick([own, dear, cheap, fallback]) is cheap  # at its planned rate: overflow, cheapest
    assert policy.pick([own, fallback]) is own  # no overflow left: committed beyond its rate
    assert policy.pick([fallback]) is fallback


def test_the_gateway_follows_the_plan_end_to_end_and_usage_reports_adherence(fresh, gateway, tmp_path):
    a, b, c = fresh
    urls = {"own-h100": a.url + "/v1", "anthropic-sonnet": b.url + "/v1", "together-70b": c.url + "/v1"}
    routes = routes_from_plan(plan(2.0), mapping(urls))
    gw = gateway({**routes, "breaker": {"failures": 1, "cooldown_s": 60}, "probe": {"interval_s": 30}})
    sdk = gw.openai()

    def one(_: int) -> str:
        answer = sdk.chat.completions.with_raw_response.create(model="llama", messages=MESSAGES, max_tokens=3)
        return answer.headers["x-polyfleet-backend"]

    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        served = list(pool.map(one, range(40)))
    elapsed = time.monotonic() - started
    # committed takes at most its planned 2 req/s over the run (+ one 1 s window); the rest overflows
    assert 1 <= served.count("own-h100") <= 2.0 * (elapsed + 1.0) + 1
    assert served.count("sonnet") == 40 - served.count("own-h100")
    assert served.count("together") == 0
    detail = httpx.get(gw.url + "/healthz", timeout=5).json()["plan"]["llama"]
    assert detail["own-h100"]["role"] == "committed" and detail["own-h100"]["planned_rps"] == 2.0
    # committed and overflow fail: the fallback survival relies on takes over
    a.control(mode="500")
    b.control(mode="500")
    fallback = [one(i) for i in range(3)]
    assert fallback[-1] == "together"
    gw.terminate()
    result = run_cli("usage", "--routes", gw.routes_file, "--adherence", "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = {r["backend"]: r for r in json.loads(result.stdout)}
    own, sonnet, together, total = rows["own-h100"], rows["sonnet"], rows["together"], rows["*"]
    ok = own["requests"] + sonnet["requests"] + together["requests"]
    assert total["requests"] == ok
    assert own["share"] == pytest.approx(own["requests"] / ok, abs=1e-4)
    assert (own["planned_share"], sonnet["planned_share"], together["planned_share"]) == (0.4, 0.6, 0.0)
    assert together["requests"] >= 1 and total["fallback_usd"] == together["cost_usd"] > 0
    # overflow at Sonnet's own prices: each answer is 5 in x $3 + 3 out x $15 per Mtok = $0.00006
    assert total["overflow_usd"] == pytest.approx(sonnet["requests"] * (5 * 3.0 + 3 * 15.0) / 1e6)
    assert 0.0 <= own["idle_share"] <= 1.0 and own["planned_rps"] == 2.0
    table = run_cli("usage", "--routes", gw.routes_file, "--adherence")
    assert table.exit_code == 0 and "plan adherence" in table.stdout
