"""Upstreams that bend HTTP and the protocols, written byte by byte (``gateway_raw.py``), against
one gateway with the official SDKs: connections closed as they are reused, compressed or
HTTP/1.0 answers, interim 100s and trailers, 2xx answers that are not the protocol, streams
whose upstream lingers after their end, and what the SDKs read of the gateway's own answers.

Each section adds a raw upstream (``SECTIONS``: its script and the models routed to it);
one gateway serves them all for the module (a start costs about a second), so each test
reads the ledger rows of its own models, as the writer flushes them.
"""

from __future__ import annotations

import contextlib
import gzip
import signal
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import orjson
import pytest

from gateway_procs import Gateway
from gateway_raw import RawRequest, RawUpstream, http

MESSAGES = [{"role": "user", "content": "say hello"}]
JSON = "content-type: application/json"
SSE = "content-type: text/event-stream"

Answer = Callable[[RawRequest], Any]
# section name -> (its upstream's script, the models routed to it given the upstream's URL)
SECTIONS: dict[str, tuple[Answer, Callable[[str], list[dict[str, Any]]]]] = {}


def chat(text: str = "hello there") -> bytes:
    """A chat completion body."""
    message = {"role": "assistant", "content": text}
    body = {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    return orjson.dumps(body)


def chunks(*texts: str, done: bool = True) -> bytes:
    """A chat completion stream: a chunk per text, the finish, usage, ``[DONE]``."""

    def event(choices: list, usage: dict | None = None) -> bytes:
        data = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": choices}
        return b"data: " + orjson.dumps({**data, "usage": usage}) + b"\n\n"

    out = [event([{"index": 0, "delta": {"content": t}, "finish_reason": None}]) for t in texts]
    out.append(event([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
    usage = {"prompt_tokens": 3, "completion_tokens": len(texts), "total_tokens": 3 + len(texts)}
    out.append(event([], usage))
    return b"".join(out) + (b"data: [DONE]\n\n" if done else b"")


def streams(request: RawRequest) -> bool:
    """Whether the request asks for a stream."""
    return b'"stream":true' in request.body.replace(b" ", b"")


def model(name: str, url: str, **fields: Any) -> dict[str, Any]:
    """A model with one backend of the same name at ``url``."""
    return {"name": name, "backends": [{"name": name, "url": url, **fields}]}


@pytest.fixture(scope="module", name="raw")
def raw_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Gateway, dict[str, RawUpstream]]]:
    """Every section's upstream, and one gateway routing every section's models to them."""
    upstreams = {name: RawUpstream(answer) for name, (answer, _) in SECTIONS.items()}
    models = [m for name, (_, routed) in SECTIONS.items() for m in routed(upstreams[name].url)]
    gw = Gateway(tmp_path_factory.mktemp("raw"), {"models": models, "probe": {"interval_s": 3}})
    try:
        gw.wait_ready("/healthz")
        yield gw, upstreams
    finally:
        gw.close()
        for upstream in upstreams.values():
            upstream.close()


def ledger(
    gw: Gateway, model: str, count: int, fields: str = "status, partial", where: str = ""
) -> list[tuple]:
    """``fields`` of the model's ledger rows (``AND where``), once ``count`` are written (5 s at most)."""
    deadline = time.monotonic() + 5
    rows: list[tuple] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.OperationalError):  # no table before the first flush
            sql = f"SELECT {fields} FROM requests WHERE model = ? {where and 'AND ' + where} ORDER BY ts"
            with contextlib.closing(sqlite3.connect(Path(gw.ledger))) as conn:
                rows = conn.execute(sql, (model,)).fetchall()
        if len(rows) >= count:
            break
        time.sleep(0.05)
    return rows


def streamed(gw: Gateway, model: str) -> str:
    """The text of a chat completion stream, read with the OpenAI docs' loop."""
    stream = gw.openai().chat.completions.create(model=model, messages=MESSAGES, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in stream)


# --- kept-alive connections the upstream closes as they are reused -----------------------------


def _closes_reused(request: RawRequest) -> bytes | None:
    if request.index > 0:
        return None  # closed as the next request arrived on the kept-alive connection
    return http(200, chat(), JSON)  # and no "connection: close" to warn the client


SECTIONS["reuse"] = (_closes_reused, lambda url: [model("reuse", url + "/v1")])


def test_an_upstream_closing_kept_alive_connections_as_they_are_reused_costs_no_attempt(raw):
    """Its idle timeout crossing our reuse: the request goes on a fresh connection; before, each
    such request failed on the healthy backend (a 502 with one backend, failovers with more)."""
    gw, upstreams = raw
    client = gw.openai()
    for _ in range(4):
        assert client.chat.completions.create(model="reuse", messages=MESSAGES).choices[0].message.content
    seen = upstreams["reuse"].requests
    assert len(seen) == 7 and len({r.connection for r in seen}) == 4  # a fresh one per reuse met closing
    # each answered at the first attempt, on the one backend (before: 502s)
    assert ledger(gw, "reuse", 4, "status, attempts") == [(200, 1)] * 4


# --- compressed, HTTP/1.0, interim and trailer answers ------------------------------------------

BENT = ("gzip", "http10", "interim", "trailer")


def _bent(request: RawRequest) -> bytes:
    kind = request.path.split("/")[1]
    body, head = (chunks("a", "b"), SSE) if streams(request) else (chat("fine"), JSON)
    if kind == "gzip":
        return http(200, gzip.compress(body), head, "content-encoding: gzip")
    if kind == "http10":
        request.close = True
        return b"HTTP/1.0 200 OK\r\n" + head.encode() + b"\r\n\r\n" + body
    if kind == "interim":
        return b"HTTP/1.1 100 Continue\r\n\r\n" + http(200, body, head)
    chunked = b"%x\r\n%s\r\n0\r\nx-usage: 1\r\n\r\n" % (len(body), body)  # with a trailer
    return http(200, chunked, head, "transfer-encoding: chunked")


SECTIONS["bent"] = (_bent, lambda url: [model(kind, f"{url}/{kind}/v1") for kind in BENT])


def test_compressed_http10_interim_and_trailer_answers_reach_the_sdks(raw):
    """We ask for identity, but gzip came anyway: decoded (before: a 502, the body not JSON);
    HTTP/1.0 bodies ended by the close, a 100 Continue before the answer, chunk trailers."""
    gw, _ = raw
    for kind in BENT:
        for _ in range(2):  # the second on a reused connection where one is kept
            reply = gw.openai().chat.completions.create(model=kind, messages=MESSAGES)
            assert reply.choices[0].message.content == "fine", kind
            assert streamed(gw, kind) == "ab", kind
    translated = gw.anthropic().messages.create(model="gzip", max_tokens=5, messages=MESSAGES)
    assert translated.content[0].text == "fine"


# --- 2xx answers that are not the protocol -----------------------------------------------------


def _not_the_protocol(request: RawRequest) -> bytes:
    if request.path.startswith("/ok/"):  # its chunks say "error": null, as some servers' do
        stream = chunks("ok").replace(b'"usage"', b'"error":null,"usage"')
        return http(200, stream, SSE) if streams(request) else http(200, chat("ok"), JSON)
    if streams(request):
        return http(200, b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n', SSE)
    if request.path.startswith("/error/"):
        return http(200, b'{"error": {"message": "overloaded", "type": "server_error"}}', JSON)
    return http(200, b'{"id": "c1", "object": "chat.completion"}', JSON)


def _with_a_good_one(url: str) -> list[dict[str, Any]]:
    def routed(bad: str) -> dict[str, Any]:
        backends = [
            {"name": bad, "url": f"{url}/{bad}/v1", "weight": 1},
            {"name": f"{bad}-ok", "url": f"{url}/ok/v1", "weight": 0.001},
        ]
        return {"name": bad, "backends": backends}

    return [routed("error"), routed("empty")]


SECTIONS["protocol"] = (_not_the_protocol, _with_a_good_one)


def test_2xx_answers_that_are_not_the_protocol_fail_over(raw):
    """A 200 holding an error object, or an object without the endpoint's list (``choices``),
    or a stream that opens with an error event is the upstream's failure: the next backend
    answers (before, the SDK got the error object as a completion, or the error mid-stream)."""
    gw, _ = raw
    for name in ("error", "empty"):
        reply = gw.openai().chat.completions.with_raw_response.create(model=name, messages=MESSAGES)
        assert reply.headers["x-polyfleet-backend"] == f"{name}-ok"
        assert reply.parse().choices[0].message.content == "ok"
        assert streamed(gw, name) == "ok"
    metrics = httpx.get(gw.url + "/metrics", timeout=5).text
    assert (
        'polyfleet_failovers_total{backend="error",model="error",reason="UpstreamMalformed"} 2.0' in metrics
    )


# --- a backend that redirects ------------------------------------------------------------------


def _redirects(request: RawRequest) -> bytes:
    if request.path.startswith("/ok/"):
        return http(200, chat("ok"), JSON)
    return http(301, b"", "location: https://elsewhere.example/v1/chat/completions")


SECTIONS["redirect"] = (
    _redirects,
    lambda url: [
        {
            "name": "redirects",
            "backends": [
                {"name": "moved", "url": f"{url}/moved/v1", "weight": 1},
                {"name": "moved-ok", "url": f"{url}/ok/v1", "weight": 0.001},
            ],
        }
    ],
)


def test_a_backend_answering_a_redirect_fails_over(raw):
    """The gateway follows no redirect: a 3xx is the backend's misconfigured URL, an attempt
    that failed (before: the 301 and its empty body went to the client as the answer)."""
    gw, _ = raw
    reply = gw.openai().chat.completions.with_raw_response.create(model="redirects", messages=MESSAGES)
    assert (reply.status_code, reply.headers["x-polyfleet-backend"]) == (200, "moved-ok")
    assert reply.parse().choices[0].message.content == "ok"


# --- streams whose upstream lingers after their end ---------------------------------------------


def _lingers(request: RawRequest) -> list[bytes | float]:
    if request.path.startswith("/says-done/"):  # a text "[DONE]", then the stream is cut
        request.close = True
        return [b"HTTP/1.1 200 OK\r\n" + SSE.encode() + b"\r\n\r\n" + chunks("[DONE]", done=False)]
    body = _messages_stream("hi") if request.path.startswith("/anthropic/") else chunks("a", "b")
    head = b"HTTP/1.1 200 OK\r\n" + SSE.encode() + b"\r\ntransfer-encoding: chunked\r\n\r\n"
    return [head + b"%x\r\n%s\r\n" % (len(body), body), 5.0, b"0\r\n\r\n"]  # the chunked end 5 s late


def _messages_stream(text: str) -> bytes:
    """An Anthropic Messages stream for one text block."""

    def event(kind: str, data: dict) -> bytes:
        return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"

    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "content": []}
    message |= {"stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 3, "output_tokens": 1}}
    return b"".join(
        [
            event("message_start", {"message": message}),
            event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
            event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}}),
            event("content_block_stop", {"index": 0}),
            event("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}}),
            event("message_stop", {}),
        ]
    )


