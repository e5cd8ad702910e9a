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
``connections._KEEPALIVE_S`` (under the 5 s idle timeout of uvicorn, Node and Apache), and a request on
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
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from polyfleet.gateway.connections import Connection, Pool
from polyfleet.gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable


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


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(True)


class UpstreamResponse:
    """An upstream answer whose headers have arrived; the body is read or streamed once."""

    __slots__ = ("_conn", "_deadline", "_done", "_pool", "_read_timeout_s", "headers", "status")

    def __init__(self, conn: Connection, pool: Pool, read_timeout_s: float | None, deadline: float | None):
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
        self._pool: Pool | None = None
        self._targets: dict[str, _Target] = {}

    async def start(self) -> None:
        """Make the connection pool (in the serving loop)."""
        self._pool = Pool(ssl.create_default_context())

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
        self, conn: Connection, data: bytes, method: str, limits: Timeouts, deadline: float | None
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
