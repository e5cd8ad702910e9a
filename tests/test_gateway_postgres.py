"""The usage ledger in PostgreSQL: a throwaway cluster, the writer, `polyfleet usage` and a live gateway.

Skipped when ``initdb``/``pg_ctl`` or psycopg are missing, except under
``POLYFLEET_REQUIRE_SERVICES=1`` (``.ci/run``), where they fail.  As root (initdb refuses
root) the cluster runs as the ``postgres`` or ``nobody`` user via ``runuser``, which needs
no password; without either, the module is skipped (or fails) with the reason.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from conftest import run_cli
from gateway_procs import (  # noqa: F401  (fixtures)
    POLYFLEET,
    backend,
    free_port,
    fresh_fixture,
    gateway_fixture,
    unavailable,
    upstreams_fixture,
)
from polyfleet.gateway import hash_key
from polyfleet.gateway.ledger import Ledger, LedgerWriter, Record, summarise

try:
    import psycopg
except ImportError:
    unavailable("the PostgreSQL ledger needs psycopg: pip install 'psycopg[binary]'", module=True)

MESSAGES = [{"role": "user", "content": "say hello to the fleet"}]
_names = itertools.count()


def _as_cluster_user() -> tuple[list[str], pwd.struct_passwd | None]:
    """The command prefix that runs initdb/pg_ctl as a non-root user, and that user (None: as we are)."""
    if os.geteuid() != 0:
        return [], None
    runuser = shutil.which("runuser")
    if runuser is None:
        unavailable("running as root, initdb refuses root, and there is no runuser to switch user")
    for name in ("postgres", "nobody"):
        try:
            user = pwd.getpwnam(name)
        except KeyError:
            continue
        prefix = [runuser, "-u", name, "--"]
        probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, timeout=30)
        if probe.returncode != 0:
            unavailable(
                f"running as root, initdb refuses root, and `runuser -u {name}` fails: {probe.stderr}"
            )
        return prefix, user
    unavailable("running as root, initdb refuses root, and there is no 'postgres' or 'nobody' user")


def _run(prefix: list[str], args: list[str], cwd: Path, timeout: float = 60) -> None:
    done = subprocess.run(
        [*prefix, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "LC_ALL": "C", "LANG": "C"},
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {done.returncode}: {(done.stderr or done.stdout)[-2000:]}")


@pytest.fixture(scope="module", name="postgres")
def postgres_fixture() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free 127.0.0.1 port; yields ``postgresql://postgres@…/polyfleet``."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb is None or pg_ctl is None:
        unavailable("PostgreSQL server binaries (initdb, pg_ctl) are not on PATH")
    prefix, user = _as_cluster_user()
    # Not pytest's tmp_path: as root that lies under a 0700 directory the cluster's user cannot enter.
    root = Path(tempfile.mkdtemp(prefix="polyfleet-pg-"))
    data, sockets, log = root / "data", root / "sock", root / "postgres.log"
    sockets.mkdir()
    if user is not None:
        for path in (root, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    port = free_port()
    started = False
    try:
        _run(
            prefix,
            [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
            root,
        )
        options = f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off -c synchronous_commit=off"
        started = True
        _run(
            prefix, [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "30", "-o", options, "start"], root
        )
        admin = f"postgresql://postgres@127.0.0.1:{port}/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE DATABASE polyfleet")
        yield f"postgresql://postgres@127.0.0.1:{port}/polyfleet"
    finally:
        if started:
            subprocess.run(
                [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop"],
                cwd=root,
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(name="pg_db")
def pg_db_fixture(postgres: str) -> str:
    """A fresh, empty database in the module's cluster, so that tests never see each other's rows."""
    name = f"t{next(_names)}_{os.getpid()}"
    with psycopg.connect(postgres, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return postgres.rsplit("/", 1)[0] + f"/{name}"


def pg_rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, connect_timeout=10) as conn:
        return conn.execute(sql).fetchall()


def sample_records() -> list[Record]:
    """30 requests over three backends, two keys, two models and two days, with errors and streams."""
    out = []
    for i in range(30):
        out.append(
            Record(
                ts=1_760_000_000.0 + i * 7.5,
                day="2026-11-22" if i < 12 else "2026-11-23",
                key=("search", "ops")[i % 2],
                model=("llama", "qwen")[i % 3 == 0],
                backend="abc"[i % 3],
                provider=("aws", "gcp")[i % 3 == 2],
                endpoint="/v1/chat/completions",
                status=500 if i % 7 == 3 else 200,
                latency_ms=10.0 + i * 1.25,
                tokens_in=5 + i,
                tokens_out=0 if i % 7 == 3 else 2 * i + 1,
                cost_usd=(5 + 3 * i + 1) * 1e-6,
                attempts=1 + (i % 7 == 3),
                streamed=i % 4 == 1,
            )
        )
    return out


def write_through_the_writer(url: str, records: list[Record]) -> int:
    """Store ``records`` as the gateway does: LedgerWriter batches to the writer process."""

    async def run() -> int:
        writer = LedgerWriter(url, interval_s=0.05, start_timeout_s=20)
        await writer.start()
        for i, record in enumerate(records):
            writer.add(record)
            if i == len(records) // 2:
                await writer.flush()  # two batches, two transactions
        await writer.stop(timeout_s=20)
        return writer.sent

    return asyncio.run(asyncio.wait_for(run(), 60))


def usage_json(*args: str) -> list[dict[str, Any]]:
    result = run_cli("usage", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_records_land_in_postgres_and_usage_reports_what_sqlite_reports(pg_db, tmp_path):
    records = sample_records()
    sqlite_url = f"sqlite:///{tmp_path}/usage.db"
    assert write_through_the_writer(pg_db, records) == len(records)
    assert write_through_the_writer(sqlite_url, records) == len(records)

    [(n, t_in, t_out, streamed, errors)] = pg_rows(
        pg_db,
        "SELECT COUNT(*), SUM(tokens_in), SUM(tokens_out), SUM(streamed),"
        " SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) FROM requests",
    )
    assert (n, t_in, t_out) == (30, sum(r.tokens_in for r in records), sum(r.tokens_out for r in records))
    assert (streamed, errors) == (sum(r.streamed for r in records), sum(r.status >= 400 for r in records))

    by_backend = usage_json("--ledger", pg_db, "--by", "backend")
    assert by_backend == usage_json("--ledger", sqlite_url, "--by", "backend")
    assert [(r["backend"], r["requests"]) for r in by_backend] == [("a", 10), ("b", 10), ("c", 10)]
    expected_a = [r for r in records if r.backend == "a"]
    row_a = by_backend[0]
    assert (row_a["tokens_in"], row_a["tokens_out"]) == (
        sum(r.tokens_in for r in expected_a),
        sum(r.tokens_out for r in expected_a),
    )
    assert row_a["cost_usd"] == pytest.approx(sum(r.cost_usd for r in expected_a))
    for by in ("provider", "key", "model", "day"):  # model adds the plan inputs: rates and mean tokens
        rows = usage_json("--ledger", pg_db, "--by", by)
        assert rows == usage_json("--ledger", sqlite_url, "--by", by), by
        assert sum(r["requests"] for r in rows) == 30
        assert all(type(r["tokens_in"]) is int for r in rows)  # no Decimal leaking out of PostgreSQL sums

    pg, lite = Ledger(pg_db).open(), Ledger(sqlite_url).open()
    try:
        assert pg.spend_on("2026-11-23") == pytest.approx(lite.spend_on("2026-11-23"))
        assert set(pg.spend_on("2026-11-23")) == {"search", "ops"}
        assert summarise(pg, "model") == summarise(lite, "model")
    finally:
        pg.close()
        lite.close()


def test_a_batch_is_one_transaction_and_reopening_keeps_the_table(pg_db):
    ledger = Ledger(pg_db).open()
    try:
        good = sample_records()[:3]
        ledger.write(good)
        bad = sample_records()[3]._replace(status="not a status")  # type: ignore[arg-type]
        with pytest.raises(psycopg.Error):
            ledger.write([*good, bad])  # the good rows of a failed batch are not kept either
    finally:
        ledger.close()
    again = Ledger(pg_db).open()  # CREATE TABLE IF NOT EXISTS on a ledger that has one
    try:
        assert again.query("SELECT COUNT(*) FROM requests") == [(3,)]
    finally:
        again.close()


def test_usage_on_an_unreachable_postgres_ledger_is_a_one_line_error():
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nothing"
    result = run_cli("usage", "--ledger", url)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"polyfleet: {url}: cannot open the ledger: cannot connect:"), lines[0]


def test_a_live_gateway_records_every_request_in_postgres(fresh, gateway, pg_db):
    a, b, _ = fresh
    keys = [
        {"name": "search", "key_sha256": hash_key("sk-search"), "budget_usd_per_day": 0.05},
        {"name": "ops", "key_sha256": hash_key("sk-ops")},
    ]
    routes = {
        "ledger": pg_db,
        "keys": keys,
        "models": [
            {"name": "llama", "backends": [backend(a, usd_per_mtok_in=100.0, usd_per_mtok_out=100.0)]},
            {"name": "qwen", "backends": [backend(b)]},
        ],
    }
    gw = gateway(routes)
    ops = gw.openai("sk-ops")
    for i in range(48):
        model = ("llama", "qwen")[i % 2]
        if i % 3 == 0:
            stream = ops.chat.completions.create(
                model=model,
                messages=MESSAGES,
                max_tokens=4,
                stream=True,
                stream_options={"include_usage": True},
            )
            assert [chunk for chunk in stream]
        else:
            ops.chat.completions.create(model=model, messages=MESSAGES, max_tokens=3)
    search = gw.openai("sk-search")
    for _ in range(2):
        search.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert gw.terminate() in (0, -15)

    stats = [a.stats(), b.stats()]
    assert sum(s["answered"] for s in stats) == 50
    [(n, t_in, t_out, streamed)] = pg_rows(
        pg_db, "SELECT COUNT(*), SUM(tokens_in), SUM(tokens_out), SUM(streamed) FROM requests"
    )
    assert (n, streamed) == (50, 16)
    assert (t_in, t_out) == (
        sum(s["prompt_tokens"] for s in stats),
        sum(s["completion_tokens"] for s in stats),
    )
    assert pg_rows(pg_db, "SELECT key, COUNT(*) FROM requests GROUP BY key ORDER BY key") == [
        ("ops", 48),
        ("search", 2),
    ]
    rows = {r["backend"]: r for r in usage_json("--routes", str(gw.routes_file), "--by", "backend")}
    assert (rows["a"]["requests"], rows["b"]["requests"]) == (26, 24)
    assert rows["a"]["cost_usd"] > 0 and rows["b"]["cost_usd"] == 0

    # A restart resumes today's spend per key from PostgreSQL: lower the budget under what was spent.
    spent = sum(r["cost_usd"] for r in usage_json("--ledger", pg_db, "--by", "key") if r["key"] == "search")
    assert spent > 0
    keys[0]["budget_usd_per_day"] = spent / 2
    again = gateway({**routes, "keys": keys}, name="restarted")
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError):
        again.openai("sk-search").chat.completions.create(model="llama", messages=MESSAGES, max_tokens=3)
    assert time.monotonic() - started < 20
    again.openai("sk-ops").chat.completions.create(model="qwen", messages=MESSAGES, max_tokens=3)
    assert again.terminate() in (0, -15)
    assert pg_rows(pg_db, "SELECT COUNT(*) FROM requests") == [(51,)]


def test_serve_on_an_unreachable_postgres_ledger_exits_1_in_one_line_without_the_password(tmp_path):
    port = free_port()
    routes = tmp_path / "routes.yaml"
    routes.write_text(
        f"ledger: postgresql://postgres:hunter2@127.0.0.1:{port}/nothing\nlisten: {{port: {free_port()}}}\n"
        'models:\n  - name: llama\n    backends: [{name: a, url: "http://127.0.0.1:9/v1"}]\n',
        encoding="utf-8",
    )
    done = subprocess.run(
        [str(POLYFLEET), "serve", str(routes)], capture_output=True, text=True, timeout=60, env=os.environ
    )
    assert done.returncode == 1
    assert "hunter2" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    [line] = [x for x in done.stderr.splitlines() if "writer did not start" in x]
    assert f"ledger postgresql://postgres:***@127.0.0.1:{port}/nothing: writer did not start: " in line
    assert "cannot connect: connection failed" in line and "Connection refused" in line