SECTIONS["linger"] = (
    _lingers,
    lambda url: [
        model("lingers", f"{url}/openai/v1"),
        model("lingers-anthropic", f"{url}/anthropic/v1", api="anthropic"),
        model("says-done", f"{url}/says-done/v1"),
    ],
)


def test_a_stream_ends_for_the_client_at_its_protocol_end_whatever_the_upstream_does_next(raw):
    """An upstream that lingers after ``[DONE]`` / ``message_stop`` (its chunked end late): the
    client's stream ends at the protocol's end, a full answer in the ledger (before: held until
    the upstream ended, or ``inter_chunk_s``, and an OpenAI SDK that stops reading at
    ``[DONE]`` was recorded 499 partial).  A text that says ``[DONE]`` is not the end: cut
    after it, the stream is an error (before: a normal end)."""
    gw, _ = raw
    body = {"model": "lingers", "messages": MESSAGES, "stream": True}
    with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, timeout=2) as reply:
        assert b"data: [DONE]" in b"".join(reply.iter_bytes())  # within the 2 s read timeout
    assert streamed(gw, "lingers") == "ab"
    with gw.anthropic().messages.stream(model="lingers-anthropic", max_tokens=5, messages=MESSAGES) as stream:
        assert stream.get_final_message().content[0].text == "hi"
    with pytest.raises(openai.APIError, match="before its end"):
        streamed(gw, "says-done")
    assert ledger(gw, "lingers", 2) == [(200, 0), (200, 0)]
    assert ledger(gw, "lingers-anthropic", 1) == [(200, 0)]
    assert ledger(gw, "says-done", 1) == [(502, 1)]


