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


# where an event carries a usage object (not OpenAI's ``"usage": null`` on every other chunk),
# and OpenAI's usage-only chunk: found by a C-speed scan, so only those lines are parsed
_USAGE = re.compile(rb'"usage"\s*:\s*\{')
_NO_CHOICES = re.compile(rb'"choices"\s*:\s*\[\s*\]')


def _usage_only(line: bytes) -> bool:
    """Whether an SSE line is the data of OpenAI's usage-only chunk: ``choices: []`` and a usage object."""
    if not line.startswith(b"data:") or _USAGE.search(line) is None:
        return False
    try:
        data = orjson.loads(line[5:])
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and data.get("choices") == [] and isinstance(data.get("usage"), dict)


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
    usage-only event (``choices: []``), so the client's stream is what the OpenAI API
    would have sent it; otherwise ``feed`` returns the chunk untouched.
    """

    def __init__(self, hide_usage_chunk: bool = False) -> None:
        self._tail = b""
        self.tokens_in = 0
        self.tokens_out = 0
        self.seen = False
        self._hide = hide_usage_chunk
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        """Scan one chunk; the bytes to pass on to the client."""
        data = self._tail + chunk if self._tail else chunk
        done = 0  # lines before this index were read
        for found in _USAGE.finditer(data):
            if found.start() < done:
                continue  # a second usage object on a line already read
            start, end = _line_at(data, found.start())
            if end < 0:
                break  # unfinished: kept in the tail
            if data.startswith(b"data:", start):
                self._event(data[start + 5 : end])
            done = end
        self._tail = data[data.rfind(b"\n") + 1 :]
        return self._pass(chunk) if self._hide else chunk

    def _pass(self, chunk: bytes) -> bytes:
        """Complete lines of ``chunk`` (after what was held back), without the usage-only event's line.

        Line by line, so any line ending (LF or CRLF) works and only an unfinished last
        line is ever held back; the blank line that ended the dropped event stays, and an
        SSE client ignores a blank line with no data before it.
        """
        data = self._held + chunk if self._held else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self._held = data
            return b""
        self._held = data[cut + 1 :]
        lines = data[: cut + 1]
        if _NO_CHOICES.search(lines) is None:
            return lines
        kept: list[bytes] = []
        done = 0
        for found in _NO_CHOICES.finditer(lines):
            if found.start() < done:
                continue
            start, end = _line_at(lines, found.start())
            if _usage_only(lines[start:end]):
                kept.append(lines[done:start])
                done = end + 1  # the line and its newline
        kept.append(lines[done:])
        return b"".join(kept)

    def rest(self) -> bytes:
        """What ``feed`` held back, at the end of the stream."""
        held, self._held = self._held, b""
        return held

    def _event(self, payload: bytes) -> None:
        try:
            event = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        if event.get("type") == "message_start":
            found = usage_of(event.get("message"))
            if found:
                self.tokens_in = max(self.tokens_in, found[0])
                self.tokens_out = max(self.tokens_out, found[1])
                self.seen = True
            return
        found = usage_of(event)
        if found is None:
            return
        self.seen = True
        if event.get("type") == "message_delta":  # Anthropic: cumulative output tokens
            self.tokens_out = max(self.tokens_out, found[1])
            self.tokens_in = max(self.tokens_in, found[0])
        else:
            self.tokens_in, self.tokens_out = found
