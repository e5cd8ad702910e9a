"""Two gateway replicas sharing holds, breaker opens and rate limits through a real Redis.

Each test starts its own redis-server on a free port.  Without redis-server or the redis
package they are skipped, except under ``POLYFLEET_REQUIRE_SERVICES=1`` (``.ci/run``),
where they fail.
"""

from __future__ import annotations

import importlib.util
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from gateway_procs import (  # noqa: F401  (fixtures)
    backend,
    free_port,
    fresh_fixture,
    gateway_fixture,
    unavailable,
    upstreams_fixture,
)

MESSAGES = [{"role": "user", "content": "say hello to the fleet"}]


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A throwaway redis-server on a free port, without persistence."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed (apt-get install redis-server)")
    if importlib.util.find_spec("redis") is None:
        unavailable("the redis package is not installed (pip install 'polyfleet[redis]')")
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout != b"PONG\n":
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def state_of(gw, name: str) -> str:
    return httpx.get(gw.url + "/healthz", timeout=5).json()["models"]["llama"][name]


def wait_for(check, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_hold_and_an_open_breaker_seen_by_one_replica_steer_the_other(fresh, gateway, redis_url):
    a, b, _ = fresh
    routes = {
        "state": redis_url,
        "breaker": {"failures": 2, "cooldown_s": 30},
        "models": [{"name": "llama", "backends": [backend(a), backend(b)]}],
    }
    one, two = gateway(routes, name="one"), gateway(routes, name="two")
    a.control(mode="429", retry_after=30, times=1)
    for _ in range(2):
        one.openai().chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert state_of(one, "a") == "held"
    assert wait_for(lambda: state_of(two, "a") == "held")
    for _ in range(4):  # two never sent a thing to a, yet avoids it
        two.openai().chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert a.stats()["received"] == 1
    third = gateway(routes, name="three")  # a replica started later finds the hold in Redis
    assert state_of(third, "a") == "held"

    b.control(mode="500")
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):  # a held, b failing: 502
            one.openai().chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert state_of(one, "b") == "open"
    assert wait_for(lambda: state_of(two, "b") == "open")


def test_replicas_stay_within_a_backends_requests_per_minute_together(fresh, gateway, redis_url):
    a, b, _ = fresh
    routes = {
        "state": redis_url,
        "models": [
            {"name": "llama", "backends": [backend(a, 1.0, max_requests_per_minute=10), backend(b, 0.0)]}
        ],
    }
    one, two = gateway(routes, name="one"), gateway(routes, name="two")
    for _ in range(6):
        one.openai().chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    time.sleep(0.5)  # a few sync intervals
    for _ in range(6):
        two.openai().chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert (a.stats()["answered"], b.stats()["answered"]) == (10, 2)


def test_a_keys_budget_holds_across_replicas_on_one_redis(fresh, gateway, redis_url):
    """60 concurrent requests, 30 to each of two replicas: the budget holds for them together."""
    import asyncio

    from polyfleet.gateway.auth import hash_key

    a = fresh[0]
    a.control(delay_s=0.3)  # every request is in flight at once
    routes = {
        "state": redis_url,
        "keys": [{"name": "team", "key_sha256": hash_key("sk-team"), "budget_usd_per_day": 0.01}],
        # input free, output $100/Mtok: each request reserves and costs 5 x $100/Mtok = $0.0005,
        # so exactly 0.01 / 0.0005 = 20 fit in the budget, whichever replica serves them
        "models": [{"name": "llama", "backends": [backend(a, usd_per_mtok_in=0.0, usd_per_mtok_out=100.0)]}],
    }
    one, two = gateway(routes, name="one", wait=False), gateway(routes, name="two", wait=False)
    for gw in (one, two):  # started side by side
        gw.wait_ready("/healthz")

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=60)) as client:
            body = {"model": "llama", "messages": MESSAGES, "max_tokens": 5}
            headers = {"authorization": "Bearer sk-team"}
            return await asyncio.gather(
                *(
                    client.post(gw.url + "/v1/chat/completions", json=body, headers=headers)
                    for gw in (one, two)
                    for _ in range(30)
                )
            )

    replies = asyncio.run(run())
    refused = [r for r in replies if r.status_code == 429]
    served = [r for r in replies if r.status_code == 200]
    assert len(served) == 20 and len(refused) == 40  # alone, each replica would have let 20 through
    assert all(r.headers["x-should-retry"] == "false" for r in refused)
    assert all("budget_usd_per_day $0.01" in r.json()["error"]["message"] for r in refused)
    for gw in (one, two):  # both stop side by side; each flushes its ledger
        gw.popen.send_signal(signal.SIGTERM)
    for gw in (one, two):
        gw.terminate()
    spent = sum(gw.ledger_rows("SELECT COALESCE(SUM(cost_usd), 0) FROM requests")[0][0] for gw in (one, two))
    assert spent == pytest.approx(0.01) and spent <= 0.01 + 1e-12
