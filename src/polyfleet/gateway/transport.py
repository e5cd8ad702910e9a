"""Upstream HTTP/1.1: pooled keep-alive connections on the event loop, answers parsed by httptools.

A request is one write (head and body together) on a pooled connection; the answer is
parsed by ``httptools`` (llhttp, the parser uvicorn serves with) as it arrives.  This is
the client's whole job in a gateway, and it costs about 0.12 ms less CPU per request than
``aiohttp.ClientSession`` (cookies, redirects, auth, proxies, middlewares, payload
registry, three timer objects per request), measured side by side in one run: 0.30
instead of 0.42 ms per JSON request through the same uvicorn pass-through at
concurrency 16 (docs/gateway.md, "Benchmark").  At concurrency 16 on two cores the
gateway is CPU-bound, so requests/s follow.

Timeouts (``Timeouts``): ``connect_s`` for DNS and the TCP (and TLS) handshake;
``first_byte_s`` for the wait for the status line and for each read of a whole body;
``inter_chunk_s`` (``UpstreamResponse.first_chunk``) between a stream's chunks;
``total_s`` for the whole exchange, body included.  A connection is reused only after an
answer read to its end that lets it live (``keep-alive``); one given up mid-answer is
aborted, so the upstream sees its client leave.  An idle connection is kept at most
``_KEEPALIVE_S`` (under the 5 s idle timeout of uvicorn, Node and Apache), and a request on
a reused connection that the upstream closed before any byte of an answer came (it
closed the idle connection as we sent) is sent once more on a fresh connection, as Go's
``net/http`` and urllib3 do for an idle connection the server closed.  We ask for
``accept-encoding: identity``; an answer in ``gzip`` or ``deflate`` anyway is decoded as it
arrives, any other encoding is an error.  Every failure before a complete answer
is an ``UpstreamError`` subclass, so the failover loop catches one class.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

from polyfleet.gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable

_MAX_HEAD_BYTES = 65536  # an upstream's status line and headers (aiohttp's limit is 8190 a line)
_PAUSE_BYTES = 262144  # stop reading a stream the client is slow to take past this much buffered
# an idle pooled connection older than this is closed, not reused: under the 5 s idle timeout of
# uvicorn (vLLM, SGLang), Node and Apache, so we rarely send on a connection the upstream is closing
_KEEPALIVE_S = 4.0
_MAX_IDLE = 256  # idle connections kept per upstream host


class _Inflate:
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


@dataclass(frozen=True, slots=True)
class Timeouts:
    """An exchange's limits in seconds (``None``: none)."""

    connect_s: float | None
    first_byte_s: float | None
    total_s: float | None = None


@dataclass(frozen=True, slots=True)
class _Target:
    """A URL split once: where to connect, the ``host`` header and the request target."""

    key: tuple[str, int, bool]  # host, port, TLS
    authority: str
    target: str


class _Connection(asyncio.Protocol):
    """One keep-alive connection to an upstream; it parses one answer at a time."""

    def __init__(self, pool: _Pool, key: tuple[str, int, bool]):
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
        self.inflate: _Inflate | None = None  # the answer's content-encoding, decoded
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
            self.inflate = _Inflate(coding)
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


class _Pool:
    """Idle keep-alive connections per (host, port, TLS); the newest is reused first."""

    def __init__(self, ssl_context: ssl.SSLContext):
        self.idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self.ssl_context = ssl_context
        self.closed = False

    async def connect(
        self, key: tuple[str, int, bool], timeout_s: float | None, fresh: bool = False
    ) -> _Connection:
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
            lambda: _Connection(self, key),
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

    def release(self, conn: _Connection) -> None:
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

    def forget(self, conn: _Connection) -> None:
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


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(True)


class UpstreamResponse:
    """An upstream answer whose headers have arrived; the body is read or streamed once."""

    __slots__ = ("_conn", "_deadline", "_done", "_pool", "_read_timeout_s", "headers", "status")

    def __init__(self, conn: _Connection, pool: _Pool, read_timeout_s: float | None, deadline: float | None):
        self._conn = conn
        self._pool = pool
        self._read_timeout_s = read_timeout_s
        self._deadline = deadline
        self._done = False  # the connection went back to the pool or was dropped
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers  # names in lower case

    async def _wait(self) -> bool:
        """Until the connection has news (False) or the read or total limit is reached (True)."""
        conn = self._conn
        loop = asyncio.get_running_loop()
        timeout_s = self._read_timeout_s
        deadline = None if timeout_s is None else loop.time() + timeout_s
        if self._deadline is not None and (deadline is None or self._deadline < deadline):
            deadline = self._deadline
        waiter: asyncio.Future[bool] = loop.create_future()
        conn.waiter = waiter
        timer = loop.call_at(deadline, _expire, waiter) if deadline is not None else None
        try:
            return await waiter
        finally:
            conn.waiter = None
            if timer is not None:
                timer.cancel()

    async def read(self) -> bytes:
        """The whole body (a failure here is still an attempt failure)."""
        conn = self._conn
        parts: list[bytes] = []
        try:
            while True:
                if conn.chunks:
                    parts.append(conn.take())  # taken as it comes: a large body never pauses reading
                if conn.complete:
                    break
                if conn.error is not None:
                    raise conn.error
                if self._overdue() or (
                    await self._wait() and not (conn.chunks or conn.complete or conn.error)
                ):
                    raise UpstreamTimeout("upstream stalled while answering")
        finally:
            self._finish()
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _overdue(self) -> bool:
        """Past ``total_s``: checked on every read, so an answer that keeps coming still ends there."""
        return self._deadline is not None and asyncio.get_running_loop().time() >= self._deadline

    async def next_chunk(self) -> bytes:
        """The stream's next bytes as they arrive (all that is buffered), or ``b""`` at its end."""
        conn = self._conn
        if self._overdue() and not conn.complete:
            raise UpstreamTimeout("upstream stalled while streaming")
        while not conn.chunks:
            if conn.complete:
                self._finish()
                return b""
            if conn.error is not None:
                raise conn.error
            if await self._wait() and not (conn.chunks or conn.complete or conn.error):
                raise UpstreamTimeout("upstream stalled while streaming")
        return conn.take()

    @property
    def deadline(self) -> float | None:
        """When ``total_s`` ends, in the event loop's time (None: no limit)."""
        return self._deadline

    def at_eof(self) -> bool:
        """Whether the stream has ended and every byte of it was read (no read needed to know)."""
        return self._conn.complete and not self._conn.chunks

    async def first_chunk(self, inter_chunk_s: float | None = None) -> bytes:
        """Wait for a stream's first bytes (until then the attempt may still fail over).

        From then on, each later chunk must come within ``inter_chunk_s`` (it was the
        first-byte timeout until now).
        """
        try:
            first = await self.next_chunk()
        except BaseException:
            self.close()
            raise
        if inter_chunk_s is not None:
            self._read_timeout_s = inter_chunk_s
        return first

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._pool.release(self._conn)

    def close(self) -> None:
        """Drop the connection (mid-stream) or hand it back to the pool (after the whole answer)."""
        if not self._done:
            self._done = True
            if self._conn.complete and not self._conn.chunks:
                self._pool.release(self._conn)
            else:
                self._conn.abort()


