"""Gateway pieces without a network: routes-file errors, policies, limits, breaker, usage parsing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import run_cli, write_spec
from polyfleet.errors import SpecError
from polyfleet.gateway import build_routes, load_routes
from polyfleet.gateway.auth import Keys, hash_key
from polyfleet.gateway.backends import Pool
from polyfleet.gateway.config import Key
from polyfleet.gateway.errors import GatewayError
from polyfleet.gateway.limits import BreakerState, CircuitBreaker, TokenBucket
from polyfleet.gateway.routing import LeastCost, LeastLoaded, Weighted
from polyfleet.gateway.usage import StreamUsage, usage_from_body

GOOD = """
models:
  - name: llama
    backends:
      - {name: own, url: "http://127.0.0.1:9001/v1", weight: 0.6, api_key_env: OWN_KEY}
      - {name: neb, url: "http://127.0.0.1:9002/v1", weight: 0.4}
"""


@dataclass
class Cand:
    index: int
    weight: float = 1.0
    price: float = 0.0
    load: float = 0.0


def error_of(tmp_path, text: str, environ: dict | None = None) -> str:
    with pytest.raises(SpecError) as info:
        load_routes(write_spec(tmp_path, text, "routes.yaml"), environ=environ)
    return info.value.render()


def test_a_good_routes_file_loads_with_defaults(tmp_path):
    routes = load_routes(write_spec(tmp_path, GOOD, "routes.yaml"), environ={"OWN_KEY": "s"})
    assert routes.listen.port == 8080 and routes.ledger == "sqlite:///polyfleet-usage.db"
    assert [b.weight for b in routes.model("llama").backends] == [0.6, 0.4]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            GOOD.replace("weight: 0.4", "wieght: 0.4"),
            ":5: models[0].backends[1].wieght: unknown field 'wieght'",
        ),
        (GOOD.replace("weight: 0.4", "weight: -1"), ":5: models[0].backends[1].weight: Input should be"),
        (
            GOOD.replace('"http://127.0.0.1:9002/v1"', "ftp://x"),
            "models[0].backends[1].url: String should match",
        ),
        (GOOD.replace("name: neb", "name: own"), ":5: models[0].backends[1]: backend 'own' appears twice"),
        (  # a line break in a name is not a valid header value (x-polyfleet-backend)
            GOOD.replace("name: neb", 'name: "ne\\nb"'),
            ":5: models[0].backends[1].name: expected a name without control characters",
        ),
        ("listen: {host: 0.0.0.0}\n" + GOOD, ":1: listen.host: an open gateway (no 'keys') may only listen"),
        ("state: etcd://r:6379\n" + GOOD, ":1: state: String should match pattern"),
        ("keys: [{name: k, key_sha256: abc}]\n" + GOOD, ":1: keys[0].key_sha256: String should match"),
        ("models: []\n", ":1: models: List should have at least 1 item"),
        (
            "models: [{name: m, policy: fastest, backends: [{name: x, url: 'http://h'}]}]\n",
            "models[0].policy",
        ),
    ],
)
def test_bad_routes_files_get_one_line_naming_file_line_and_field(tmp_path, text, expected):
    message = error_of(tmp_path, text, environ={"OWN_KEY": "s"})
    assert "routes.yaml" in message and expected in message and "\n" not in message


def test_a_missing_upstream_key_variable_is_named_but_never_shown(tmp_path):
    message = error_of(tmp_path, GOOD, environ={})
    assert message.endswith(":4: models[0].backends[0].api_key_env: environment variable OWN_KEY is not set")


def test_serve_rejects_a_bad_routes_file_with_exit_2(tmp_path):
    path = write_spec(tmp_path, GOOD.replace("weight: 0.4", "wieght: 0.4"), "routes.yaml")
    result = run_cli("serve", path)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"polyfleet: {path}:5: models[0].backends[1].wieght: unknown field 'wieght'; did you mean 'weight'?"
    ]


def test_usage_without_a_ledger_is_a_one_line_error(tmp_path):
    result = run_cli("usage", "--ledger", f"sqlite:///{tmp_path}/none.db")
    assert result.exit_code == 2
    assert (
        result.stderr.strip()
        == f"polyfleet: {tmp_path}/none.db: no ledger here (serve writes one; pass --ledger or --routes)"
    )


def test_smooth_weighted_round_robin_is_exact_and_interleaved():
    cands = [Cand(0, 5), Cand(1, 1), Cand(2, 1)]
    policy = Weighted(3)
    picks = [policy.pick(cands).index for _ in range(7)]
    assert picks == [0, 0, 1, 0, 2, 0, 0]  # nginx's documented sequence for weights 5, 1, 1
    counts = Counter(policy.pick(cands).index for _ in range(7000))
    assert counts == {0: 5000, 1: 1000, 2: 1000}


def test_weighted_skips_unavailable_backends_and_takes_them_back():
    cands = [Cand(0, 0.5), Cand(1, 0.5)]
    policy = Weighted(2)
    assert {policy.pick(cands[1:]).index for _ in range(10)} == {1}
    assert Counter(policy.pick(cands).index for _ in range(100)) == {0: 50, 1: 50}
    assert policy.pick([Cand(0, 0.0), Cand(1, 0.0)]).index == 0  # only zero-weight fallbacks left


def test_least_cost_and_least_loaded():
    cands = [Cand(0, price=3.0, load=0.1), Cand(1, price=1.0, load=0.9), Cand(2, price=2.0, load=0.0)]
    assert LeastCost().pick(cands).index == 1
    assert LeastLoaded().pick(cands).index == 2


def test_token_bucket_refills_per_minute_and_takes_corrections():
    bucket = TokenBucket(60, now=0.0)  # 1 per second
    for _ in range(60):
        assert bucket.allows(0.0, 1)
        bucket.take(1)
    assert not bucket.allows(0.0, 1)
    assert bucket.allows(1.0, 1)
    bucket.take(1)
    bucket.correct(-10)  # the answer used 10 more tokens than estimated
    assert not bucket.allows(11.0, 1) and bucket.allows(12.0, 1)  # -10, refilled at 1/s
    assert TokenBucket(100, now=0.0).allows(0.0, 1000)  # larger than the budget: needs a full bucket


def test_breaker_opens_probes_once_and_closes_or_reopens():
    breaker = CircuitBreaker(threshold=2, cooldown_s=5)
    breaker.on_failure(0.0)
    assert breaker.allows(0.0)
    breaker.on_failure(1.0)
    assert breaker.state is BreakerState.OPEN and not breaker.allows(5.9)
    assert breaker.allows(6.0) and breaker.state is BreakerState.HALF_OPEN
    breaker.on_send()
    assert not breaker.allows(6.0)  # one probe at a time
    breaker.on_failure(6.5)
    assert breaker.state is BreakerState.OPEN and not breaker.allows(11.0) and breaker.allows(11.5)
    breaker.on_send()
    breaker.on_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allows(11.5)


def test_stream_usage_survives_events_split_across_chunks():
    stream = (
        b'data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n'
        b'data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":7}}\n\ndata: [DONE]\n\n'
    )
    for size in (1, 7, 64, len(stream)):
        meter = StreamUsage()
        for start in range(0, len(stream), size):
            meter.feed(stream[start : start + size])
        assert (meter.seen, meter.tokens_in, meter.tokens_out) == (True, 12, 7)


def test_anthropic_stream_usage_and_bodies():
    meter = StreamUsage()
    meter.feed(b'event: message_start\ndata: {"type":"message_start","message":{"usage":{"input_tokens":9,')
    meter.feed(b'"output_tokens":1}}}\n\nevent: message_delta\ndata: {"type":"message_delta","usage":')
    meter.feed(b'{"output_tokens":30}}\n\n')
    assert (meter.tokens_in, meter.tokens_out) == (9, 30)
    assert usage_from_body(b'{"usage":{"input_tokens":3,"output_tokens":4}}') == (3, 4)
    assert usage_from_body(b'{"usage":{"prompt_tokens":3}}') == (3, 0)
    assert usage_from_body(b"not json") is None


def test_keys_are_matched_by_hash_and_budgets_are_per_day():
    keys = Keys([Key(name="k", key_sha256=hash_key("sk-1"), budget_usd_per_day=1.0, models=["m"])])
    key = keys.authenticate(b"Bearer sk-1", None)
    assert key.name == "k" and keys.authenticate(None, b"sk-1") == key
    assert keys.authenticate(b"Bearer sk-1", None) is key  # asked again: the same key
    with pytest.raises(GatewayError) as info:
        keys.authenticate(b"Bearer sk-2", None)
    assert info.value.status == 401
    with pytest.raises(GatewayError):  # asked again: still refused
        keys.authenticate(b"Bearer sk-2", None)
    keys.charge(key, "2026-01-01", 1.0)
    with pytest.raises(GatewayError) as info:
        keys.admit(key, "m", "2026-01-01")
    assert info.value.status == 429 and b'"insufficient_quota"' in info.value.body()
    keys.admit(key, "m", "2026-01-02")  # a new UTC day, a new budget
    with pytest.raises(GatewayError) as info:
        keys.admit(key, "other", "2026-01-02")
    assert info.value.status == 403


def test_pool_leaves_out_backends_at_their_limits_and_rewards_corrections():
    routes = build_routes(
        {
            "models": [
                {
                    "name": "m",
                    "backends": [
                        {"name": "small", "url": "http://a/v1", "weight": 100, "max_concurrency": 2},
                        {"name": "rpm", "url": "http://b/v1", "weight": 10, "max_requests_per_minute": 1},
                        {"name": "tpm", "url": "http://c/v1", "weight": 1, "max_tokens_per_minute": 1000},
                        {"name": "claude", "url": "http://d/v1", "api": "anthropic"},
                    ],
                }
            ]
        }
    )
    pool = Pool(routes.models[0], routes, environ={})
    picked = []
    for _ in range(4):
        backend = pool.pick({"openai"}, 600, set())
        backend.acquire(600)
        picked.append(backend.name)
    assert picked == ["small", "small", "rpm", "tpm"]  # then nothing: all at a limit
    assert pool.pick({"openai"}, 600, set()) is None
    tpm = pool.backends[2]
    tpm.release(600, 100)  # the answer used 100 tokens, not 600: 900 left
    assert pool.pick({"openai"}, 600, set()) is tpm
    assert pool.pick({"anthropic"}, 1, set()).name == "claude"
    assert pool.pick({"openai"}, 1, {0, 1, 2}) is None


def test_the_public_surface_is_pinned():
    import polyfleet.gateway

    assert polyfleet.gateway.__all__ == [
        "Gateway",
        "Routes",
        "build_routes",
        "hash_key",
        "load_routes",
        "routes_from_plan",
        "routes_yaml",
    ]


def test_serve_exits_1_naming_the_ledger_when_it_cannot_be_written(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    routes = write_spec(
        tmp_path, f"ledger: sqlite:///{blocker}/usage.db\nlisten: {{port: 1}}\n{GOOD}", "routes.yaml"
    )
    done = subprocess.run(
        [str(Path(sys.executable).parent / "polyfleet"), "serve", str(routes)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OWN_KEY": "s"},
    )
    assert done.returncode == 1
    assert f"ledger sqlite:///{blocker}/usage.db: writer did not start" in done.stderr
    assert done.stderr.strip().endswith("polyfleet: the gateway did not start (see the error above)")


def test_the_usage_only_chunk_is_dropped_line_by_line_with_crlf_and_split_chunks():
    from polyfleet.gateway.usage import StreamUsage

    meter = StreamUsage(hide_usage_chunk=True)
    delta = b'data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}\r\n\r\n'
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":4}}\r\n\r\n'
    out = (
        meter.feed(delta[:10])
        + meter.feed(delta[10:])
        + meter.feed(usage)
        + meter.feed(b"data: [DONE]\r\n\r\n")
    )
    out += meter.rest()
    assert out == delta + b"\r\n" + b"data: [DONE]\r\n\r\n"  # the usage line gone, nothing else held
    assert (meter.tokens_in, meter.tokens_out) == (5, 4)


def test_models_without_a_bundled_tokenizer_are_estimated_at_their_familys_chars_per_token():
    from polyfleet.gateway.tokens import Counter, chars_per_token

    counter = Counter()
    texts = ["user", "say hello to the fleet"]  # 4 + 22 = 26 characters
    # Claude: 26 / 3.5 = 7.43 -> 8; Gemini, Gemma and the rest: 26 / 4 = 6.5 -> 7
    assert counter.tokens("claude-sonnet-4-5", texts) == 8
    assert counter.tokens("anthropic/claude-3-haiku", texts) == 8
    assert counter.tokens("gemini-2.5-flash", texts) == 7
    assert counter.tokens("google/gemma-3-27b-it", texts) == 7
    assert counter.tokens("meta-llama/Llama-3.3-70B-Instruct", texts) == 7
    assert chars_per_token("Claude-Opus-4")[0] == 3.5
    assert "rule of thumb" in chars_per_token("qwen3-32b")[1]


def test_a_key_budget_that_cannot_be_checked_in_redis_is_refused_with_503():
    """With shared state, a budgeted key's request is refused when Redis cannot be reached."""
    import asyncio
    import socket

    redis_asyncio = pytest.importorskip("redis.asyncio")
    from polyfleet.gateway.budgets import SharedBudgets

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    key = Key(name="team", key_sha256=hash_key("sk-team"), budget_usd_per_day=1.0)

    async def reserve() -> GatewayError:
        client = redis_asyncio.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=1)
        try:
            budgets = SharedBudgets(Keys([key]), client)
            with pytest.raises(GatewayError) as info:
                await budgets.reserve(key, "2026-12-07", 0.01)
            return info.value
        finally:
            await client.aclose()

    error = asyncio.run(reserve())
    assert error.status == 503 and error.code == "budget_store_unavailable"
    assert "budget_usd_per_day cannot be checked" in str(error)