def test_a_second_ctrl_c_while_an_answered_stream_drains_records_it_answered(tmp_path):
    """After the client has its whole answer the gateway still reads the upstream's end for up
    to 0.5 s; a forced exit then is no cut (before: the row said 503, partial)."""
    upstream = RawUpstream(_lingers)
    gw = Gateway(tmp_path, {"models": [model("lingers", f"{upstream.url}/openai/v1")]})
    try:
        gw.wait_ready("/healthz")
        assert streamed(gw, "lingers") == "ab"
        gw.popen.send_signal(signal.SIGINT)
        time.sleep(0.1)
        gw.popen.send_signal(signal.SIGINT)  # "CTRL+C to force quit", while the upstream lingers
        gw.popen.wait(timeout=20)
        assert gw.ledger_rows("SELECT status, partial FROM requests") == [(200, 0)]
    finally:
        gw.close()
        upstream.close()


# --- an Anthropic client's translated stream with an event that is not JSON --------------------


def _not_json(request: RawRequest) -> bytes:
    request.close = True
    body = chunks("a").replace(b"data: {", b"data: {not json", 2)
    return b"HTTP/1.1 200 OK\r\n" + SSE.encode() + b"\r\nconnection: close\r\n\r\n" + body


SECTIONS["not-json"] = (_not_json, lambda url: [model("not-json", url + "/v1")])