class Transport:
    """Sends requests to backends over pooled keep-alive connections (opened on ``start``)."""

    def __init__(self, connect_s: float, first_byte_s: float):
        self._timeouts = Timeouts(connect_s, first_byte_s)
        self._pool: _Pool | None = None
        self._targets: dict[str, _Target] = {}

    async def start(self) -> None:
        """Make the connection pool (in the serving loop)."""
        self._pool = _Pool(ssl.create_default_context())

    async def close(self) -> None:
        """Close every pooled connection."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise UpstreamUnavailable(f"cannot reach upstream: not an http(s) URL: {url}")
            tls = parts.scheme == "https"
            port = parts.port or (443 if tls else 80)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            target = _Target((parts.hostname, port, tls), parts.netloc.rpartition("@")[2], path)
            if len(self._targets) > 4096:  # URLs come from the routes file: a handful
                self._targets.clear()
            self._targets[url] = target
        return target

    async def request(
        self,
        method: str,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        timeouts: Timeouts | None = None,
    ) -> UpstreamResponse:
        """Send one request; return once the status line and headers are in.

        ``timeouts`` (a backend's own) replace the transport's: ``total_s`` bounds the
        whole exchange, body included; ``first_byte_s`` the wait for the first byte.
        """
        assert self._pool is not None, "Transport.start() was not awaited"
        limits = timeouts or self._timeouts
        loop = asyncio.get_running_loop()
        deadline = None if limits.total_s is None else loop.time() + limits.total_s
        target = self._target(url)
        lines = [f"{method} {target.target} HTTP/1.1\r\nhost: {target.authority}\r\n"]
        for name, value in headers.items():
            if "\n" in value or "\r" in value:
                raise UpstreamUnavailable(f"cannot reach upstream: header {name} holds a line break")
            lines.append(f"{name}: {value}\r\n")
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"content-length: {len(body)}\r\n")
        lines.append("accept-encoding: identity\r\n\r\n")
        head = "".join(lines).encode("latin-1")
        data = head + body if body else head
        connect_s = limits.connect_s
        if limits.total_s is not None and (connect_s is None or limits.total_s < connect_s):
            connect_s = limits.total_s
        conn = await self._pool.connect(target.key, connect_s)
        try:
            return await self._exchange(conn, data, method, limits, deadline)
        except UpstreamUnavailable:
            if not conn.reused or conn.received:
                raise
        # the upstream closed a kept-alive connection as we reused it, before a byte of an
        # answer: it most likely closed it idle and never read the request (see the module doc)
        conn = await self._pool.connect(target.key, connect_s, fresh=True)
        return await self._exchange(conn, data, method, limits, deadline)

    async def _exchange(
        self, conn: _Connection, data: bytes, method: str, limits: Timeouts, deadline: float | None
    ) -> UpstreamResponse:
        """Write the request on ``conn`` and wait for the answer's head."""
        assert self._pool is not None
        conn.start(head_only=method == "HEAD")
        response = UpstreamResponse(conn, self._pool, limits.first_byte_s, deadline)
        try:
            assert conn.transport is not None
            conn.transport.write(data)
            while not conn.head_done:
                if conn.error is not None:
                    raise conn.error
                if await response._wait() and not (conn.head_done or conn.error):
                    raise UpstreamTimeout("no answer from upstream in time")
        except BaseException:
            response._done = True
            conn.abort()
            raise
        response.status, response.headers = conn.status, conn.headers
        return response

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        timeouts: Timeouts | None = None,
    ) -> UpstreamResponse:
        """POST ``body``; return once the status line and headers are in."""
        return await self.request("POST", url, body, headers, timeouts)

    async def probe(self, method: str, url: str, headers: Mapping[str, str], timeout_s: float) -> int | None:
        """One health-check request: its status, or None when there was no answer."""
        try:
            async with asyncio.timeout(timeout_s):
                response = await self.request(
                    method, url, b"", headers, Timeouts(timeout_s, timeout_s, timeout_s)
                )
                await response.read()
                return response.status
        except (TimeoutError, UpstreamError):
            return None