def test_anthropic_backends_get_an_api_version_the_client_may_replace(tmp_path):
    """The Anthropic API refuses a request without ``anthropic-version``: the health probe sent
    none, so it never brought an Anthropic backend back."""
    text = (
        GOOD
        + """
  - name: claude
    backends:
      - {name: ant, url: "http://127.0.0.1:9003/v1", api: anthropic, api_key_env: ANT_KEY}
"""
    )
    routes = load_routes(write_spec(tmp_path, text, "routes.yaml"), environ={"OWN_KEY": "o", "ANT_KEY": "a"})
    pools = {r.name: Pool(r, routes, {"OWN_KEY": "o", "ANT_KEY": "a"}) for r in routes.models}
    assert pools["claude"].backends[0].headers == {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-api-key": "a",
    }
    assert "anthropic-version" not in pools["llama"].backends[0].headers


def test_the_metrics_key_may_be_given_as_issue_15_names_it(tmp_path):
    """``metrics_key: SECRET`` (issue 15's name) works as ``metrics_key_sha256`` of it does
    (before: 'unknown field', and serve refused the file); both at once is an error."""
    from polyfleet.gateway.admin import may_see

    routes = load_routes(write_spec(tmp_path, GOOD + "metrics_key: mk\n", "routes.yaml"), {"OWN_KEY": "o"})
    hashed = GOOD + f"metrics_key_sha256: {hash_key('mk').upper()}\n"
    for given in (routes, load_routes(write_spec(tmp_path, hashed, "hashed.yaml"), {"OWN_KEY": "o"})):
        assert may_see(given, {"headers": [(b"authorization", b"Bearer mk")]})
        assert may_see(given, {"headers": [(b"x-api-key", b"mk")]})
        assert not may_see(given, {"headers": [(b"authorization", b"Bearer nope")]})
        assert not may_see(given, {"headers": []})
    both = GOOD + f"metrics_key: mk\nmetrics_key_sha256: {hash_key('mk')}\n"
    assert "metrics_key_sha256 or metrics_key, not both" in error_of(tmp_path, both, {"OWN_KEY": "o"})


