"""Anthropic Messages clients on OpenAI-compatible backends: translate the request and the answer.

Text only: ``system``, ``messages`` with string or text-block content, ``max_tokens``,
``temperature``, ``top_p``, ``stop_sequences`` and ``stream``.  Images and tools are
refused with a 400 that says so (route such a model to ``api: anthropic`` backends).
"""

from __future__ import annotations

from typing import Any

import orjson

from polyfleet.gateway.errors import GatewayError, UpstreamMalformed

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def _refuse(message: str, param: str) -> GatewayError:
    return GatewayError(
        message, status=400, type="invalid_request_error", code="unsupported_content", param=param
    )


def _text(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _refuse("content must be a string or a list of blocks", param)
    parts = []
    for block in content:
        if not isinstance(block, dict) or block.get("type") != "text":
            kind = block.get("type") if isinstance(block, dict) else type(block).__name__
            raise _refuse(
                f"content block {kind!r} cannot go to an OpenAI-compatible backend (text only)", param
            )
        parts.append(str(block.get("text", "")))
    return "".join(parts)


def messages_to_chat(payload: dict[str, Any], model: str) -> dict[str, Any]:
    """An Anthropic Messages request as an OpenAI chat completions request."""
    if payload.get("tools"):
        raise _refuse("tools cannot go to an OpenAI-compatible backend through /v1/messages", "tools")
    chat: list[dict[str, str]] = []
    if payload.get("system"):
        chat.append({"role": "system", "content": _text(payload["system"], "system")})
    messages = payload.get("messages")
    if not isinstance(messages, list):
        raise _refuse("'messages' must be a list", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise _refuse("each message needs role 'user' or 'assistant'", f"messages[{index}]")
        chat.append({"role": message["role"], "content": _text(message.get("content"), f"messages[{index}]")})
    out: dict[str, Any] = {"model": model, "messages": chat}
    for ours, theirs in (
        ("max_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("stop_sequences", "stop"),
    ):
        if payload.get(ours) is not None:
            out[theirs] = payload[ours]
    if payload.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _usage(data: dict[str, Any]) -> dict[str, int]:
    usage = data.get("usage") or {}
    return {
        "input_tokens": usage.get("prompt_tokens") or 0,
        "output_tokens": usage.get("completion_tokens") or 0,
    }


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def chat_to_message(body: bytes, model: str) -> bytes:
    """An OpenAI chat completion (JSON bytes, an object with ``choices``) as an Anthropic message."""
    data = orjson.loads(body)
    choice = _dict((data.get("choices") or [{}])[0])
    text = _dict(choice.get("message")).get("content") or ""
    message = {
        "id": data.get("id", "msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": _STOP.get(choice.get("finish_reason"), "end_turn"),
        "stop_sequence": None,
        "usage": _usage(data),
    }
    return orjson.dumps(message)


def chat_error_to_message(body: bytes, status: int) -> bytes:
    """An OpenAI-compatible backend's error answer (4xx passed on) in Anthropic's shape, with
    its message, so an Anthropic client reads it as it reads Anthropic's own errors."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    error = _dict(data).get("error")
    message = _dict(error).get("message") if isinstance(error, dict) else error
    if not isinstance(message, str) or not message:
        message = body.decode("utf-8", "replace")[:2000] or f"the backend answered {status}"
    code = _dict(error).get("code")
    return GatewayError(
        message, status=status, type="", code=code if isinstance(code, str) else None
    ).anthropic_body()


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **data}) + b"\n\n"


class ChatToMessagesStream:
    """OpenAI chat completion chunks in, Anthropic Messages stream events out, event by event.

    Only the unfinished last line of the upstream stream is held back between chunks.
    """

    def __init__(self, model: str):
        self.model = model
        self._tail = b""
        self._started = False
        self._stop_reason = "end_turn"
        self._usage = {"input_tokens": 0, "output_tokens": 0}
        self._done = False

    def feed(self, chunk: bytes) -> bytes:
        """Translate every complete SSE line in ``chunk``."""
        lines = (self._tail + chunk).split(b"\n")
        self._tail = lines.pop()
        out = []
        for line in lines:
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                out.append(self.finish())
                continue
            try:
                data = orjson.loads(payload)
            except orjson.JSONDecodeError:
                data = None
            if not isinstance(data, dict):  # the stream ends here, with an error event for the client
                raise UpstreamMalformed("upstream sent an event that is not a JSON object")
            out.append(self._chunk(data))
        return b"".join(out)

    def _start(self, data: dict[str, Any]) -> bytes:
        self._started = True
        message = {
            "id": data.get("id", "msg"),
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": dict(self._usage),
        }
        return _event("message_start", {"message": message}) + _event(
            "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
        )

    def _chunk(self, data: dict[str, Any]) -> bytes:
        out = b"" if self._started else self._start(data)
        if data.get("usage"):
            self._usage = _usage(data)
        choices = data.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            choice = _dict(choice)
            text = _dict(choice.get("delta")).get("content")
            if text:
                out += _event(
                    "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}}
                )
            if choice.get("finish_reason"):
                self._stop_reason = _STOP.get(choice["finish_reason"], "end_turn")
        return out

    def finish(self) -> bytes:
        """The closing events (once), whether or not upstream sent ``[DONE]``."""
        if self._done:
            return b""
        self._done = True
        out = b"" if self._started else self._start({})
        return out + (
            _event("content_block_stop", {"index": 0})
            + _event(
                "message_delta",
                {"delta": {"stop_reason": self._stop_reason, "stop_sequence": None}, "usage": self._usage},
            )
            + _event("message_stop", {})
        )
