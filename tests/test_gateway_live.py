"""The gateway in real processes: official OpenAI SDK clients, scripted upstreams, bounded waits."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import openai
import pytest

from gateway_procs import backend, fresh_fixture, gateway_fixture, upstreams_fixture  # noqa: F401  (fixtures)

MESSAGES = [{"role": "user", "content": "say hello to the fleet"}]  # 5 words = 5 input tokens


async def _load(gw: Any, n: int, concurrency: int, **request: Any) -> list[Any]:
    """``n`` chat completions through the SDK, ``concurrency`` at a time; results or exceptions."""
    sdk = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="none", max_retries=0, timeout=20)
    gate = asyncio.Semaphore(concurrency)

    async def one() -> Any:
        async with gate:
            return await sdk.chat.completions.create(
                model="llama", messages=MESSAGES, max_tokens=3, **request
            )

    try:
        return await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n)), return_exceptions=True), 60)
    finally:
        await sdk.close()


def load(gw: Any, n: int, concurrency: int = 16, **request: Any) -> list[Any]:
    return asyncio.run(_load(gw, n, concurrency, **request))


def model(*backends: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"models": [{"name": "llama", "backends": list(backends), **fields}]}


def test_weighted_split_within_two_percent_and_ledger_matches_upstream_usage(fresh, gateway):
    a, b, c = fresh
    gw = gateway(model(backend(a, 0.5), backend(b, 0.3), backend(c, 0.2)))
    results = load(gw, 2000)
    assert not [r for r in results if isinstance(r, BaseException)]
    counts = {u.name: u.stats()["answered"] for u in fresh}
    assert sum(counts.values()) == 2000
    for up, weight in ((a, 0.5), (b, 0.3), (c, 0.2)):
        assert abs(counts[up.name] / 2000 - weight) <= 0.02, counts
    assert gw.terminate() in (0, -15)  # uvicorn re-raises SIGTERM after its graceful shutdown
    sql = "SELECT backend, COUNT(*), SUM(tokens_in), SUM(tokens_out) FROM requests GROUP BY backend"
    rows = {r[0]: r[1:] for r in gw.ledger_rows(sql)}
    for up in fresh:
        stats = up.stats()
        assert rows[up.name][:3] == (stats["answered"], stats["prompt_tokens"], stats["completion_tokens"])


def test_streaming_passes_chunks_through_unbuffered_with_usage(fresh, gateway):
    a = fresh[0]
    a.control(chunk_delay_s=0.15)
    gw = gateway(model(backend(a, usd_per_mtok_in=1.0, usd_per_mtok_out=2.0)))
    started = time.monotonic()
    arrivals, text, usage = [], "", None
    for chunk in gw.openai().chat.completions.create(
        model="llama", messages=MESSAGES, max_tokens=6, stream=True, stream_options={"include_usage": True}
    ):
        arrivals.append(time.monotonic() - started)
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        usage = chunk.usage or usage
    assert text == "a " + "tok " * 5
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (5, 6)
    # 10 events 0.15 s apart: a buffering proxy would deliver the first with the last
    assert arrivals[0] < arrivals[-1] - 0.8
    gw.terminate()
    [(t_in, t_out, cost, streamed)] = gw.ledger_rows(
        "SELECT tokens_in, tokens_out, cost_usd, streamed FROM requests"
    )
    assert (t_in, t_out, streamed) == (5, 6, 1)
    assert cost == pytest.approx((5 * 1.0 + 6 * 2.0) / 1e6)


def test_backend_killed_mid_run_loses_no_request(fresh, gateway):
    a, b, _ = fresh
    a.control(delay_s=0.01)
    b.control(delay_s=0.01)
    gw = gateway(model(backend(a), backend(b)))

    async def run() -> list[Any]:
        task = asyncio.create_task(_load(gw, 600, 16))
        deadline = time.monotonic() + 20
        while b.stats()["answered"] < 100 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        b.kill()
        return await task

    results = asyncio.run(run())
    assert [r for r in results if isinstance(r, BaseException)] == []
    assert len(results) == 600
    health = httpx.get(gw.url + "/healthz", timeout=5).json()
    assert health["models"]["llama"]["b"] == "open"


def test_429_with_retry_after_moves_traffic_and_it_comes_back(fresh, gateway):
    a, b, _ = fresh
    a.control(mode="429", retry_after=1, times=1)
    gw = gateway(model(backend(a), backend(b)))
    sdk = gw.openai()
    for _ in range(10):
        sdk.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert (a.stats()["answered"], a.stats()["errors"], b.stats()["answered"]) == (0, 1, 10)
    assert httpx.get(gw.url + "/healthz", timeout=5).json()["models"]["llama"]["a"] == "held"
    time.sleep(1.1)
    for _ in range(10):
        sdk.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert a.stats()["answered"] == 5


def test_breaker_opens_after_failures_and_closes_after_a_good_probe(fresh, gateway):
    a, b, _ = fresh
    a.control(mode="500")
    gw = gateway({**model(backend(a), backend(b)), "breaker": {"failures": 2, "cooldown_s": 1}})
    sdk = gw.openai()
    for _ in range(10):  # every request succeeds: a's 500s fail over to b
        sdk.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert a.stats()["received"] == 2
    assert httpx.get(gw.url + "/healthz", timeout=5).json()["models"]["llama"]["a"] == "open"
    a.control(mode="ok")
    time.sleep(1.1)
    for _ in range(4):
        sdk.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert a.stats()["answered"] == 2
    assert httpx.get(gw.url + "/healthz", timeout=5).json()["models"]["llama"]["a"] == "up"
    metrics = httpx.get(gw.url + "/metrics", timeout=5).text
    assert 'polyfleet_failovers_total{backend="a",model="llama",reason="500"} 2.0' in metrics


def test_stalled_backend_times_out_before_first_byte_and_fails_over(fresh, gateway):
    a, b, _ = fresh
    a.control(mode="stall", times=1)
    gw = gateway({**model(backend(a), backend(b)), "timeouts": {"first_byte_s": 0.5}})
    reply = gw.openai().chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert reply.choices[0].message.content.startswith("b ")
    assert a.stats()["received"] == 1


def test_client_errors_pass_through_untouched_and_are_not_retried(fresh, gateway):
    a, b, _ = fresh
    gw = gateway(model(backend(a), backend(b)))
    with pytest.raises(openai.BadRequestError) as info:
        gw.openai().chat.completions.create(model="llama", messages=MESSAGES, max_tokens=-1)
    assert info.value.body == {"message": "max_tokens must be positive", "type": "invalid_request_error"}
    assert a.stats()["received"] + b.stats()["received"] == 1


def test_every_backend_failing_is_a_502_with_an_openai_error(fresh, gateway):
    a, b, _ = fresh
    a.control(mode="500")
    b.control(mode="500")
    gw = gateway(model(backend(a), backend(b)))
    with pytest.raises(openai.InternalServerError) as info:
        gw.openai().chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert info.value.status_code == 502
    assert info.value.body["code"] == "upstream_error"
    metrics = httpx.get(gw.url + "/metrics", timeout=5).text
    assert 'polyfleet_requests_total{backend="",model="llama",status="502"} 1.0' in metrics
    gw.terminate()
    assert gw.ledger_rows("SELECT backend, status, attempts, cost_usd FROM requests") == [("", 502, 0, 0.0)]


def test_a_backend_may_serve_the_model_under_its_own_name(fresh, gateway):
    a = fresh[0]
    gw = gateway(model(backend(a, model="meta-llama/Llama-3.1-70B-Instruct")))
    reply = gw.openai().chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert reply.model == "meta-llama/Llama-3.1-70B-Instruct"  # the upstream echoes what it was asked for


def test_bad_input_gets_openai_errors_and_the_gateway_keeps_serving(fresh, gateway):
    gw = gateway({**model(backend(fresh[0])), "max_body_bytes": 2000})
    url = gw.url + "/v1/chat/completions"
    bad = httpx.post(url, content=b"{not json", timeout=5)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"
    with pytest.raises(openai.NotFoundError) as info:
        gw.openai().chat.completions.create(model="gpt-9", messages=MESSAGES)
    assert info.value.body["code"] == "model_not_found"
    big = httpx.post(
        url, json={"model": "llama", "messages": [{"role": "user", "content": "x" * 5000}]}, timeout=5
    )
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    assert httpx.get(gw.url + "/nope", timeout=5).status_code == 404
    reply = gw.openai().chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert reply.usage.completion_tokens == 3
    assert [m.id for m in gw.openai().models.list()] == ["llama"]


def test_completions_and_embeddings_are_routed_and_priced(fresh, gateway):
    a = fresh[0]
    gw = gateway(model(backend(a, usd_per_mtok_in=2.0, usd_per_mtok_out=4.0)))
    sdk = gw.openai()
    done = sdk.completions.create(model="llama", prompt="one two three", max_tokens=4)
    assert done.choices[0].text.startswith("a ") and done.usage.prompt_tokens == 3
    assert sdk.embeddings.create(model="llama", input="one two").usage.prompt_tokens == 2
    gw.terminate()
    rows = gw.ledger_rows("SELECT endpoint, tokens_in, tokens_out, cost_usd FROM requests ORDER BY ts")
    assert [(e, i, o) for e, i, o, _ in rows] == [("completions", 3, 4), ("embeddings", 2, 0)]
    assert rows[0][3] == pytest.approx((3 * 2.0 + 4 * 4.0) / 1e6)


def test_upstream_key_comes_from_the_environment_and_is_never_recorded(fresh, gateway):
    a = fresh[0]
    secret = "sk-upstream-secret-0123456789"
    gw = gateway(model(backend(a, api_key_env="POLYFLEET_TEST_KEY")), env={"POLYFLEET_TEST_KEY": secret})
    reply = gw.openai().chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert reply.system_fingerprint == secret[-12:]  # the upstream saw "Bearer <secret>"
    assert secret not in httpx.get(gw.url + "/metrics", timeout=5).text
    gw.terminate()
    assert secret.encode() not in gw.ledger.read_bytes()
    assert gw.ledger_rows("SELECT COUNT(*) FROM requests") == [(1,)]
