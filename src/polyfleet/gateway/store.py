"""The ledger's store: one table of requests in SQLite (WAL mode) or PostgreSQL.

This module imports nothing from polyfleet, so that the ledger writer process
(``python store.py URL``, started by ``LedgerWriter``) starts in a blink and holds only a
database connection.  It reads batches of rows as JSON lines on stdin and writes each in
one transaction; at end of input it closes the database and exits 0.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any, NamedTuple

import orjson


class Record(NamedTuple):
    """One request as the ledger keeps it (never a secret: ``key`` is the key's name)."""

    ts: float
    day: str
    key: str
    model: str
    backend: str
    provider: str
    endpoint: str
    status: int
    latency_ms: float
    tokens_in: int
    tokens_out: int
    cost_usd: float
    attempts: int
    streamed: bool
    partial: bool = False  # the answer broke off (upstream cut, stall, timeout) or the client left
    estimated: bool = False  # tokens counted by the gateway: the upstream reported no usage


COLUMNS = Record._fields
_FLAGS = ("streamed", "partial", "estimated")  # bools in a Record, 0/1 INTEGER columns
_TYPES = {
    "ts": "DOUBLE PRECISION",
    "day": "TEXT",
    "key": "TEXT",
    "model": "TEXT",
    "backend": "TEXT",
    "provider": "TEXT",
    "endpoint": "TEXT",
    "status": "INTEGER",
    "latency_ms": "DOUBLE PRECISION",
    "tokens_in": "BIGINT",
    "tokens_out": "BIGINT",
    "cost_usd": "DOUBLE PRECISION",
    "attempts": "INTEGER",
    "streamed": "INTEGER",
    "partial": "INTEGER",
    "estimated": "INTEGER",
}
GROUPS = ("backend", "provider", "key", "model", "day")
_DDL_LOCK = 0x706F6C79666C6565  # "polyflee": the advisory lock key around CREATE TABLE in PostgreSQL


def _one_line(exc: BaseException) -> str:
    """A driver's message on one line (libpq's run over several, with tabs)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def sqlite_path(url: str) -> str:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs/x.db`` -> ``/abs/x.db``."""
    rest = url.removeprefix("sqlite://")
    return (rest[1:] if rest.startswith("/") else rest) or "polyfleet-usage.db"


class Ledger:
    """A ledger database opened from a URL: ``sqlite:///path`` or ``postgresql://…``."""

    def __init__(self, url: str):
        self.url = url
        self._conn: Any = None
        self._mark = "?"

    def open(self) -> Ledger:
        """Connect and create the table when missing."""
        if self.url.startswith("sqlite://"):
            path = sqlite_path(self.url)
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        else:
            try:
                import psycopg  # type: ignore[import-not-found]
            except ImportError as exc:
                raise RuntimeError(
                    "ledger: postgresql needs psycopg: pip install 'polyfleet[postgres]'"
                ) from exc
            try:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            except psycopg.Error as exc:
                raise RuntimeError(f"cannot connect: {_one_line(exc)}") from None
            self._mark = "%s"
            try:
                # Replicas sharing one database may start together: CREATE … IF NOT EXISTS races in
                # PostgreSQL (a unique violation in its catalog), so take a lock around it.
                with self._conn.transaction():
                    self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
                    self._create()
            except psycopg.Error as exc:
                self.close()
                raise RuntimeError(f"cannot create the requests table: {_one_line(exc)}") from None
            return self
        self._create()
        return self

    def _create(self) -> None:
        columns = ", ".join(f"{c} {_TYPES[c]}" for c in COLUMNS)
        self._conn.execute(f"CREATE TABLE IF NOT EXISTS requests ({columns})")
        self._conn.execute("CREATE INDEX IF NOT EXISTS requests_day ON requests (day)")
        # a ledger written by an older gateway: add the columns it lacks (0 in its old rows)
        if self._mark == "?":
            have = {row[1] for row in self._conn.execute("PRAGMA table_info(requests)")}
        else:
            have = {
                row[0]
                for row in self._conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = 'requests'"
                )
            }
        for column in COLUMNS:
            if column not in have:
                self._conn.execute(f"ALTER TABLE requests ADD COLUMN {column} {_TYPES[column]} DEFAULT 0")

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def write(self, records: list[Record]) -> None:
        """Insert ``records`` in one transaction."""
        marks = ", ".join([self._mark] * len(COLUMNS))
        sql = f"INSERT INTO requests ({', '.join(COLUMNS)}) VALUES ({marks})"
        # the flags are bools in a Record but INTEGER columns: SQLite stores True as 1 by
        # itself, PostgreSQL refuses a boolean for an integer, so send 0/1 to both.
        flags = len(_FLAGS)
        rows = [(*record[:-flags], *(int(f) for f in record[-flags:])) for record in records]
        if self._mark == "?":
            with self._conn:
                self._conn.execute("BEGIN")
                self._conn.executemany(sql, rows)
        else:
            with self._conn.transaction(), self._conn.cursor() as cur:
                cur.executemany(sql, rows)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read query (``?`` placeholders are adapted to the driver)."""
        cur = self._conn.execute(sql.replace("?", self._mark), params)
        return list(cur.fetchall())

    def spend_on(self, day: str) -> dict[str, float]:
        """USD spent per key name on ``day`` (``YYYY-MM-DD`` UTC), to resume budgets after a restart."""
        rows = self.query("SELECT key, SUM(cost_usd) FROM requests WHERE day = ? GROUP BY key", (day,))
        return {key: float(total or 0) for key, total in rows}


def main() -> None:
    """The writer process: JSON-lines batches on stdin -> rows; "ready" on stdout once open."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway decides when we stop: at end of input
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.nice(10)  # bookkeeping: let the gateway have the CPU first
    try:
        ledger = Ledger(sys.argv[1]).open()
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        for line in sys.stdin.buffer:
            if line.strip():
                ledger.write([Record(*row) for row in orjson.loads(line)])
        ledger.close()
    except Exception as exc:  # the gateway reports our last line of stderr: make it the whole error
        kind = "" if isinstance(exc, RuntimeError) else f"{type(exc).__module__}.{type(exc).__qualname__}: "
        sys.stderr.write(f"{kind}{_one_line(exc)}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
