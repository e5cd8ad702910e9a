"""A small OpenAI- and Anthropic-compatible upstream the gateway tests (and bench) start as a process.

``python tests/gateway_upstream.py --port N --name NAME``.  It answers chat completions,
completions, embeddings and Anthropic messages, streamed or not, with deterministic
usage: input tokens = words in the prompt, output tokens = ``max_tokens`` (default 5).
Tests script it over HTTP:

- ``POST /_control {"mode": MODE, "retry_after": s, "times": n, "delay_s": s,
  "chunk_delay_s": s}``: ``times`` bounds how many requests get the mode before it
  reverts to ``ok``; ``delay_s`` delays every answer, ``chunk_delay_s`` every streamed
  chunk.  Modes: ``ok``, ``stall`` (never answers), ``429``/``500`` (with ``retry_after``
  seconds), ``429-date`` (Retry-After as an HTTP date ``retry_after`` s ahead), ``401``
  (the body echoes the key it got), ``html``/``truncated`` (a 200 that is not JSON),
  ``nousage`` (answers without usage), ``cut`` (a stream that breaks off half way: the
  connection drops), ``cut-clean`` (a stream that ends half way, without its end event),
  ``stall-mid`` (a stream that stops after its first events), ``endless`` (a stream that
  never ends).  ``GET /v1/models`` (the health probe) answers 200 in ``ok`` mode, else 500.
- ``GET /_stats``: requests seen, requests answered, the usage it reported, streams it saw
  its client leave (``disconnected``) and streams in progress (``streaming``).
- ``POST /_reset``: zero the stats and go back to ``ok``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from email.utils import formatdate
from typing import Any

import orjson
import uvicorn


class Upstream:
    """The ASGI app; state lives on the instance."""

    def __init__(self, name: str):
        self.name = name
        self.reset()

    def reset(self) -> None:
        self.mode = "ok"
        self.times: int | None = None
        self.retry_after: float | None = None
        self.delay_s = 0.0
        self.chunk_delay_s = 0.0
        self.stats = {
            "received": 0,
            "answered": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "errors": 0,
            "probes": 0,
            "disconnected": 0,
            "streaming": 0,
        }

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if path == "/_stats":
            return await self._json(send, 200, {"name": self.name, "mode": self.mode, **self.stats})
        if path == "/_reset":
            self.reset()
            return await self._json(send, 200, {"ok": True})
        if path == "/_control":
            control = orjson.loads(body)
            self.mode = control.get("mode", self.mode)
            self.times = control.get("times")
            self.retry_after = control.get("retry_after")
            self.delay_s = control.get("delay_s", self.delay_s)
            self.chunk_delay_s = control.get("chunk_delay_s", self.chunk_delay_s)
            return await self._json(send, 200, {"ok": True})
        if path == "/v1/models":
            self.stats["probes"] += 1
            if self.mode == "ok":
                return await self._json(send, 200, {"object": "list", "data": []})
            return await self._json(send, 500, {"error": {"message": "down", "type": "upstream"}})
        self.stats["received"] += 1
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        mode = self.mode
        if self.times is not None:
            self.times -= 1
            if self.times <= 0:
                self.mode, self.times = "ok", None
        if mode == "stall":
            await asyncio.sleep(3600)
        if mode in ("429", "500", "429-date"):
            self.stats["errors"] += 1
            headers = (
                [(b"retry-after", str(self.retry_after).encode())] if self.retry_after is not None else []
            )
            if mode == "429-date":
                when = formatdate(time.time() + (self.retry_after or 0), usegmt=True)
                headers, mode = [(b"retry-after", when.encode())], "429"
            error = {"error": {"message": f"{self.name} says {mode}", "type": "upstream", "code": mode}}
            return await self._json(send, int(mode), error, headers)
        if mode == "401":
            self.stats["errors"] += 1
            error = {"error": {"message": f"invalid api key {auth!r}", "type": "invalid_request_error"}}
            return await self._json(send, 401, error)
        if mode in ("html", "truncated"):
            self.stats["errors"] += 1
            kind, text = (
                (b"text/html", b"<html><body>502 Bad Gateway (nginx)</body></html>")
                if mode == "html"
                else (b"application/json", b'{"id": "cmpl-1", "choices": [{"index": 0, "mess')
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", kind), (b"content-length", str(len(text)).encode())],
                }
            )
            return await send({"type": "http.response.body", "body": text})
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return await self._json(
                send, 400, {"error": {"message": "bad json", "type": "invalid_request_error"}}
            )
        if request.get("max_tokens") == -1:  # a client error to pass through
            error = {"error": {"message": "max_tokens must be positive", "type": "invalid_request_error"}}
            return await self._json(send, 400, error)
        tokens_in = _words(request)
        tokens_out = int(request.get("max_tokens") or 5)
        if path == "/v1/messages":
            answer = self._messages_stream if request.get("stream") else self._message
        elif path == "/v1/embeddings":
            answer, tokens_out = self._embeddings, 0
        elif path in ("/v1/chat/completions", "/v1/completions"):
            answer = self._chat_stream if request.get("stream") else self._chat
        else:
            return await self._json(send, 404, {"error": {"message": "no such path", "type": "not_found"}})
        await answer(send, request, path, tokens_in, tokens_out, auth, mode, receive)

    def _count(self, tokens_in: int, tokens_out: int) -> None:
        self.stats["answered"] += 1
        self.stats["prompt_tokens"] += tokens_in
        self.stats["completion_tokens"] += tokens_out

    async def _json(self, send: Any, status: int, data: Any, headers: list | None = None) -> None:
        body = orjson.dumps(data)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *(headers or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _chat(
        self, send: Any, request: dict, path: str, t_in: int, t_out: int, auth: str, mode: str, receive: Any
    ) -> None:
        text = f"{self.name} " + "tok " * (t_out - 1)
        if path == "/v1/completions":
            choice: dict = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
            obj = "text_completion"
        else:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            obj = "chat.completion"
        usage = {"prompt_tokens": t_in, "completion_tokens": t_out, "total_tokens": t_in + t_out}
        data = {
            "id": "cmpl-1",
            "object": obj,
            "created": 0,
            "model": request.get("model"),
            "system_fingerprint": auth[-12:] or None,
            "choices": [choice],
            "usage": usage,
        }
        if mode == "nousage":
            del data["usage"]
        self._count(t_in, t_out)
        await self._json(send, 200, data, [(b"x-upstream", self.name.encode())])

    async def _embeddings(
        self, send: Any, request: dict, path: str, t_in: int, t_out: int, auth: str, mode: str, receive: Any
    ) -> None:
        data = {
            "object": "list",
            "model": request.get("model"),
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
            "usage": {"prompt_tokens": t_in, "total_tokens": t_in},
        }
        self._count(t_in, 0)
        await self._json(send, 200, data)

    async def _events(self, send: Any, events: list[bytes], mode: str = "ok", receive: Any = None) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"x-upstream", self.name.encode())],
            }
        )
        gone = asyncio.Event()
        watch = None
        if receive is not None and (self.chunk_delay_s or mode in ("endless", "stall-mid")):

            async def watcher() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                gone.set()

            watch = asyncio.create_task(watcher())
        if mode in ("cut", "cut-clean", "stall-mid"):
            events = events[: max(2, len(events) // 2)]
        self.stats["streaming"] += 1
        try:
            i = 0
            while mode == "endless" or i < len(events):
                event = events[min(i, len(events) - 2)] if mode == "endless" else events[i]
                i += 1
                delay = self.chunk_delay_s or (0.05 if mode == "endless" else 0)
                if delay:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(gone.wait(), delay)
                if gone.is_set():
                    self.stats["disconnected"] += 1
                    return
                await send({"type": "http.response.body", "body": event, "more_body": True})
            if mode == "cut":
                raise ConnectionAbortedError("upstream cut the stream (test mode 'cut')")
            if mode == "stall-mid":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(gone.wait(), 3600)
                self.stats["disconnected"] += 1
                return
            await send({"type": "http.response.body", "body": b""})
        finally:
            self.stats["streaming"] -= 1
            if watch is not None:
                watch.cancel()

    async def _chat_stream(
        self, send: Any, request: dict, path: str, t_in: int, t_out: int, auth: str, mode: str, receive: Any
    ) -> None:
        def chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
            choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
            data = {
                "id": "chunk-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": request.get("model"),
                "choices": choices,
                "usage": usage,
            }
            return b"data: " + orjson.dumps(data) + b"\n\n"

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": f"{self.name} " if i == 0 else "tok "}) for i in range(t_out)]
        events.append(chunk({}, "stop"))
        if (request.get("stream_options") or {}).get("include_usage") and mode != "nousage":
            events.append(
                chunk(
                    {},
                    usage={"prompt_tokens": t_in, "completion_tokens": t_out, "total_tokens": t_in + t_out},
                )
            )
        events.append(b"data: [DONE]\n\n")
        self._count(t_in, t_out)
        await self._events(send, events, mode, receive)

    def _message_body(self, request: dict, t_in: int, t_out: int) -> dict:
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": request.get("model"),
            "content": [{"type": "text", "text": f"{self.name} " + "tok " * (t_out - 1)}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": t_in, "output_tokens": t_out},
        }

    async def _message(
        self, send: Any, request: dict, path: str, t_in: int, t_out: int, auth: str, mode: str, receive: Any
    ) -> None:
        self._count(t_in, t_out)
        body = self._message_body(request, t_in, t_out)
        if mode == "nousage":
            del body["usage"]
        await self._json(send, 200, body)

    async def _messages_stream(
        self, send: Any, request: dict, path: str, t_in: int, t_out: int, auth: str, mode: str, receive: Any
    ) -> None:
        def event(kind: str, data: dict) -> bytes:
            return f"event: {kind}\n".encode() + b"data: " + orjson.dumps({"type": kind, **data}) + b"\n\n"

        start = self._message_body(request, t_in, 1)
        start["content"] = []
        start["stop_reason"] = None
        events = [
            event("message_start", {"message": start}),
            event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ]
        events += [
            event(
                "content_block_delta",
                {"index": 0, "delta": {"type": "text_delta", "text": f"{self.name} " if i == 0 else "tok "}},
            )
            for i in range(t_out)
        ]
        events += [
            event("content_block_stop", {"index": 0}),
            event(
                "message_delta",
                {
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": t_out},
                },
            ),
            event("message_stop", {}),
        ]
        self._count(t_in, t_out)
        await self._events(send, events, mode, receive)


def _words(request: dict) -> int:
    """Input tokens: the words of every prompt string in the request (at least 1)."""
    texts: list[str] = []
    for key in ("prompt", "input", "system"):
        value = request.get(key)
        texts += [value] if isinstance(value, str) else [v for v in value or [] if isinstance(v, str)]
    for message in request.get("messages") or []:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [part.get("text", "") for part in content if isinstance(part, dict)]
    return max(1, sum(len(t.split()) for t in texts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default=f"upstream-{os.getpid()}")
    args = parser.parse_args()
    uvicorn.run(
        Upstream(args.name),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
