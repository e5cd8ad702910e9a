"""Misbehaving upstreams: cut streams, 401s, non-protocol 200s, stalls, missing usage, cooldowns.

Each test reproduces one defect of issue 15 with the official SDKs against fake upstreams
(``gateway_upstream.py``) on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import time
from typing import Any

import anthropic
import httpx
import openai
import pytest

from gateway_procs import (  # noqa: F401  (fixtures)
    backend,
    fresh_fixture,
    gateway_fixture,
    upstreams_fixture,
)
from polyfleet.gateway.backends import retry_after_s

MESSAGES = [{"role": "user", "content": "say hello to the fleet"}]


def model(
    *backends: dict[str, Any], name: str = "llama", policy: str = "weighted", **fields: Any
) -> dict[str, Any]:
    return {"models": [{"name": name, "policy": policy, "backends": list(backends)}], **fields}


def health(gw: Any) -> dict[str, Any]:
    return httpx.get(gw.url + "/healthz", timeout=5).json()


def wait_for(check: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# --- streams that break off ------------------------------------------------------------------


def test_an_openai_stream_cut_by_the_upstream_raises_in_the_sdk_and_is_partial(fresh, gateway):
    a, b, _ = fresh
    a.control(mode="cut")  # the connection drops half way
    b.control(mode="cut-clean")  # the stream ends half way, without [DONE]
    gw = gateway({"models": [{"name": n, "backends": [backend(u)]} for n, u in (("cut", a), ("clean", b))]})
    for name, first in (("cut", "a "), ("clean", "b ")):
        text = ""
        with pytest.raises(openai.APIError) as info:
            for chunk in gw.openai().chat.completions.create(
                model=name, messages=MESSAGES, max_tokens=8, stream=True
            ):
                text += chunk.choices[0].delta.content or ""
        assert "before its end" in str(info.value) or "broke off" in str(info.value)
        assert text.startswith(first)  # what came before the cut reached the client
    gw.terminate()
    rows = gw.ledger_rows("SELECT model, status, partial FROM requests ORDER BY model")
    assert rows == [("clean", 502, 1), ("cut", 502, 1)]


def test_anthropic_clients_on_cut_streams_get_an_error_not_a_made_up_end_turn(fresh, gateway):
    a, b, _ = fresh
    a.control(mode="cut")  # an OpenAI backend, translated for the Anthropic client
    b.control(mode="cut-clean")  # an Anthropic backend whose stream stops before message_stop
    gw = gateway(
        {
            "models": [
                {"name": "translated", "backends": [backend(a)]},
                {"name": "direct", "backends": [backend(b, api="anthropic")]},
            ]
        }
    )
    sdk = gw.anthropic()
    for name in ("translated", "direct"):
        kinds: list[str] = []
        with (
            pytest.raises(anthropic.APIError),
            sdk.messages.stream(model=name, max_tokens=8, messages=MESSAGES) as s,
        ):
            for event in s:  # appended one by one: the events before the error count
                kinds.append(event.type)
        assert "content_block_delta" in kinds, name
        assert "message_stop" not in kinds and "message_delta" not in kinds, name
    gw.terminate()
    rows = gw.ledger_rows(
        "SELECT model, partial, estimated, tokens_in, tokens_out FROM requests ORDER BY model"
    )
    # the deltas that came are counted (an Anthropic backend's input tokens from its message_start
    # hold): before, the direct stream was billed the 1 output token its message_start reported
    assert rows == [("direct", 1, 1, 5, 4), ("translated", 1, 1, 7, 5)]


# --- 401/403 and non-protocol 200s -----------------------------------------------------------


def test_a_401_marks_that_backend_unhealthy_fails_over_and_never_shows_its_body(fresh, gateway):
    a, b, c = fresh
    a.control(mode="401")
    c.control(mode="401")
    gw = gateway(
        {
            "models": [
                {"name": "llama", "backends": [backend(a, api_key_env="A_KEY"), backend(b)]},
                {"name": "solo", "backends": [backend(c, api_key_env="A_KEY")]},
            ]
        },
        env={"A_KEY": "sk-upstream-secret-123"},
    )
    sdk = gw.openai()
    for _ in range(4):
        answer = sdk.chat.completions.with_raw_response.create(model="llama", messages=MESSAGES, max_tokens=3)
        assert answer.headers["x-polyfleet-backend"] == "b"
    assert a.stats()["received"] == 1  # opened at once: no second request to a key that does not work
    assert health(gw)["models"]["llama"]["a"] == "open"
    metrics = httpx.get(gw.url + "/metrics", timeout=5).text
    assert 'polyfleet_upstream_auth_failures_total{backend="a",model="llama"} 1.0' in metrics
    # a model whose only backend refuses our key: 502; the upstream's body (echoing the key) is not passed on
    reply = httpx.post(
        gw.url + "/v1/chat/completions", json={"model": "solo", "messages": MESSAGES}, timeout=10
    )
    assert reply.status_code == 502 and "sk-upstream-secret" not in reply.text
    assert "credentials" in reply.json()["error"]["message"]
    gw.terminate()
    assert "refused the gateway's credentials" in gw.popen.stderr.read().decode()


def test_a_200_that_is_not_json_fails_over_or_is_a_502(fresh, gateway):
    a, b, c = fresh
    gw = gateway(
        {
            "models": [
                {"name": "llama", "backends": [backend(a), backend(b, weight=0.0)]},
                {"name": "solo", "backends": [backend(c)]},
            ]
        }
    )
    sdk = gw.openai()
    for mode in ("html", "truncated"):
        a.control(mode=mode, times=1)
        c.control(mode=mode, times=1)
        answer = sdk.chat.completions.with_raw_response.create(model="llama", messages=MESSAGES, max_tokens=3)
        assert answer.headers["x-polyfleet-backend"] == "b", mode
        assert answer.parse().choices[0].message.content == "b tok tok "
        with pytest.raises(openai.APIStatusError) as info:
            sdk.chat.completions.create(model="solo", messages=MESSAGES, max_tokens=3)
        assert info.value.status_code == 502, mode


# --- timeouts --------------------------------------------------------------------------------


def test_a_stalled_stream_ends_at_the_inter_chunk_timeout_and_a_endless_one_at_total(fresh, gateway):
    a, b, _ = fresh
    a.control(mode="stall-mid")
    b.control(mode="endless")
    gw = gateway(
        {
            "models": [
                {"name": "stall", "backends": [backend(a, timeouts={"inter_chunk_s": 0.5})]},
                {"name": "endless", "backends": [backend(b, timeouts={"total_s": 1.5})]},
            ]
        }
    )
    sdk = gw.openai()
    for name, lo, hi in (("stall", 0.4, 5.0), ("endless", 1.4, 6.0)):
        started = time.monotonic()
        with pytest.raises(openai.APIError):
            for _ in sdk.chat.completions.create(model=name, messages=MESSAGES, max_tokens=8, stream=True):
                pass
        assert lo <= time.monotonic() - started <= hi, name
    assert wait_for(lambda: a.stats()["disconnected"] == 1 and b.stats()["disconnected"] == 1)
    gw.terminate()
    assert gw.ledger_rows("SELECT model, status, partial FROM requests ORDER BY model") == [
        ("endless", 502, 1),
        ("stall", 502, 1),
    ]


# --- usage missing ---------------------------------------------------------------------------


def test_answers_without_usage_are_billed_by_counting_and_marked_estimated(fresh, gateway):
    a = fresh[0]
    a.control(mode="nousage")
    prices = {"usd_per_mtok_in": 1.0, "usd_per_mtok_out": 2.0}
    gw = gateway(
        {
            "models": [
                {"name": "gpt-4o-mini", "backends": [backend(a, **prices)]},
                {"name": "llama", "backends": [backend(a, **prices)]},
            ]
        }
    )
    sdk = gw.openai()
    sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=3)
    a.control(mode="nousage")
    text = ""
    for chunk in sdk.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        max_tokens=3,
        stream=True,
        stream_options={"include_usage": True},
    ):
        text += chunk.choices[0].delta.content or "" if chunk.choices else ""
    assert text == "a tok tok "
    a.control(mode="nousage")
    sdk.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    gw.terminate()
    rows = gw.ledger_rows("SELECT model, streamed, tokens_in, tokens_out, cost_usd, estimated FROM requests")
    # o200k_base: "user" 1 + "say hello to the fleet" 5 + 3 per message + 3 priming = 12 in;
    # "a tok tok " = 4 out.  Llama: 26 characters / 4 -> 7 in, 10 characters -> 3 out.
    assert sorted(r[:4] for r in rows) == [
        ("gpt-4o-mini", 0, 12, 4),
        ("gpt-4o-mini", 1, 12, 4),
        ("llama", 0, 7, 3),
    ]
    assert all(r[5] == 1 for r in rows)
    cost = {r[:2]: r[4] for r in rows}
    assert cost[("gpt-4o-mini", 0)] == pytest.approx((12 * 1.0 + 4 * 2.0) / 1e6)


# --- cooldowns -------------------------------------------------------------------------------


def test_retry_after_as_an_http_date_is_honoured():
    # "Wed, 21 Oct 2026 07:28:00 GMT" is 1792567680; 30 s before it, the wait is 30 s
    headers = {"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT"}
    assert retry_after_s(headers, cap=60, now_epoch=1792567650.0) == pytest.approx(30.0)
    assert retry_after_s(headers, cap=10, now_epoch=1792567650.0) == 10.0  # capped
    assert retry_after_s(headers, cap=60, now_epoch=1792567690.0) == 0.0  # in the past
    assert retry_after_s({"retry-after": "7"}, cap=60) == 7.0
    for nonsense in ("nan", "inf", "soon"):  # ignored (a NaN made the gateway's own 429 a 500)
        assert retry_after_s({"retry-after": nonsense}, cap=60) is None
    assert retry_after_s({"retry-after": "soon"}, cap=60) is None


def test_a_429_with_an_http_date_holds_the_backend(fresh, gateway):
    a, b, _ = fresh
    a.control(mode="429-date", retry_after=30, times=1)
    gw = gateway(model(backend(a), backend(b)))
    gw.openai().chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert health(gw)["models"]["llama"]["a"] == "held"


def test_an_open_breaker_is_probed_and_the_backend_returns_when_it_answers(fresh, gateway):
    a, b, _ = fresh
    a.control(mode="500", times=1)
    gw = gateway(
        model(
            backend(a, usd_per_mtok_in=1.0),
            backend(b, usd_per_mtok_in=2.0),
            policy="least-cost",
            breaker={"failures": 1, "cooldown_s": 60},
            probe={"interval_s": 0.2},
        )
    )
    answer = gw.openai().chat.completions.with_raw_response.create(
        model="llama", messages=MESSAGES, max_tokens=3
    )
    assert answer.headers["x-polyfleet-backend"] == "b"  # a failed once: its breaker opened for 60 s
    # a answers again: the probe (GET /v1/models every 0.2 s) closes the breaker long before 60 s
    assert wait_for(lambda: health(gw)["models"]["llama"]["a"] == "up", timeout=10)
    assert a.stats()["probes"] >= 1
    answer = gw.openai().chat.completions.with_raw_response.create(
        model="llama", messages=MESSAGES, max_tokens=3
    )
    assert answer.headers["x-polyfleet-backend"] == "a"
