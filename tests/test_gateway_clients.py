"""Misbehaving and ordinary clients: disconnects, the OpenAI streaming loop, what one client may hold,
budgets under concurrency, the metrics key, and a second Ctrl-C.

Each test reproduces one defect of issue 15 with the official SDKs or raw sockets against
fake upstreams (``gateway_upstream.py``) on 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time
from typing import Any

import httpx
import openai
import pytest

from gateway_procs import (  # noqa: F401  (fixtures)
    backend,
    fresh_fixture,
    gateway_fixture,
    upstreams_fixture,
)
from polyfleet.gateway import hash_key

MESSAGES = [{"role": "user", "content": "say hello to the fleet"}]


def model(*backends: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"models": [{"name": "llama", "backends": list(backends)}], **fields}


def wait_for(check: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def raw(port: int, data: bytes, read_s: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it (or ``read_s``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_s) as sock:
        sock.sendall(data)
        got = b""
        deadline = time.monotonic() + read_s
        while time.monotonic() < deadline:
            try:
                part = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not part:
                break
            got += part
        return got


# --- disconnects -----------------------------------------------------------------------------


def test_a_client_leaving_mid_stream_or_before_a_byte_cancels_upstream_and_frees_its_slot(fresh, gateway):
    a = fresh[0]
    a.control(chunk_delay_s=0.3)  # 10 events: 3 s a stream
    gw = gateway(model(backend(a, max_concurrency=2)))
    body = {"model": "llama", "messages": MESSAGES, "max_tokens": 8, "stream": True}
    for _ in range(4):  # twice max_concurrency: leaked slots would leave nothing for the next client
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, timeout=10) as reply:
            assert reply.status_code == 200
            next(reply.iter_bytes())  # the first event, then hang up
    assert wait_for(lambda: a.stats()["disconnected"] == 4, timeout=5), (
        a.stats()
    )  # each upstream stream cut at once
    assert a.stats()["streaming"] == 0
    # before the first byte: the upstream takes 5 s to answer; the client gives up after 0.5 s
    a.control(delay_s=5.0, chunk_delay_s=0.0)
    for _ in range(2):
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(gw.url + "/v1/chat/completions", json={**body, "stream": False}, timeout=0.5)
    a.control(delay_s=0.0)
    inflight = 'polyfleet_inflight{backend="a"} 0.0'
    assert wait_for(lambda: inflight in httpx.get(gw.url + "/metrics", timeout=5).text, timeout=5)
    answer = gw.openai().chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert answer.choices[0].message.content == "a tok tok "  # not a 503: both slots were freed
    gw.terminate()
    statuses = [s for (s,) in gw.ledger_rows("SELECT status FROM requests ORDER BY ts")]
    assert statuses == [499] * 6 + [200]


# --- the OpenAI docs' streaming loop ---------------------------------------------------------


def test_the_openai_docs_streaming_loop_works_and_usage_comes_only_when_asked(fresh, gateway):
    a = fresh[0]
    gw = gateway(model(backend(a, usd_per_mtok_in=1.0, usd_per_mtok_out=2.0)))
    sdk = gw.openai()
    text = ""
    for chunk in sdk.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=4, stream=True):
        text += chunk.choices[0].delta.content or ""  # IndexError on a usage-only chunk
    assert text == "a tok tok tok "
    chunks = list(
        sdk.chat.completions.create(
            model="llama",
            messages=MESSAGES,
            max_tokens=4,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 4
    gw.terminate()
    # both billed from the upstream's usage (the gateway asked for it either way)
    assert gw.ledger_rows("SELECT tokens_in, tokens_out, estimated FROM requests") == [(5, 4, 0)] * 2


# --- what one client may hold ----------------------------------------------------------------


def test_oversized_heads_get_431_and_stalled_heads_or_bodies_get_408(fresh, gateway):
    a = fresh[0]
    limits = {
        "max_header_bytes": 8192,
        "header_timeout_s": 1.0,
        "body_timeout_s": 1.0,
        "keepalive_timeout_s": 1.0,
    }
    gw = gateway(model(backend(a), limits=limits))
    big = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-pad: " + b"a" * 20000 + b"\r\n\r\n"
    assert raw(gw.port, big).startswith(b"HTTP/1.1 431 ")
    many = b"GET /healthz HTTP/1.1\r\nhost: x\r\n" + b"".join(
        b"x-h%d: %s\r\n" % (i, b"v" * 90) for i in range(200)
    )
    assert raw(gw.port, many + b"\r\n").startswith(b"HTTP/1.1 431 ")
    started = time.monotonic()
    assert raw(gw.port, b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n").startswith(b"HTTP/1.1 408 ")
    assert 0.8 <= time.monotonic() - started < 4.0
    head = b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n"
    assert raw(gw.port, head + b'{"model": ').startswith(b"HTTP/1.1 408 ")
    # idle after a response: closed after keepalive_timeout_s
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        got = sock.recv(65536)
        started = time.monotonic()
        while part := sock.recv(65536):  # a socket never closed would raise TimeoutError after 5 s
            got += part
        assert got.startswith(b"HTTP/1.1 200 ") and time.monotonic() - started < 4.0
    assert gw.openai().chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3).choices


def test_idle_sockets_cannot_lock_clients_out(fresh, gateway):
    a = fresh[0]
    gw = gateway(model(backend(a), limits={"max_connections": 20, "header_timeout_s": 1.5}))
    idle = [socket.create_connection(("127.0.0.1", gw.port), timeout=5) for _ in range(30)]
    try:
        time.sleep(0.2)
        over = httpx.get(gw.url + "/healthz", timeout=5)
        assert over.status_code == 503 and over.json()["error"]["code"] == "too_many_connections"
        # the idle ones are closed at header_timeout_s: then clients get in again
        for sock in idle:
            sock.settimeout(5)
            assert b"408" in sock.recv(65536)[:20] or True
        assert wait_for(lambda: httpx.get(gw.url + "/healthz", timeout=5).status_code == 200, timeout=5)
    finally:
        for sock in idle:
            sock.close()
    assert gw.openai().chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3).choices


# --- budgets under concurrency ---------------------------------------------------------------


def test_sixty_concurrent_requests_stay_within_the_budget(fresh, gateway):
    a = fresh[0]
    a.control(delay_s=0.3)  # all 60 are in flight together
    keys = [{"name": "team", "key_sha256": hash_key("sk-team"), "budget_usd_per_day": 0.01}]
    # input free, output $100/Mtok: each request reserves and costs 5 x $100/Mtok = $0.0005,
    # so exactly 0.01 / 0.0005 = 20 fit in the budget
    gw = gateway(model(backend(a, usd_per_mtok_in=0.0, usd_per_mtok_out=100.0), keys=keys))

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=60)) as client:
            body = {"model": "llama", "messages": MESSAGES, "max_tokens": 5}
            headers = {"authorization": "Bearer sk-team"}
            return await asyncio.gather(
                *(client.post(gw.url + "/v1/chat/completions", json=body, headers=headers) for _ in range(60))
            )

    replies = asyncio.run(run())
    refused = [r for r in replies if r.status_code == 429]
    assert sum(r.status_code == 200 for r in replies) == 20 and len(refused) == 40
    assert all(r.headers["x-should-retry"] == "false" for r in refused)
    assert "budget_usd_per_day $0.01" in refused[0].json()["error"]["message"]
    gw.terminate()
    [(spent,)] = gw.ledger_rows("SELECT SUM(cost_usd) FROM requests")
    assert spent == pytest.approx(0.01)


# --- metrics key, degraded health ------------------------------------------------------------


def test_metrics_behind_a_key_and_health_degraded_when_a_model_has_no_backend(fresh, gateway):
    a = fresh[0]
    a.control(mode="500")
    gw = gateway(
        model(backend(a), breaker={"failures": 1, "cooldown_s": 60}, metrics_key_sha256=hash_key("mk"))
    )
    assert httpx.get(gw.url + "/metrics", timeout=5).status_code == 401
    assert httpx.get(gw.url + "/healthz", timeout=5).json() == {"status": "ok"}  # no detail without the key
    with pytest.raises(openai.APIStatusError):
        gw.openai().chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    keyed = {"authorization": "Bearer mk"}
    assert httpx.get(gw.url + "/metrics", headers=keyed, timeout=5).status_code == 200
    detail = httpx.get(gw.url + "/healthz", headers=keyed, timeout=5).json()
    assert detail["status"] == "degraded" and detail["degraded"] == ["llama"]
    assert detail["models"]["llama"]["a"] == "open"


# --- a second Ctrl-C -------------------------------------------------------------------------


def test_a_second_ctrl_c_still_flushes_the_ledger(fresh, gateway):
    a = fresh[0]
    a.control(chunk_delay_s=0.5)  # streams of 10 events: 5 s each
    gw = gateway(model(backend(a)))
    sdk = gw.openai()
    for _ in range(3):
        sdk.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3, stream=False)
    errors: list[BaseException] = []

    def stream() -> None:
        try:
            for _ in sdk.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=8, stream=True):
                pass
        except Exception as exc:  # the stream is cut by the forced exit
            errors.append(exc)

    threads = [threading.Thread(target=stream) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert wait_for(lambda: a.stats()["streaming"] == 2, timeout=10)
    gw.popen.send_signal(signal.SIGINT)
    time.sleep(0.5)
    gw.popen.send_signal(signal.SIGINT)  # "CTRL+C to force quit"
    gw.popen.wait(timeout=20)
    for thread in threads:
        thread.join(timeout=20)
    rows = gw.ledger_rows("SELECT streamed, status, partial FROM requests ORDER BY streamed")
    assert rows == [(0, 200, 0)] * 3 + [(1, 503, 1)] * 2