def test_a_translated_stream_with_an_event_that_is_not_json_is_an_error_for_the_anthropic_sdk(raw):
    """Before: the translation raised out of the app, the connection broke and the ledger said 200."""
    gw, _ = raw
    with (
        pytest.raises(anthropic.APIError, match="not a JSON object"),
        gw.anthropic().messages.stream(model="not-json", max_tokens=5, messages=MESSAGES) as stream,
    ):
        stream.get_final_message()
    assert ledger(gw, "not-json", 1) == [(502, 1)]


# --- answers labelled with the wrong content type ----------------------------------------------


def _mislabelled(request: RawRequest) -> bytes:
    if streams(request):  # an event stream said to be JSON, or said to be nothing
        label = ("content-type: application/json",) if request.path.startswith("/json/") else ()
        return http(200, chunks("a", "b"), *label)
    return http(200, chat("fine"), "content-type: text/plain")


SECTIONS["mislabelled"] = (
    _mislabelled,
    lambda url: [model("labelled-json", f"{url}/json/v1"), model("unlabelled", f"{url}/none/v1")],
)


def test_answers_labelled_with_the_wrong_content_type_are_read_by_what_they_are(raw):
    """An event stream whose content type says JSON, or nothing (the SDKs read it, as they
    parse the bytes): passed on as text/event-stream (before: a 502, 'not an event stream');
    a JSON answer said to be text/plain reaches the client as application/json."""
    gw, _ = raw
    for name in ("labelled-json", "unlabelled"):
        assert streamed(gw, name) == "ab", name
        body = {"model": name, "messages": MESSAGES, "stream": True}
        with httpx.stream("POST", gw.url + "/v1/chat/completions", json=body, timeout=5) as reply:
            assert reply.headers["content-type"] == "text/event-stream"
        reply = gw.openai().chat.completions.with_raw_response.create(model=name, messages=MESSAGES)
        assert reply.headers["content-type"] == "application/json"
        assert reply.parse().choices[0].message.content == "fine"


# --- a client that stops reading a stream -------------------------------------------------------

_BIG_EVENT = (
    b"data: " + orjson.dumps({"choices": [{"index": 0, "delta": {"content": "x" * 60000}}]}) + b"\n\n"
)


def _floods(request: RawRequest) -> bytes | list[bytes | float]:
    if not streams(request):
        return http(200, chat("free"), JSON)
    head = b"HTTP/1.1 200 OK\r\n" + SSE.encode() + b"\r\ntransfer-encoding: chunked\r\n\r\n"
    return [head] + [b"%x\r\n%s\r\n" % (len(_BIG_EVENT), _BIG_EVENT)] * 2000  # 120 MB, as fast as taken


SECTIONS["slow-reader"] = (
    _floods,
    lambda url: [model("floods", url + "/v1", max_concurrency=1, timeouts={"total_s": 0.5})],
)


def test_a_client_that_stops_reading_a_stream_holds_nothing_past_total_s(raw):
    """Its request, its backend's only concurrency slot and the upstream connection end at
    ``total_s`` (+1 s for the last bytes) and the client is dropped (before: held for ever;
    every other request got 503)."""
    gw, _ = raw
    body = orjson.dumps({"model": "floods", "messages": MESSAGES, "stream": True})
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", gw.port))
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        deadline = time.monotonic() + 6
        status = 0
        while status != 200 and time.monotonic() < deadline:  # it reads nothing meanwhile
            time.sleep(0.1)
            request = {"model": "floods", "messages": MESSAGES}
            status = httpx.post(gw.url + "/v1/chat/completions", json=request, timeout=5).status_code
        assert status == 200
    assert ledger(gw, "floods", 1, where="streamed = 1") == [(502, 1)]


# --- an OpenAI-compatible backend's client error, for an Anthropic client ------------------------

_TOO_LARGE = {"error": {"message": "max_tokens is too large: 99999", "type": "BadRequestError", "code": 400}}
SECTIONS["rejects"] = (
    lambda request: http(400, orjson.dumps(_TOO_LARGE), JSON),
    lambda url: [model("rejects", url + "/v1")],
)


