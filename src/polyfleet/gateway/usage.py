"""Token usage as upstreams report it: in a JSON body, or in the events of an SSE stream."""

from __future__ import annotations

import re
from typing import Any

import orjson

Usage = tuple[int, int]


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def usage_of(message: Any) -> Usage | None:
    """``(tokens_in, tokens_out)`` from an OpenAI or Anthropic response object, or None."""
    if not isinstance(message, dict):
        return None
    usage = message.get("usage")
    if not isinstance(usage, dict):
        return None
    if "prompt_tokens" in usage or "completion_tokens" in usage:  # OpenAI
        return _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    return _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))  # Anthropic


def usage_from_body(body: bytes) -> Usage | None:
    """Usage from a complete JSON body (None when absent or not JSON)."""
    try:
        return usage_of(orjson.loads(body))
    except orjson.JSONDecodeError:
        return None


# where an event carries a usage object (not OpenAI's ``"usage": null`` on every other chunk):
# found by a C-speed scan, so only those lines are parsed
_USAGE = re.compile(rb'"usage"\s*:\s*\{')


def _line_at(data: bytes, pos: int) -> tuple[int, int]:
    """Start and end (the index of its newline, -1 when unfinished) of the line holding ``pos``."""
    return data.rfind(b"\n", 0, pos) + 1, data.find(b"\n", pos)


class StreamUsage:
    """Watches SSE bytes go by and keeps the usage they report, without holding the stream.

    OpenAI sends usage in the last ``data:`` event (with ``stream_options.include_usage``);
    Anthropic sends input tokens in ``message_start`` and output tokens in ``message_delta``.
    The bytes are scanned for ``"usage": {`` and only the lines holding it are parsed (the
    other events pass unparsed); only the unfinished last line is kept between chunks.

    With ``hide_usage_chunk`` (an OpenAI client that did not ask for usage, while the
    gateway did, to bill it), ``feed`` holds back the unfinished last line and drops the
    line of the usage-only event (``choices: []`` and a usage object; the blank line that
    ended it stays, and an SSE client ignores a blank line with no data before it), so the
    client's stream is what the OpenAI API would have sent it; line by line, so LF and CRLF
    endings both work.  Otherwise ``feed`` returns the chunk untouched.
    """

    def __init__(self, hide_usage_chunk: bool = False) -> None:
        self._tail = b""
        self.tokens_in = 0
        self.tokens_out = 0
        self.seen = False  # some usage was reported
        self.final = False  # the usage of the whole answer: OpenAI's usage, Anthropic's message_delta
        self._hide = hide_usage_chunk

    def feed(self, chunk: bytes) -> bytes:
        """Scan one chunk; the bytes to pass on to the client."""
        data = self._tail + chunk if self._tail else chunk
        cut = data.rfind(b"\n") + 1  # complete lines end here
        self._tail = data[cut:]
        drop = self._scan(data, cut) if _USAGE.search(data, 0, cut) is not None else None
        if not self._hide:
            return chunk
        if not drop:
            return data if cut == len(data) else data[:cut]
        pieces: list[bytes] = []
        done = 0
        for start, end in drop:
            pieces.append(data[done:start])
            done = end + 1  # the line and its newline
        pieces.append(data[done:cut])
        return b"".join(pieces)

    def _scan(self, data: bytes, cut: int) -> list[tuple[int, int]]:
        """Read the usage of every complete line holding one; the usage-only lines to drop."""
        drop: list[tuple[int, int]] = []
        done = 0  # lines before this index were read
        for found in _USAGE.finditer(data, 0, cut):
            if found.start() < done:
                continue  # a second usage object on a line already read
            start, end = _line_at(data, found.start())
            done = end
            if not data.startswith(b"data:", start):
                continue
            event = self._event(data[start + 5 : end])
            if self._hide and event.get("choices") == [] and isinstance(event.get("usage"), dict):
                drop.append((start, end))
        return drop

    def rest(self) -> bytes:
        """What ``feed`` held back, at the end of the stream."""
        if not self._hide:
            return b""
        held, self._tail = self._tail, b""
        return held

    def _event(self, payload: bytes) -> dict[str, Any]:
        """Keep the usage an event reports; the event (empty when it is not a JSON object)."""
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return {}
        if not isinstance(event, dict):
            return {}
        if event.get("type") == "message_start":
            found = usage_of(event.get("message"))
            if found:
                self.tokens_in = max(self.tokens_in, found[0])
                self.tokens_out = max(self.tokens_out, found[1])
                self.seen = True
            return event
        found = usage_of(event)
        if found is None:
            return event
        self.seen = self.final = True
        if event.get("type") == "message_delta":  # Anthropic: cumulative output tokens
            self.tokens_out = max(self.tokens_out, found[1])
            self.tokens_in = max(self.tokens_in, found[0])
        else:
            self.tokens_in, self.tokens_out = found
        return event
