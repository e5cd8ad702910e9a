"""The usage ledger: one row per request, written off the request path, in another process.

``Ledger`` (in ``store``) is the synchronous store: SQLite in WAL mode, or PostgreSQL.
``LedgerWriter`` queues records on the event loop and every ``interval_s`` sends the batch
as one JSON line to a writer process (``store.py``), which inserts it in one transaction.
The gateway's event loop only encodes the batch; the database work, and the GIL it
would hold, are elsewhere.  On ``stop`` the last batch is sent and the writer is waited for,
so nothing is lost at shutdown; if the gateway dies, the writer still writes what it got.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson

from polyfleet.gateway import store
from polyfleet.gateway.store import GROUPS, Ledger, Record, sqlite_path

__all__ = ["GROUPS", "Ledger", "LedgerWriter", "Record", "adherence", "sqlite_path", "summarise", "today"]


def summarise(ledger: Ledger, by: str) -> list[dict[str, Any]]:
    """Totals grouped ``by`` one of ``GROUPS``; per model also the observed traffic as plan inputs.

    ``requests_per_s`` is requests over the span between the first and last request,
    ``input_tokens``/``output_tokens`` the mean per successful request: the fields of an
    inference workload in a spec.
    """
    if by not in GROUPS:
        raise ValueError(f"by must be one of {GROUPS}")
    rows = ledger.query(
        f"SELECT {by}, COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), SUM(tokens_in),"
        " SUM(tokens_out), SUM(cost_usd), AVG(latency_ms), MIN(ts), MAX(ts),"
        " SUM(CASE WHEN status < 400 THEN 1 ELSE 0 END)"
        f" FROM requests GROUP BY {by} ORDER BY {by}"
    )
    out = []
    for group, n, errors, t_in, t_out, cost, latency, first, last, ok in rows:
        # PostgreSQL sums BIGINT columns as NUMERIC (Decimal): make every count a plain int.
        n, ok, t_in, t_out = int(n), int(ok or 0), int(t_in or 0), int(t_out or 0)
        row: dict[str, Any] = {
            by: group,
            "requests": n,
            "errors": int(errors or 0),
            "tokens_in": t_in,
            "tokens_out": t_out,
            "cost_usd": round(float(cost or 0), 6),
            "mean_latency_ms": round(float(latency or 0), 2),
        }
        if by == "model":
            span = float(last - first) if n > 1 else 0.0
            row["requests_per_s"] = round(n / span, 4) if span > 0 else None
            row["input_tokens"] = round(t_in / ok) if ok else 0
            row["output_tokens"] = round(t_out / ok) if ok else 0
        out.append(row)
    return out


def adherence(ledger: Ledger, routes: Any) -> list[dict[str, Any]]:
    """How traffic followed the plan, per model of ``routes`` whose backends have roles.

    One row per backend: its ``role``, the plan's ``planned_share`` of the model's traffic
    and the ``share`` it took (successful requests), ``planned_rps`` and the mean ``rps``
    it served over the model's span (first to last request), for committed backends the
    ``idle_share`` of their planned rate left unused, and ``cost_usd``.  Then one row
    per model (backend ``*``): committed capacity left idle over all committed backends,
    and what overflow and fallback backends cost (``overflow_usd``, ``fallback_usd``).
    """
    out: list[dict[str, Any]] = []
    for route in routes.models:
        if not any(b.role for b in route.backends):
            continue
        rows = ledger.query(
            "SELECT backend, COUNT(*), SUM(cost_usd), MIN(ts), MAX(ts) FROM requests"
            " WHERE model = ? AND status < 400 GROUP BY backend",
            (route.name,),
        )
        seen = {name: (int(n), float(cost or 0)) for name, n, cost, _, _ in rows}
        total = sum(n for n, _ in seen.values())
        span = float(max(r[4] for r in rows) - min(r[3] for r in rows)) if rows else 0.0
        spend = {"committed": 0.0, "overflow": 0.0, "fallback": 0.0}
        planned_committed = served_committed = 0.0
        for b in route.backends:
            n, cost = seen.get(b.name, (0, 0.0))
            rps = n / span if span > 0 else None
            row: dict[str, Any] = {
                "model": route.name,
                "backend": b.name,
                "role": b.role,
                "requests": n,
                "planned_share": b.planned_share,
                "share": round(n / total, 4) if total else None,
                "planned_rps": b.planned_requests_per_s,
                "rps": None if rps is None else round(rps, 4),
                "idle_share": None,
                "cost_usd": round(cost, 6),
            }
            if b.role == "committed" and b.planned_requests_per_s and rps is not None:
                row["idle_share"] = round(max(0.0, 1.0 - rps / b.planned_requests_per_s), 4)
                planned_committed += b.planned_requests_per_s
                served_committed += min(rps, b.planned_requests_per_s)
            spend[b.role or "committed"] += cost
            out.append(row)
        idle = 1.0 - served_committed / planned_committed if planned_committed else None
        out.append(
            {
                "model": route.name,
                "backend": "*",
                "role": None,
                "requests": total,
                "idle_share": None if idle is None else round(idle, 4),
                "overflow_usd": round(spend["overflow"], 6),
                "fallback_usd": round(spend["fallback"], 6),
                "cost_usd": round(sum(spend.values()), 6),
            }
        )
    return out


def shown(url: str) -> str:
    """``url`` fit for a log line: a PostgreSQL password in it becomes ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return url.split("@")[-1] if "@" in url else url


