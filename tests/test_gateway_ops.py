"""Gateway keys and budgets, the Anthropic Messages API, SIGTERM under load, and `polyfleet usage`."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import anthropic
import httpx
import openai
import pytest

from conftest import run_cli
from gateway_procs import backend, fresh_fixture, gateway_fixture, upstreams_fixture  # noqa: F401  (fixtures)
from polyfleet.gateway import hash_key

MESSAGES = [{"role": "user", "content": "say hello to the fleet"}]


def two_models(a: Any, b: Any, usd_in: float = 1000.0, **fields: Any) -> dict[str, Any]:
    return {
        "models": [
            {"name": "llama", "backends": [backend(a, usd_per_mtok_in=usd_in, usd_per_mtok_out=1000.0)]},
            {"name": "qwen", "backends": [backend(b)]},
        ],
        **fields,
    }


def test_keys_budgets_and_model_permissions(fresh, gateway):
    a, b, _ = fresh
    keys = [
        {
            "name": "search",
            "key_sha256": hash_key("sk-search"),
            "budget_usd_per_day": 0.01,
            "models": ["llama"],
        },
        {"name": "ops", "key_sha256": hash_key("sk-ops")},
    ]
    gw = gateway(two_models(a, b, usd_in=100.0, keys=keys))

    sdk = gw.openai
    with pytest.raises(openai.AuthenticationError) as info:
        sdk("sk-wrong").chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert info.value.body["code"] == "invalid_api_key"
    bare = httpx.post(
        gw.url + "/v1/chat/completions", json={"model": "llama", "messages": MESSAGES}, timeout=5
    )
    assert bare.status_code == 401 and bare.json()["error"]["code"] == "invalid_api_key"
    assert a.stats()["received"] == 0
    with pytest.raises(openai.PermissionDeniedError):
        sdk("sk-search").chat.completions.create(model="qwen", messages=MESSAGES, max_tokens=3)
    assert [m.id for m in sdk("sk-search").models.list()] == ["llama"]
    # each request costs 5 in x $100/Mtok + 3 out x $1000/Mtok = $0.0035 and reserves its maximum
    # first: 33 input tokens at most ("user" 4 + "say hello to the fleet" 22 bytes + 4 + 3) x $100/Mtok
    # + 3 x $1000/Mtok = $0.0063.  Second: $0.0035 spent + $0.0063 <= $0.01: sent.  Third:
    # $0.007 + $0.0063 > $0.01: refused, though only $0.007 is spent.
    for _ in range(2):
        sdk("sk-search").chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    with pytest.raises(openai.RateLimitError) as info:
        sdk("sk-search").chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert info.value.body["type"] == "insufficient_quota"
    assert info.value.response.headers["x-should-retry"] == "false"
    assert "budget_usd_per_day $0.01" in info.value.body["message"]
    assert a.stats()["answered"] == 2
    sdk("sk-ops").chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)  # other keys go on
    assert gw.terminate() in (0, -15)
    rows = gw.ledger_rows("SELECT key, COUNT(*) FROM requests GROUP BY key ORDER BY key")
    assert rows == [("ops", 1), ("search", 2)]
    ledger = f"sqlite:///{gw.ledger}"
    again = gateway(two_models(a, b, usd_in=100.0, keys=keys, ledger=ledger), name="restarted")
    with pytest.raises(openai.RateLimitError):  # the spend survives a restart: it is read from the ledger
        again.openai("sk-search").chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)


def test_anthropic_messages_with_the_official_sdk(fresh, gateway):
    a = fresh[0]
    routes = {
        "models": [
            {
                "name": "claude-sonnet-4.5",
                "backends": [
                    backend(
                        a,
                        api="anthropic",
                        api_key_env="POLYFLEET_TEST_ANTHROPIC",
                        usd_per_mtok_in=3.0,
                        usd_per_mtok_out=15.0,
                    ),
                ],
            }
        ]
    }
    gw = gateway(routes, env={"POLYFLEET_TEST_ANTHROPIC": "sk-ant-test"})
    sdk = gw.anthropic()
    reply = sdk.messages.create(model="claude-sonnet-4.5", max_tokens=4, messages=MESSAGES)
    assert reply.content[0].text.startswith("a ")
    assert (reply.usage.input_tokens, reply.usage.output_tokens) == (5, 4)
    with sdk.messages.stream(model="claude-sonnet-4.5", max_tokens=6, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "a " + "tok " * 5
    assert final.usage.output_tokens == 6
    with pytest.raises(openai.NotFoundError):  # no OpenAI-speaking backend for this model
        gw.openai().chat.completions.create(model="claude-sonnet-4.5", messages=MESSAGES)
    gw.terminate()
    rows = gw.ledger_rows(
        "SELECT endpoint, tokens_in, tokens_out, cost_usd, streamed FROM requests ORDER BY ts"
    )
    assert [r[:3] + r[4:] for r in rows] == [("messages", 5, 4, 0), ("messages", 5, 6, 1)]
    assert rows[1][3] == pytest.approx((5 * 3.0 + 6 * 15.0) / 1e6)


def test_sigterm_mid_load_finishes_in_flight_and_flushes_the_ledger(fresh, gateway):
    a, b, _ = fresh
    a.control(delay_s=0.2)
    b.control(chunk_delay_s=0.05)
    gw = gateway({"models": [{"name": "llama", "backends": [backend(a), backend(b)]}]})

    async def run() -> list[Any]:
        sdk = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0, timeout=20)

        async def one(i: int) -> Any:
            if i % 2:
                stream = await sdk.chat.completions.create(
                    model="llama", messages=MESSAGES, max_tokens=8, stream=True
                )
                return [chunk async for chunk in stream]
            return await sdk.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)

        tasks = [asyncio.create_task(one(i)) for i in range(40)]
        deadline = time.monotonic() + 10
        while a.stats()["received"] + b.stats()["received"] < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(gw.terminate)
        try:
            return await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        finally:
            await sdk.close()

    results = asyncio.run(run())
    served = [r for r in results if not isinstance(r, BaseException)]
    assert served, "no request finished"
    stats = [a.stats(), b.stats()]
    [(n, t_in, t_out)] = gw.ledger_rows("SELECT COUNT(*), SUM(tokens_in), SUM(tokens_out) FROM requests")
    assert n == len(served) == sum(s["answered"] for s in stats)
    assert (t_in, t_out) == (
        sum(s["prompt_tokens"] for s in stats),
        sum(s["completion_tokens"] for s in stats),
    )


def test_metrics_and_usage_command_report_the_same_traffic(fresh, gateway, tmp_path):
    a, b, _ = fresh
    gw = gateway(two_models(a, b))
    sdk = gw.openai()
    for name in ("llama", "llama", "qwen"):
        sdk.chat.completions.create(model=name, messages=MESSAGES, max_tokens=3)
    text = httpx.get(gw.url + "/metrics", timeout=5).text
    assert 'polyfleet_requests_total{backend="a",model="llama",status="200"} 2.0' in text
    assert 'polyfleet_tokens_total{backend="b",direction="in",model="qwen"} 5.0' in text
    gw.terminate()
    result = run_cli("usage", "--routes", gw.routes_file, "--by", "model", "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = {r["model"]: r for r in json.loads(result.stdout)}
    assert (rows["llama"]["requests"], rows["llama"]["tokens_in"], rows["llama"]["tokens_out"]) == (2, 10, 6)
    assert rows["llama"]["cost_usd"] == pytest.approx(16 * 1000.0 / 1e6)
    assert (rows["llama"]["input_tokens"], rows["llama"]["output_tokens"]) == (5, 3)
    result = run_cli("usage", "--ledger", f"sqlite:///{gw.ledger}", "--by", "provider", "--format", "json")
    assert [(r["provider"], r["requests"]) for r in json.loads(result.stdout)] == [("a", 2), ("b", 1)]


def test_anthropic_clients_reach_openai_backends_through_translation(fresh, gateway):
    a = fresh[0]
    routes = {
        "models": [{"name": "llama", "backends": [backend(a, usd_per_mtok_in=1.0, usd_per_mtok_out=2.0)]}]
    }
    gw = gateway(routes)
    sdk = gw.anthropic()
    reply = sdk.messages.create(
        model="llama", max_tokens=4, system="be brief", messages=[{"role": "user", "content": "hello there"}]
    )
    assert reply.content[0].text == "a tok tok tok "
    assert (reply.usage.input_tokens, reply.usage.output_tokens, reply.stop_reason) == (4, 4, "end_turn")
    with sdk.messages.stream(model="llama", max_tokens=3, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "a tok tok "
    assert (final.usage.input_tokens, final.usage.output_tokens) == (5, 3)
    with pytest.raises(anthropic.BadRequestError) as info:
        image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
        sdk.messages.create(model="llama", max_tokens=4, messages=[{"role": "user", "content": [image]}])
    assert "text only" in str(info.value)
    assert a.stats()["answered"] == 2
    assert json.loads(httpx.get(gw.url + "/healthz", timeout=5).text)["models"]["llama"]["a"] == "up"
    gw.terminate()
    rows = gw.ledger_rows("SELECT status, tokens_in, tokens_out, streamed FROM requests ORDER BY ts")
    assert rows == [(200, 4, 4, 0), (200, 5, 3, 1), (400, 0, 0, 0)]
