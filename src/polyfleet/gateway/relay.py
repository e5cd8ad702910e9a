"""Relaying an upstream's answer to the client: a JSON body whole, an SSE stream as it comes.

``Request`` is what the ledger needs to know about a request, gathered before it is
routed; ``Outcome`` is what became of it, filled in as the answer goes through (read by
``accounting`` once the request ends).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from polyfleet.gateway.anthropic import ChatToMessagesStream, chat_error_to_message, chat_to_message
from polyfleet.gateway.backends import BackendState
from polyfleet.gateway.config import Key
from polyfleet.gateway.errors import UpstreamError
from polyfleet.gateway.metrics import Metrics
from polyfleet.gateway.transport import UpstreamResponse
from polyfleet.gateway.types import Send
from polyfleet.gateway.usage import StreamUsage, Usage, usage_of

# a stream's protocol end, at the start of a line (a JSON string holds no raw line break, so
# an answer whose text says "[DONE]" or "message_stop" is not taken for its end)
_OPENAI_END = re.compile(rb"[\r\n]data: ?\[DONE\]")
_ANTHROPIC_END = re.compile(rb'[\r\n](?:event: ?message_stop|data: ?\{"type": ?"message_stop")')
_EVENT_ENDS = (b"\n\n", b"\r\n\r\n", b"\r\r")  # a chunk that ends an event
_DRAIN_S = 0.5  # how long the upstream may take to end its answer after its protocol's end
_LAST_SEND_S = 1.0  # how long past total_s a stream's last bytes may wait for the client


@dataclass(slots=True)
class Request:
    """What the ledger needs to know about a request, gathered before it is routed."""

    key: Key
    day: str
    model: str
    endpoint: str
    stream: bool
    started: float
    reserved: float  # USD of the key's budget held for this request
    payload: dict[str, Any]
    api: str  # the protocol the client speaks


@dataclass(slots=True)
class Outcome:
    """What became of a request, filled in as it goes (read by the ledger at the end)."""

    backend: BackendState | None = None
    status: int = 502
    usage: Usage | None = None
    tokens_in: int | None = None  # reported input tokens of an answer whose output is counted
    attempts: int = 0
    responded: bool = False  # the status line went to the client
    partial: bool = False
    estimated: bool = False
    client_gone: bool = False
    finished: bool = False
    error: str = ""
    complete: bool = False  # a stream reached its protocol's end
    answered: bool = False  # the client's answer was sent to its end
    chunks: list[bytes] | None = None  # the answer as received, to count tokens when usage is missing
    abort: Callable[[], None] | None = None  # drops the client's connection (our server's, else None)


def stream_error(api: str, message: str) -> bytes:
    """The last event of a stream that broke off, in the client's protocol: the SDKs raise on it."""
    if api == "anthropic":
        error = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + orjson.dumps(error) + b"\n\n"
    error = {
        "error": {"message": message, "type": "server_error", "param": None, "code": "upstream_stream_broken"}
    }
    return b"data: " + orjson.dumps(error) + b"\n\n"


async def relay_body(
    send: Send,
    req: Request,
    out: Outcome,
    status: int,
    answer: bytes,
    parsed: dict[str, Any] | None,
    headers: list,
    translate: bool,
) -> None:
    """Send a whole (non-streamed) answer; read its usage (from ``parsed``, the 2xx body as
    the protocol check parsed it), or keep it to count tokens."""
    if status < 300:
        out.usage = usage_of(parsed)
        if out.usage is None:
            out.chunks = [answer]
        answer = chat_to_message(answer, req.model) if translate else answer
    elif translate:  # an OpenAI-compatible backend's 4xx, for an Anthropic client
        answer = chat_error_to_message(answer, status)
    headers.append((b"content-length", str(len(answer)).encode()))
    out.responded = True
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": answer})
    out.answered = True