_day: tuple[int, str] = (-1, "")


def today() -> str:
    """The UTC day a request made now belongs to (formatted once a day, not per request)."""
    global _day
    number = int(time.time() // 86400)
    if number != _day[0]:
        _day = (number, time.strftime("%Y-%m-%d", time.gmtime(number * 86400)))
    return _day[1]


class LedgerWriter:
    """Queues records on the event loop; a writer process stores them in batches."""

    def __init__(self, url: str, *, interval_s: float = 0.25, start_timeout_s: float = 30.0):
        self.url = url
        self.interval_s = interval_s
        self.start_timeout_s = start_timeout_s
        self._pending: list[Record] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self.sent = 0

    def add(self, record: Record) -> None:
        """Queue one record (no I/O on the request path)."""
        self._pending.append(record)

    async def start(self) -> None:
        """Start the writer process and wait until it has opened the database."""
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",  # not the script's folder on sys.path: gateway/types.py would shadow the stdlib
            store.__file__,
            self.url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert self._proc.stdout is not None
        try:
            ready = await asyncio.wait_for(self._proc.stdout.readline(), self.start_timeout_s)
        except TimeoutError:
            ready = b""
        if ready.strip() != b"ready":
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            _, err = await self._proc.communicate()
            lines = err.decode(errors="replace").strip().splitlines() or ["no answer"]
            raise RuntimeError(f"ledger {shown(self.url)}: writer did not start: {lines[-1]}")
        self._task = asyncio.create_task(self._run(), name="polyfleet-ledger")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()

    async def flush(self) -> None:
        """Send everything queued so far to the writer."""
        if not self._pending or self._proc is None or self._proc.stdin is None:
            return
        records, self._pending = self._pending, []
        self._proc.stdin.write(orjson.dumps(records, default=tuple) + b"\n")
        await self._proc.stdin.drain()
        self.sent += len(records)

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Send what is left, close the writer's input and wait for it to finish writing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._proc is None:
            return
        await self.flush()
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            _, err = await asyncio.wait_for(self._proc.communicate(), timeout_s)
        except TimeoutError:
            self._proc.kill()
            raise RuntimeError(f"ledger {shown(self.url)}: writer did not finish in {timeout_s} s") from None
        if self._proc.returncode != 0:
            lines = err.decode(errors="replace").strip().splitlines() or ["?"]
            raise RuntimeError(f"ledger {shown(self.url)}: writer failed: {lines[-1]}")
        self._proc = None
