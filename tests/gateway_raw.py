"""A raw-socket upstream for the gateway tests: it writes whatever bytes a test scripts.

``RawUpstream(answer)`` listens on a free 127.0.0.1 port and serves each connection in a
thread: it reads a request (head and ``content-length`` body), calls ``answer(request)``
and writes what it returns; ``answer`` may return ``None`` to close the connection
unanswered, or a list of byte strings written with ``pause_s`` between them (a float in
the list: sleep that long there, the connection held open).  After an
answer the connection is kept for the next request unless ``answer`` set
``request.close``.  What ``gateway_upstream.py`` (a real HTTP server) cannot do: compress
against the client's wishes, speak HTTP/1.0, close a kept-alive connection as the next
request arrives, send an interim 100 or trailers.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class RawRequest:
    """One request as received, and what the script decided about its connection."""

    head: bytes
    body: bytes
    connection: int  # the connection's number (0 for the first accepted)
    index: int  # the request's number on its connection (0 for the first)
    close: bool = False  # close the connection after the answer
    pause_s: float = 0.0  # between the parts of a list answer

    @property
    def path(self) -> str:
        return self.head.split(b" ", 2)[1].decode()


@dataclass
class RawUpstream:
    """A threaded raw-socket HTTP/1.1 upstream; ``close()`` stops it."""

    answer: Callable[[RawRequest], bytes | list[bytes | float] | None]
    requests: list[RawRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._conns: list[socket.socket] = []
        self._stop = False
        self._stopped = threading.Event()  # set by close(): ends a script's sleeps
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        number = 0
        while not self._stop:
            try:
                sock, _ = self._server.accept()
            except OSError:
                return
            self._conns.append(sock)
            threading.Thread(target=self._serve, args=(sock, number), daemon=True).start()
            number += 1

    def _serve(self, sock: socket.socket, number: int) -> None:
        with contextlib.suppress(OSError), sock:
            buffered = b""
            index = 0
            while True:
                while b"\r\n\r\n" not in buffered:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffered += data
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(buffered) < length:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffered += data
                request = RawRequest(head, buffered[:length], number, index)
                buffered = buffered[length:]
                self.requests.append(request)
                index += 1
                reply = self.answer(request)
                if reply is None:
                    return
                for part in [reply] if isinstance(reply, bytes) else reply:
                    if isinstance(part, float):
                        self._stopped.wait(part)
                        continue
                    sock.sendall(part)
                    if request.pause_s:
                        time.sleep(request.pause_s)
                if request.close:
                    return

    def close(self) -> None:
        self._stop = True
        self._stopped.set()
        self._server.close()
        for sock in self._conns:
            with contextlib.suppress(OSError):
                sock.close()


def http(status: int, body: bytes, *headers: str, version: str = "1.1") -> bytes:
    """A whole answer with ``content-length`` (unless a header says ``transfer-encoding``)."""
    lines = [f"HTTP/{version} {status} X", *headers]
    if not any(h.lower().startswith(("transfer-encoding", "content-length")) for h in headers):
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
