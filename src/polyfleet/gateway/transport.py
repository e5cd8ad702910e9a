"""Upstream HTTP: one pooled keep-alive aiohttp session, foreign errors translated at the boundary.

Every aiohttp or socket failure before a complete answer becomes an ``UpstreamError``
subclass, so the failover loop catches one class.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from polyfleet.gateway.errors import UpstreamTimeout, UpstreamUnavailable

_FAILURES = (aiohttp.ClientError, OSError)


class UpstreamResponse:
    """An upstream answer whose headers have arrived; the body is read or streamed once."""

    def __init__(self, response: aiohttp.ClientResponse):
        self._response = response
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        """The whole body (a failure here is still an attempt failure)."""
        try:
            return await self._response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout("upstream stalled while answering") from exc
        except _FAILURES as exc:
            raise UpstreamUnavailable(f"upstream broke off its answer: {type(exc).__name__}") from exc
        finally:
            self._response.release()

    async def next_chunk(self) -> bytes:
        """The stream's next bytes as they arrive (all that is buffered), or ``b""`` at its end."""
        try:
            return await self._response.content.readany()
        except TimeoutError as exc:
            raise UpstreamTimeout("upstream stalled while streaming") from exc
        except _FAILURES as exc:
            raise UpstreamUnavailable(f"upstream broke off its stream: {type(exc).__name__}") from exc

    def at_eof(self) -> bool:
        """Whether the stream has ended and every byte of it was read (no read needed to know)."""
        return self._response.content.at_eof()

    async def first_chunk(self, inter_chunk_s: float | None = None) -> bytes:
        """Wait for a stream's first bytes (until then the attempt may still fail over).

        From then on, each later chunk must come within ``inter_chunk_s`` (the socket read
        timeout of this response's connection, which was the first-byte timeout until now).
        """
        try:
            first = await self.next_chunk()
        except BaseException:
            self.close()
            raise
        connection = self._response.connection
        if inter_chunk_s is not None and connection is not None and connection.protocol is not None:
            connection.protocol.read_timeout = inter_chunk_s
            connection.protocol.start_timeout()  # re-armed from now with the new limit
        return first

    def close(self) -> None:
        """Drop the connection (mid-stream) or hand it back to the pool (after ``read``)."""
        self._response.close()


class Transport:
    """POSTs to backends over one pooled session (created on ``start``, in the serving loop)."""

    def __init__(self, connect_s: float, first_byte_s: float):
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_s, sock_read=first_byte_s)
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the connection pool."""
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=False,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        """Close every pooled connection."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> UpstreamResponse:
        """Send ``body``; return once the status line and headers are in.

        ``timeout`` (a backend's own) replaces the session's: ``total`` bounds the whole
        exchange, body included; ``sock_read`` the wait for the first byte.
        """
        assert self._session is not None, "Transport.start() was not awaited"
        try:
            if timeout is None:
                response = await self._session.post(url, data=body, headers=headers)
            else:
                response = await self._session.post(url, data=body, headers=headers, timeout=timeout)
        except TimeoutError as exc:
            raise UpstreamTimeout("no answer from upstream in time") from exc
        except _FAILURES as exc:
            raise UpstreamUnavailable(f"cannot reach upstream: {type(exc).__name__}") from exc
        return UpstreamResponse(response)

    async def probe(self, method: str, url: str, headers: Mapping[str, str], timeout_s: float) -> int | None:
        """One health-check request: its status, or None when there was no answer."""
        assert self._session is not None, "Transport.start() was not awaited"
        try:
            async with self._session.request(
                method, url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                await response.read()
                return response.status
        except (TimeoutError, *_FAILURES):
            return None
