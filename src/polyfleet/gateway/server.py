"""uvicorn, with limits on what one client may hold, and a ledger flush on a second Ctrl-C.

uvicorn's httptools protocol accepts request heads of any size, never times out a
connection that has not finished its headers or body (it only times out a keep-alive
connection idle *after* a response), and by default takes any number of connections.  So
``GuardedHttpTools`` adds, per the routes file's ``limits``:

- ``max_header_bytes``: a request line plus headers past it gets ``431`` and the
  connection is closed (a pipelined request's head, read while the request before it is
  still answered, too: the connection is dropped);
- ``header_timeout_s``: from the connection's opening (or the first byte of a later
  request on it) the head must be complete within it, else ``408`` and close;
- ``body_timeout_s``: from the end of the head the body must be complete within it, else
  ``408`` and close (the request's handler sees the client gone);
- ``keepalive_timeout_s``: uvicorn's own idle timeout after a response;
- ``max_connections``: a connection beyond it gets ``503`` with a JSON error and is closed,
  once its request head is in (or at ``header_timeout_s``).

``GatewayServer`` runs the app's lifespan shutdown even when a second Ctrl-C makes
uvicorn skip it, so the ledger is flushed either way.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from polyfleet.gateway.app import ABORT_HOOK, DISCONNECT_HOOK, client_gone
from polyfleet.gateway.config import ClientLimits

_REASONS = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}


def _error_response(status: int, message: str, code: str) -> bytes:
    body = orjson.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    )
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class CoalescedWrites:
    """A connection's transport whose writes within one event-loop turn go out as one.

    uvicorn writes a response's head and each body part separately, so a JSON answer, or
    a stream's head and first event, cost two ``send()`` calls and two TCP segments (a
    loopback ``send()`` costs about 20 us on the development machine, as much as the
    Python work of a small response).  Writes are gathered and handed to the real
    transport once, at the end of the turn (``call_soon``): nothing waits longer than the
    handlers already ready to run.  ``close`` sends what is gathered first; ``abort``
    drops it.
    """

    __slots__ = ("_loop", "_parts", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._parts:
            self._loop.call_soon(self._flush)
        self._parts.append(data)

    def _flush(self) -> None:
        parts = self._parts
        if not parts:
            return
        self._parts = []
        if not self._transport.is_closing():
            self._transport.write(parts[0] if len(parts) == 1 else b"".join(parts))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._parts = []
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._parts))

    def __getattr__(self, name: str) -> Any:  # everything else: the real transport's
        return getattr(self._transport, name)


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with head size, head/body timeouts and a connection cap."""

    limits = ClientLimits()

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._in_head = False
        self._head_bytes = 0
        # bytes after a request's end while it is still answered: a pipelined request's head
        # (uvicorn parses it as it comes), None when no such count runs
        self._pipelined: int | None = None
        # one loop timer per connection, re-armed lazily: a request moves ``_deadline`` (and
        # ``_waiting_for``) instead of creating and cancelling two timers
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._deadline = 0.0
        self._waiting_for: str | None = None  # "head", "body" or None (no timeout running)
        self._over_capacity = False
        self._refused = False  # an error went out and the connection is closing: ignore the rest

    # --- connection ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescedWrites(transport, self.loop))  # type: ignore[arg-type]
        self._over_capacity = len(self.connections) > self.limits.max_connections
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            client_gone(cycle.scope)  # the request's handler stops at once, its upstream request dropped
        super().connection_lost(exc)

    def _refuse(self, status: int, message: str, code: str) -> None:
        self._cancel_timer()
        self._in_head = False
        if self.cycle is not None and not self.cycle.response_complete:
            return self._drop()  # the app answers this request (it sees the client gone)
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(_error_response(status, message, code))
            self.transport.close()

    def _cancel_timer(self) -> None:
        self._waiting_for = None  # the loop timer stays; when it fires it finds nothing to do

    def _arm(self, waiting_for: str, timeout_s: float) -> None:
        self._waiting_for = waiting_for
        self._deadline = deadline = self.loop.time() + timeout_s
        if self._timer is None or self._timer_at > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._waiting_for is None:
            return
        if self.loop.time() < self._deadline:  # moved later since armed: wait for the new deadline
            self._timer_at = self._deadline
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
            return
        waiting_for, self._waiting_for = self._waiting_for, None
        if waiting_for == "head":
            self._head_timed_out()
        else:
            self._body_timed_out()

    def _start_head(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        self._pipelined = None
        self._arm("head", self.limits.header_timeout_s)

    def _head_timed_out(self) -> None:
        if self._over_capacity:
            self._refuse(
                503,
                f"the gateway holds its maximum of {self.limits.max_connections} connections",
                "too_many_connections",
            )
        else:
            self._refuse(
                408,
                f"request line and headers not complete within {self.limits.header_timeout_s:g} s",
                "header_timeout",
            )

    def _body_timed_out(self) -> None:
        if self.cycle is not None and not self.cycle.response_started:
            # the request's handler is waiting for the body: answer 408 and hang up; it sees a disconnect
            self._refused = True
            self.transport.write(
                _error_response(
                    408, f"request body not complete within {self.limits.body_timeout_s:g} s", "body_timeout"
                )
            )
        self._drop()

    def _drop(self) -> None:
        self._refused = True
        if not self.transport.is_closing():
            self.transport.close()

    # --- parsing ---------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        idle = self.cycle is None or self.cycle.response_complete
        if not self._in_head and idle and self._waiting_for is None:
            self._start_head()  # the first bytes of a later request on a kept-alive connection
        if self._in_head:
            self._head_bytes += len(data)
        elif self._pipelined is not None:
            self._pipelined += len(data)
        super().data_received(data)
        limit = self.limits.max_header_bytes
        if (self._in_head and self._head_bytes > limit) or (self._pipelined or 0) > limit:
            self._too_large()  # a pipelined head too: the connection is dropped, its answer cut

    def _too_large(self) -> None:
        self._refuse(
            431,
            f"request line and headers over {self.limits.max_header_bytes} bytes",
            "request_header_fields_too_large",
        )

    def on_headers_complete(self) -> None:
        head = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if head > self.limits.max_header_bytes:
            self._too_large()
            return
        if self._over_capacity:
            self._refuse(
                503,
                f"the gateway holds its maximum of {self.limits.max_connections} connections",
                "too_many_connections",
            )
            return
        self._in_head = False
        self._pipelined = None
        self._arm("body", self.limits.body_timeout_s)
        self.scope[DISCONNECT_HOOK] = ()  # tells the app that this protocol reports disconnects
        self.scope[ABORT_HOOK] = self.transport.abort
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._cancel_timer()
        self._pipelined = 0  # what comes before this request's answer ends is the next one's head
        super().on_message_complete()


def guarded_protocol(limits: ClientLimits) -> type[GuardedHttpTools]:
    """``GuardedHttpTools`` with ``limits``, for ``uvicorn.Config(http=…)``."""
    return type("GuardedHttpTools", (GuardedHttpTools,), {"limits": limits})


class GatewayServer(uvicorn.Server):
    """uvicorn's server; after a forced exit (second Ctrl-C) the app is still shut down (ledger flushed)."""

    def __init__(self, config: uvicorn.Config, app: Any):
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: Any = None) -> None:
        await super().shutdown(sockets)
        if self.force_exit:  # uvicorn skipped the lifespan shutdown: flush the ledger ourselves
            # requests still in flight are cut now; their handlers record them (partial) as they end
            running = [task for task in self.server_state.tasks if not task.done()]
            for task in running:
                task.cancel()
            if running:
                await asyncio.wait(running, timeout=5)
            await self.app.shutdown()
