"""The gateway's upstream HTTP/1.1 client against scripted raw-socket upstreams (in process, no subprocess).

What the live tests reach only through a whole gateway: connection reuse, what goes on the
wire, bodies delimited by length, by chunks or by the connection's close, a stream cut
mid-chunk, an oversized head, a large body read while reading is paused, the first-byte and
total timeouts, and a HEAD probe.
"""

from __future__ import annotations

import asyncio
import gzip
import time
import zlib
from collections.abc import Awaitable, Callable

import pytest

from polyfleet.gateway.errors import UpstreamTimeout, UpstreamUnavailable
from polyfleet.gateway.transport import Timeouts, Transport

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _head(reader: asyncio.StreamReader) -> bytes:
    """One request's head and its body (by content-length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


def _run(script: Script, test: Callable[[Transport, str], Awaitable[None]]) -> int:
    """Serve ``script`` on a loopback port, run ``test`` against it; the connections accepted."""
    accepted = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        try:
            await script(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport = Transport(connect_s=1.0, first_byte_s=1.0)
        await transport.start()
        try:
            await test(transport, f"http://127.0.0.1:{port}")
        finally:
            await transport.close()
            server.close()

    asyncio.run(main())
    return accepted


def test_keep_alive_reuses_one_connection_and_the_wire_format_is_plain():
    seen: list[bytes] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in (b'{"n": 1}', b'{"n": 22}'):
            seen.append(await _head(reader))
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                % (len(answer), answer)
            )
            await writer.drain()

    async def test(transport: Transport, url: str) -> None:
        first = await transport.post(url + "/v1/chat", b'{"a": 1}', {"authorization": "Bearer k"})
        assert (first.status, first.headers["content-type"], await first.read()) == (
            200,
            "application/json",
            b'{"n": 1}',
        )
        second = await transport.post(url + "/v1/chat", b"{}", {})
        assert await second.read() == b'{"n": 22}'

    assert _run(script, test) == 1  # the second request went on the first one's connection
    port = seen[0].split(b"host: 127.0.0.1:")[1].split(b"\r\n")[0]
    assert seen[0] == (
        b"POST /v1/chat HTTP/1.1\r\nhost: 127.0.0.1:" + port + b"\r\nauthorization: Bearer k\r\n"
        b"content-length: 8\r\naccept-encoding: identity\r\n\r\n" + b'{"a": 1}'
    )


def test_a_chunked_stream_cut_mid_way_is_an_error_after_the_bytes_that_came():
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\ndata:1\r\n")
        await writer.drain()
        writer.transport.abort()

    async def test(transport: Transport, url: str) -> None:
        response = await transport.post(url + "/s", b"{}", {})
        assert await response.first_chunk(0.5) == b"data:1"
        with pytest.raises(UpstreamUnavailable, match="broke off"):
            await response.next_chunk()

    _run(script, test)


def test_a_body_delimited_by_the_close_and_a_large_one_read_while_paused():
    big = b"x" * 1_000_000  # over the 256 KiB at which reading pauses until the reader takes

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + big)
        await writer.drain()

    async def test(transport: Transport, url: str) -> None:
        response = await transport.post(url, b"{}", {})
        assert await response.read() == big

    assert _run(script, test) == 1


def test_an_oversized_head_is_refused():
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n" + b"x-pad: " + b"p" * 70_000 + b"\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async def test(transport: Transport, url: str) -> None:
        with pytest.raises(UpstreamUnavailable, match="head over 65536 bytes"):
            await transport.post(url, b"{}", {})

    _run(script, test)


def test_first_byte_and_total_timeouts():
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await _head(reader)
        if b"/silent" in head:
            await asyncio.sleep(5)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        while True:  # an endless stream: a chunk every 20 ms
            writer.write(b"6\r\ndata:1\r\n")
            await writer.drain()
            await asyncio.sleep(0.02)

    async def test(transport: Transport, url: str) -> None:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout):
            await transport.post(url + "/silent", b"{}", {}, Timeouts(1.0, 0.1, 5.0))
        assert 0.1 <= time.monotonic() - started < 1.0
        started = time.monotonic()
        response = await transport.post(url + "/endless", b"{}", {}, Timeouts(1.0, 1.0, 0.2))
        with pytest.raises(UpstreamTimeout, match="stalled while streaming"):
            while await response.next_chunk():
                pass
        response.close()
        assert 0.2 <= time.monotonic() - started < 1.5
        # bytes waiting to be read do not extend total_s (a reader slower than the stream)
        response = await transport.post(url + "/endless", b"{}", {}, Timeouts(1.0, 1.0, 0.1))
        await asyncio.sleep(0.15)
        with pytest.raises(UpstreamTimeout):
            await response.next_chunk()
        response.close()

    _run(script, test)


def test_a_head_probe_gets_its_status_and_no_answer_is_none():
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HEAD /models ") and b"content-length" not in head
        writer.write(b"HTTP/1.1 204 No Content\r\ncontent-length: 10\r\n\r\n")
        await writer.drain()

    async def test(transport: Transport, url: str) -> None:
        assert await transport.probe("HEAD", url + "/models", {}, 1.0) == 204
        assert await transport.probe("GET", "http://127.0.0.1:9/models", {}, 0.5) is None  # refused

    _run(script, test)


def test_a_reused_connection_the_upstream_closed_is_retried_once_on_a_fresh_one():
    """An upstream that closes a kept-alive connection as the next request arrives on it (its
    idle timeout crossing our reuse) costs a new connection, not a failed attempt; a fresh
    connection that closes, or one that closes after part of an answer, is still an error."""
    answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await _head(reader)
        if b"/fresh-close" in head:
            writer.transport.abort()  # closes a new connection without a byte
            return
        writer.write(answer)  # no connection: close, so the client keeps it
        await writer.drain()
        head = await _head(reader)  # the next request on it: closed unanswered
        if b"/half" in head:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-le")
            await writer.drain()
        writer.transport.abort()

    async def test(transport: Transport, url: str) -> None:
        for _ in range(3):  # each reuse meets a closing connection and goes on a fresh one
            response = await transport.post(url + "/v1/chat", b"{}", {})
            assert (response.status, await response.read()) == (200, b"{}")
        with pytest.raises(UpstreamUnavailable, match="broke off"):  # part of an answer came
            await transport.post(url + "/half", b"{}", {})
        await (await transport.post(url + "/v1/chat", b"{}", {})).read()
        with pytest.raises(UpstreamUnavailable, match="broke off"):
            await transport.post(url + "/fresh-close", b"{}", {})  # reused, retried, fresh: fails

    assert _run(script, test) == 5  # 1 + a fresh one per reuse met closing (2, the last) + after /half


def test_gzip_and_deflate_answers_are_decoded_and_other_encodings_refused():
    """We ask for identity, but an upstream (or a proxy before it) may compress anyway: gzip and
    deflate (zlib-wrapped or raw) are decoded, chunked or not; an encoding we cannot decode
    is an error (the attempt fails over), never bytes passed on as if they were JSON."""
    body = b'{"choices": [{"message": {"content": "' + b"tok " * 500 + b'"}}]}'
    raw = zlib.compressobj(wbits=-15)
    answers = {
        b"/gzip": (b"gzip", gzip.compress(body)),
        b"/zlib": (b"deflate", zlib.compress(body)),
        b"/raw": (b"deflate", raw.compress(body) + raw.flush()),
        b"/br": (b"br", b"\x0b\x02\x80hello"),
        b"/bad": (b"gzip", b"not gzip at all"),
    }

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await _head(reader)
            path = head.split(b" ")[1]
            coding, data = answers[path.rstrip(b"c")]
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: " + coding)
            if path.endswith(b"c"):  # chunked, in two pieces
                half = len(data) // 2
                writer.write(b"\r\ntransfer-encoding: chunked\r\n\r\n")
                for piece in (data[:half], data[half:]):
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                writer.write(b"0\r\n\r\n")
            else:
                writer.write(b"\r\ncontent-length: %d\r\n\r\n%s" % (len(data), data))
            await writer.drain()

    async def test(transport: Transport, url: str) -> None:
        for path in ("/gzip", "/zlib", "/raw", "/gzipc", "/rawc"):
            response = await transport.post(url + path, b"{}", {})
            assert "content-encoding" not in response.headers
            assert await response.read() == body, path
        for path in ("/br", "/bad"):
            with pytest.raises(UpstreamUnavailable, match="content-encoding"):
                await (await transport.post(url + path, b"{}", {})).read()

    _run(script, test)


def test_an_interim_100_continue_and_chunk_trailers_are_read_past():
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):
            await _head(reader)
            writer.write(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\ntrailer: x-usage\r\n\r\n"
                b"e\r\ndata: [DONE]\n\n\r\n0\r\nx-usage: 5\r\n\r\n"
            )
            await writer.drain()

    async def test(transport: Transport, url: str) -> None:
        for _ in range(2):  # the second on the same connection: the first was read to its end
            response = await transport.post(url, b"{}", {})
            assert response.status == 200
            assert await response.first_chunk(0.5) == b"data: [DONE]\n\n"
            assert await response.next_chunk() == b""

    assert _run(script, test) == 1


def test_a_head_with_bare_lf_line_endings_is_read_as_http_client_and_httpx_read_it():
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _head(reader)
        writer.write(b"HTTP/1.1 200 OK\ncontent-type: application/json\ncontent-length: 2\n\n{}")
        await writer.drain()

    async def test(transport: Transport, url: str) -> None:
        response = await transport.post(url, b"{}", {})
        assert (response.status, response.headers["content-type"], await response.read()) == (
            200,
            "application/json",
            b"{}",
        )

    _run(script, test)