def test_a_backends_client_error_reaches_each_sdk_in_its_own_shape(raw):
    """Passed through untouched to an OpenAI client; in Anthropic's shape, with its message, to
    an Anthropic client of a translated model (before: the OpenAI-shaped body)."""
    gw, _ = raw
    with pytest.raises(openai.BadRequestError) as openai_error:
        gw.openai().chat.completions.create(model="rejects", messages=MESSAGES)
    assert openai_error.value.body == _TOO_LARGE["error"]
    with pytest.raises(anthropic.BadRequestError) as anthropic_error:
        gw.anthropic().messages.create(model="rejects", max_tokens=99999, messages=MESSAGES)
    body = anthropic_error.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"] == "max_tokens is too large: 99999"


# --- a pipelined request whose head never ends -----------------------------------------------------


def _slowly(request: RawRequest) -> list[bytes | float]:
    request.pause_s = 0.1  # an event every 0.1 s for 3 s
    body = [chunks("x", done=False)] * 30 + [b"data: [DONE]\n\n"]
    head = b"HTTP/1.1 200 OK\r\n" + SSE.encode() + b"\r\ntransfer-encoding: chunked\r\n\r\n"
    return [head] + [b"%x\r\n%s\r\n" % (len(part), part) for part in body] + [b"0\r\n\r\n"]


SECTIONS["pipelined"] = (_slowly, lambda url: [model("slowly", url + "/v1")])


def test_a_pipelined_head_past_max_header_bytes_is_refused_while_the_first_is_answered(raw):
    """uvicorn reads a pipelined request's head as it comes, while the request before it is
    still answered: past max_header_bytes (16 KiB) the connection is dropped (before: it was
    read without limit, here 64 KiB in 0.1 s, and the stream went on to its end)."""
    gw, _ = raw
    body = orjson.dumps({"model": "slowly", "messages": MESSAGES, "stream": True})
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body)
        )
        assert b"200 OK" in sock.recv(65536)  # the stream is answered
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: gw\r\nx-pad: " + b"p" * 65536)  # and no end
        got = b""
        with contextlib.suppress(ConnectionResetError):
            while part := sock.recv(65536):
                got += part
    assert b"[DONE]" not in got  # dropped before the stream's end, not read to its end


# --- what the SDKs read of the gateway's own answers -------------------------------------------


def _refuses(request: RawRequest) -> bytes:
    if request.path.startswith("/ok/"):
        return http(200, chat("ok"), JSON)
    return http(401, b'{"error": "bad key sk-secret"}', JSON)


def _refusing(url: str) -> list[dict[str, Any]]:
    three = [{"name": f"refuses-{n}", "url": url + "/v1"} for n in range(3)]  # max_attempts: 3
    last = {"name": "refuses-ok", "url": url + "/ok/v1", "weight": 0.001}
    return [model("refuses", url + "/v1"), {"name": "refuses-some", "backends": [*three, last]}]


SECTIONS["refuses"] = (_refuses, _refusing)


def test_what_the_sdks_read_of_the_gateways_own_answers(raw):
    """``models.retrieve``, Anthropic's ``models.list``, Anthropic-shaped errors on /v1/messages,
    no SDK retry after a backend refused our key, and a 503's Retry-After while its breaker is
    open (the next probe, every 3 s here)."""
    gw, _ = raw
    client = gw.openai()
    assert client.models.retrieve("reuse").id == "reuse"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")
    assert "lingers-anthropic" in [m.id for m in gw.anthropic().models.list()]
    with pytest.raises(anthropic.NotFoundError) as info:
        gw.anthropic().messages.create(model="nope", max_tokens=5, messages=MESSAGES)
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "not_found_error"
    retrying = openai.OpenAI(base_url=gw.url + "/v1", api_key="k", max_retries=2, timeout=5)
    gw.clients.append(retrying)
    with pytest.raises(openai.APIStatusError) as failed:  # the SDK does not retry: one request
        retrying.chat.completions.create(model="refuses", messages=MESSAGES)
    assert failed.value.status_code == 502 and failed.value.response.headers["x-should-retry"] == "false"
    reply = httpx.post(gw.url + "/v1/chat/completions", json={"model": "refuses", "messages": MESSAGES})
    assert (reply.status_code, reply.headers["retry-after"]) == (503, "3")
    assert ledger(gw, "refuses", 2, "status") == [(502,), (503,)]
    # three backends refuse our keys, max_attempts (3) are spent, a fourth is left: the 502
    # lets the SDK retry, and the retry reaches it
    reply = retrying.chat.completions.with_raw_response.create(model="refuses-some", messages=MESSAGES)
    assert reply.headers["x-polyfleet-backend"] == "refuses-ok"
    assert ledger(gw, "refuses-some", 2, "status") == [(502,), (200,)]