def test_a_streams_last_bytes_wait_for_a_slow_client_until_total_s(monkeypatch):
    """A client slow to take a stream's last bytes, well within total_s, gets them (771c8ef
    gave it 1 s, whatever was left of total_s, then dropped it)."""
    from polyfleet.gateway import relay
    from polyfleet.gateway.auth import OPEN
    from polyfleet.gateway.metrics import Metrics

    monkeypatch.setattr(relay, "_LAST_SEND_S", 0.05)

    class Upstream:  # what relay_stream reads of an UpstreamResponse
        status = 200

        def __init__(self, deadline: float):
            self.deadline = deadline

        async def next_chunk(self) -> bytes:
            return b""

        def at_eof(self) -> bool:
            return True

        def close(self) -> None:
            pass

    async def stream() -> relay.Outcome:
        async def send(message: dict) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                await asyncio.sleep(0.15)  # its buffer is full: it takes the last bytes slowly

        out = relay.Outcome(abort=lambda: None)
        request = relay.Request(OPEN, "d", "m", "chat/completions", True, 0.0, 0.0, {}, "openai")
        deadline = asyncio.get_running_loop().time() + 30  # total_s far ahead
        first = b'data: {"choices": []}\n\ndata: [DONE]\n\n'
        await relay.relay_stream(send, request, out, Upstream(deadline), first, [], False, False, Metrics())
        return out

    out = asyncio.run(stream())
    assert out.answered and not out.partial
