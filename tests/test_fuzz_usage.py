"""``polyfleet usage`` on ledgers holding what no gateway writes (session-8 fuzz): one line, exit 2."""

from __future__ import annotations

import sqlite3

import pytest

from conftest import run_cli
from polyfleet.gateway.store import COLUMNS, Ledger


def _invoke(args: list[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``polyfleet ARGS`` (exceptions propagate: a traceback fails)."""
    result = run_cli(*args)
    return result.exit_code, result.stdout, result.stderr


def _ledger(path, column: str, sql_value: str) -> str:
    """A ledger of three requests, then ``column`` set to ``sql_value`` in every row."""
    url = f"sqlite:///{path}"
    Ledger(url).open().close()
    con = sqlite3.connect(path)
    for i in range(3):
        row = {c: 1 for c in COLUMNS} | {
            "ts": 1_700_000_000 + i,
            "model": "m",
            "provider": "p",
            "status": 200,
        }
        con.execute(
            f"INSERT INTO requests ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
    con.execute(f"UPDATE requests SET {column} = {sql_value}")
    con.commit()
    con.close()
    return url


@pytest.mark.parametrize(
    ("column", "value", "by", "says"),
    [
        ("ts", "'abc'", "model", "a value of the wrong type or size (unsupported operand"),
        ("tokens_in", "1e308", "model", "a value of the wrong type or size (cannot convert float infinity"),
        ("cost_usd", "1e308", "day", "cost_usd is inf (past any float), expected text or a finite number"),
        (
            "provider",
            "x'00ff'",
            "provider",
            "provider is binary data (a BLOB), expected text or a finite number",
        ),
    ],
)
def test_a_ledger_value_no_gateway_writes_is_one_line(tmp_path, column, value, by, says):
    """Were a TypeError/OverflowError traceback, a bytes value JSON could not write, and
    ``"cost_usd": Infinity`` (not JSON) on stdout."""
    url = _ledger(tmp_path / "usage.db", column, value)
    code, out, err = _invoke(["usage", "--ledger", url, "--by", by, "--format", "json"])
    assert (code, out) == (2, "")
    assert err.startswith(f"polyfleet: {url}: not a polyfleet ledger: {says}") and err.count("\n") == 1


def test_a_sound_ledger_still_sums(tmp_path):
    url = _ledger(tmp_path / "usage.db", "cost_usd", "0.5")
    code, out, _ = _invoke(["usage", "--ledger", url, "--by", "day", "--format", "json"])
    assert code == 0 and '"cost_usd": 1.5' in out


def test_a_sqlite_file_that_is_no_ledger_is_refused_and_left_untouched(tmp_path):
    """Opening it as a ledger created a requests table in someone else's database (and an
    empty file became an empty ledger, reported as zero requests)."""
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    for path in (other, empty):
        code, out, err = _invoke(["usage", "--ledger", f"sqlite:///{path}"])
        says = "not a polyfleet ledger: no requests table (serve writes one)"
        assert (code, out, err) == (2, "", f"polyfleet: sqlite:///{path}: {says}\n")
    con = sqlite3.connect(other)
    assert con.execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]
    con.close()
    assert empty.stat().st_size == 0


def test_a_ledger_name_past_the_system_limit_is_one_line(tmp_path):
    """Was an OSError traceback (File name too long) from the existence check."""
    url = f"sqlite:///{tmp_path / ('x' * 5000)}"
    code, _, err = _invoke(["usage", "--ledger", url])
    assert code == 2 and err.count("\n") == 1
    assert err.endswith(": cannot open the ledger: File name too long\n")