async def relay_stream(
    send: Send,
    req: Request,
    out: Outcome,
    response: UpstreamResponse,
    first: bytes,
    headers: list,
    translate: bool,
    hide_usage: bool,
    metrics: Metrics,
) -> None:
    """Pass SSE chunks through as they arrive; a stream that breaks off is an error the client sees.

    Upstream bytes go out as they came (never parsed and re-encoded); ``StreamUsage``
    scans them for the events that carry usage.  When translating for an Anthropic
    client, OpenAI chunks become Anthropic events, event by event.  The stream is complete
    only at its protocol's end (``[DONE]``, or ``message_stop`` from an Anthropic backend);
    if the upstream stops short, breaks, stalls past ``inter_chunk_s`` or runs past
    ``total_s``, the client gets an error event in its protocol (never a made-up normal
    finish) and the ledger row says partial.
    """
    headers.append((b"cache-control", b"no-cache"))
    recode = ChatToMessagesStream(req.model) if translate else None
    meter = StreamUsage(hide_usage_chunk=hide_usage)
    anthropic = out.backend is not None and out.backend.config.api == "anthropic"
    end, ends = (b"message_stop", _ANTHROPIC_END) if anthropic else (b"[DONE]", _OPENAI_END)
    chunks: list[bytes] = []
    out.chunks = chunks
    try:  # from here on the upstream connection is closed (or pooled, after its end) whatever happens
        try:
            # total_s bounds the sends too: a client that stops reading would otherwise hold the
            # request, its backend's concurrency slot and the upstream connection for ever
            async with asyncio.timeout_at(response.deadline):
                await send({"type": "http.response.start", "status": response.status, "headers": headers})
                out.responded = True
                await _pass_on(send, out, response, first, chunks, meter, recode, end, ends)
        except UpstreamError as exc:
            out.error = str(exc)
        except TimeoutError:
            out.error = "the stream ran past total_s (an upstream too slow to end, or a client to read)"
        finally:
            if meter.seen and (meter.final or out.complete):
                out.usage = (meter.tokens_in, meter.tokens_out)
            elif meter.seen:  # cut after message_start: its input tokens hold, the output is counted
                out.tokens_in = meter.tokens_in
        if out.complete:
            last = meter.rest() + (recode.finish() if recode is not None else b"")
        else:
            out.status, out.partial = 502, True
            metrics.stream_cuts.labels(req.model, out.backend.name if out.backend else "").inc()
            last = stream_error(req.api, out.error or "the upstream ended the stream before its end")
        deadline = response.deadline
        last_by = (
            None if deadline is None else max(deadline, asyncio.get_running_loop().time()) + _LAST_SEND_S
        )
        try:
            async with asyncio.timeout_at(last_by):  # what is left of total_s, and 1 s more
                await send({"type": "http.response.body", "body": last})
            out.answered = True
        except TimeoutError:  # the client takes no bytes: nothing more can be said to it
            out.partial = True
            if out.abort is not None:
                out.abort()
            return
        if out.complete and not response.at_eof():
            await _drain(response)
    finally:
        response.close()


async def _pass_on(
    send: Send,
    out: Outcome,
    response: UpstreamResponse,
    chunk: bytes,
    chunks: list[bytes],
    meter: StreamUsage,
    recode: ChatToMessagesStream | None,
    end: bytes,
    ends: re.Pattern[bytes],
) -> None:
    """Send the stream's chunks as they come, until its protocol's end (``out.complete``) or
    its last byte; raises ``UpstreamError`` when the upstream fails."""
    tail = b"\n"  # the stream starts at the start of a line
    while chunk:
        chunks.append(chunk)
        ended = not out.complete and (end in chunk or end in tail + chunk[:16])
        ended = ended and ends.search(tail + chunk) is not None
        tail = chunk[-32:]
        passed = meter.feed(chunk)
        if recode is not None:
            passed = recode.feed(chunk)  # raises on an event it cannot read: not complete
        out.complete = out.complete or ended
        if passed:
            await send({"type": "http.response.body", "body": passed, "more_body": True})
        if out.complete and chunk.endswith(_EVENT_ENDS):
            return  # the protocol's end: the client's answer ends now, whenever the upstream's does
        chunk = await response.next_chunk()


async def _drain(response: UpstreamResponse) -> None:
    """Read what an upstream still sends after its protocol's end (its chunked terminator, at
    once as a rule), for up to ``_DRAIN_S``, so that its connection can be reused."""
    with contextlib.suppress(UpstreamError, TimeoutError):
        async with asyncio.timeout(_DRAIN_S):
            while await response.next_chunk():
                pass
