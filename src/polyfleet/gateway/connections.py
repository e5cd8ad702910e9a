"""Upstream HTTP/1.1 connections: one answer at a time parsed by httptools, kept alive in a pool.

``Connection`` is an ``asyncio.Protocol`` fed by the event loop: ``httptools`` (llhttp, the
parser uvicorn serves with) parses the answer as it arrives, a ``gzip``/``deflate`` body
(sent although we ask for identity) is decoded by ``Inflate``, and the reader
(``transport.UpstreamResponse``) is woken through ``waiter``.  ``Pool`` keeps idle
keep-alive connections per (host, port, TLS), at most ``_KEEPALIVE_S`` each.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib

import httptools

from polyfleet.gateway.errors import UpstreamTimeout, UpstreamUnavailable

_MAX_HEAD_BYTES = 65536  # an upstream's status line and headers (aiohttp's limit is 8190 a line)
_PAUSE_BYTES = 262144  # stop reading a stream the client is slow to take past this much buffered
# an idle pooled connection older than this is closed, not reused: under the 5 s idle timeout of
# uvicorn (vLLM, SGLang), Node and Apache, so we rarely send on a connection the upstream is closing
_KEEPALIVE_S = 4.0
_MAX_IDLE = 256  # idle connections kept per upstream host


class Inflate:
    """Decodes a ``gzip`` or ``deflate`` body as it arrives (an upstream that ignored our
    ``accept-encoding: identity``); ``deflate`` is zlib-wrapped or, as some servers send it, raw."""

    __slots__ = ("_coding", "_obj", "_seen")

    def __init__(self, coding: str):
        self._coding = coding
        self._obj = zlib.decompressobj(31 if coding != "deflate" else 15)
        self._seen = b""  # deflate input before any output: replayed raw if the zlib header is wrong

    def feed(self, data: bytes) -> bytes:
        """The decoded bytes of ``data`` (raises ``zlib.error`` on what is not the encoding)."""
        if self._coding == "deflate" and self._seen is not None:
            self._seen += data
            try:
                out = self._obj.decompress(data)
            except zlib.error:
                self._obj, seen, self._seen = zlib.decompressobj(-15), self._seen, None
                return self._obj.decompress(seen)
            if out:
                self._seen = None
            return out
        return self._obj.decompress(data)

    def flush(self) -> bytes:
        """What is left at the end of the body."""
        return self._obj.flush()


_DECODED = ("gzip", "x-gzip", "deflate")


class Connection(asyncio.Protocol):
    """One keep-alive connection to an upstream; it parses one answer at a time."""

    def __init__(self, pool: Pool, key: tuple[str, int, bool]):
        self.pool = pool
        self.key = key
        self.transport: asyncio.Transport | None = None
        self.parser = self._parser()
        self.status = 0
        self.headers: dict[str, str] = {}
        self.head_bytes = 0  # received while the head is not complete
        self.header_bytes = 0  # of the headers parsed
        self.head_done = False
        self.complete = False
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.paused = False
        self.error: Exception | None = None  # the connection broke or sent what is not HTTP
        self.closed = False
        self.waiter: asyncio.Future[bool] | None = None  # True when its time ran out
        self.idle_since = 0.0
        self.head_only = False  # the answer to a HEAD: it ends with its headers
        self.keep_alive = False  # the answer lets the connection live
        self.inflate: Inflate | None = None  # the answer's content-encoding, decoded
        self.reused = False  # it served an answer before this request
        self.received = False  # a byte of the current answer arrived

    # --- asyncio.Protocol ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        if self.complete or self.error is not None:  # bytes after the answer: not HTTP we asked for
            self._broken(UpstreamUnavailable("upstream sent bytes after its answer"))
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._broken(UpstreamUnavailable(f"upstream answered with malformed HTTP: {exc}"))
            return
        if not self.head_done:
            self.head_bytes += len(data)
            if self.head_bytes > _MAX_HEAD_BYTES:
                self._broken(UpstreamUnavailable(f"upstream head over {_MAX_HEAD_BYTES} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.idle_since:
            self.pool.forget(self)
        elif not self.complete and self.error is None:
            if exc is None and self.head_done and self._until_close():
                self._ended()  # a body delimited by the connection's close (no length, not chunked)
            else:
                reason = type(exc).__name__ if exc is not None else "closed"
                self.error = UpstreamUnavailable(f"upstream broke off its answer: connection {reason}")
        self._wake()

    def _until_close(self) -> bool:
        return "content-length" not in self.headers and "chunked" not in self.headers.get(
            "transfer-encoding", ""
        )

    # --- httptools callbacks -------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > _MAX_HEAD_BYTES:
            self.error = UpstreamUnavailable(f"upstream head over {_MAX_HEAD_BYTES} bytes")
            raise httptools.HttpParserError(self.error)  # stops the parser
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if self.status < 200:  # 1xx: an interim answer; the real one follows
            self.headers = {}
            return
        coding = self.headers.get("content-encoding")
        if coding is not None and not self.head_only:
            self._decode(coding.strip().lower())
        self.head_done = True
        # asked now: once the answer is complete the parser has moved on to the next one
        self.keep_alive = self.parser.should_keep_alive()
        if self.head_only:
            self.complete = True
        self._wake()

    def _decode(self, coding: str) -> None:
        """Decode a body in gzip or deflate (passed on decoded); refuse any other encoding."""
        if coding in _DECODED:
            self.inflate = Inflate(coding)
            del self.headers["content-encoding"]  # what the reader gets is decoded
        elif coding != "identity":
            self.error = UpstreamUnavailable(
                f"upstream answered in content-encoding {coding!r}: the gateway asks for identity"
                " and decodes only gzip and deflate"
            )
            raise httptools.HttpParserError(self.error)  # stops the parser

    def on_body(self, body: bytes) -> None:
        if self.inflate is not None:
            try:
                body = self.inflate.feed(body)
            except zlib.error as exc:
                self.error = UpstreamUnavailable(f"upstream body is not the content-encoding it names: {exc}")
                raise httptools.HttpParserError(self.error) from None
            if not body:
                return
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > _PAUSE_BYTES and not (self.paused or self.closed) and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.head_done:
            self._ended()
            self._wake()

    def _ended(self) -> None:
        """The answer is complete (what a decoder still held is its last bytes)."""
        if self.inflate is not None:
            rest = self.inflate.flush()
            if rest:
                self.chunks.append(rest)
                self.buffered += len(rest)
        self.complete = True

    # --- for UpstreamResponse ------------------------------------------------------------

    def _broken(self, error: Exception) -> None:
        if self.error is None and not self.complete:
            self.error = error
        self.abort()
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(False)

    def take(self) -> bytes:
        """All body bytes received and not yet taken."""
        chunks, self.chunks, self.buffered = self.chunks, [], 0
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def abort(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.abort()

    def _parser(self) -> httptools.HttpResponseParser:
        """A parser for one answer; it takes a head whose lines end in a bare LF, as http.client
        and h11 (httpx) do (llhttp is strict by default: 'Missing expected CR')."""
        parser = httptools.HttpResponseParser(self)
        parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)
        return parser

    def start(self, head_only: bool) -> None:
        """Ready for a new answer."""
        self.parser = self._parser()
        self.status = self.head_bytes = self.header_bytes = 0
        self.headers = {}
        self.head_done = self.complete = self.keep_alive = self.received = False
        self.head_only = head_only
        self.inflate = None
        self.idle_since = 0.0


class Pool:
    """Idle keep-alive connections per (host, port, TLS); the newest is reused first."""

    def __init__(self, ssl_context: ssl.SSLContext):
        self.idle: dict[tuple[str, int, bool], list[Connection]] = {}
        self.ssl_context = ssl_context
        self.closed = False

    async def connect(
        self, key: tuple[str, int, bool], timeout_s: float | None, fresh: bool = False
    ) -> Connection:
        """An idle connection to ``key`` (the newest), or a new one (always with ``fresh``)."""
        idle = None if fresh else self.idle.get(key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < _KEEPALIVE_S:
                return conn
            conn.idle_since = 0.0
            conn.abort()
        host, port, tls = key
        loop = asyncio.get_running_loop()
        opening = loop.create_connection(
            lambda: Connection(self, key),
            host,
            port,
            ssl=self.ssl_context if tls else None,
            server_hostname=host if tls else None,
        )
        try:
            async with asyncio.timeout(timeout_s):
                _, conn = await opening
        except TimeoutError as exc:
            raise UpstreamTimeout("no answer from upstream in time (connecting)") from exc
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamUnavailable(f"cannot reach upstream: {type(exc).__name__}") from exc
        return conn

    def release(self, conn: Connection) -> None:
        """Back to the pool after a complete answer that lets the connection live; else closed."""
        reusable = conn.complete and not conn.chunks and conn.keep_alive
        if self.closed or conn.closed or not reusable:
            conn.abort()
            return
        idle = self.idle.setdefault(conn.key, [])
        if len(idle) >= _MAX_IDLE:
            oldest = idle.pop(0)
            oldest.idle_since = 0.0
            oldest.abort()
        conn.idle_since = time.monotonic()
        conn.reused = True
        idle.append(conn)

    def forget(self, conn: Connection) -> None:
        """An idle connection was closed by its upstream."""
        idle = self.idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)
        conn.idle_since = 0.0

    def close(self) -> None:
        self.closed = True
        for idle in self.idle.values():
            for conn in idle:
                conn.idle_since = 0.0
                conn.abort()
        self.idle.clear()
