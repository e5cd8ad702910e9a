"""Real processes for the gateway tests: upstreams and gateways on free 127.0.0.1 ports.

Every wait is bounded; every process is stopped by the fixture that started it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import anthropic
import httpx
import openai
import pytest
import yaml

HERE = Path(__file__).resolve().parent
POLYFLEET = Path(sys.executable).parent / "polyfleet"


def unavailable(reason: str, *, module: bool = False) -> NoReturn:
    """Skip for want of a service (Redis, PostgreSQL), or fail under POLYFLEET_REQUIRE_SERVICES=1 (CI)."""
    if os.environ.get("POLYFLEET_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}; POLYFLEET_REQUIRE_SERVICES=1 requires it", pytrace=False)
    pytest.skip(reason, allow_module_level=module)


def free_port() -> int:
    """A port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proc:
    """A server process listening on ``port``."""

    def __init__(self, args: list[str], port: int, env: dict[str, str] | None = None):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.popen = subprocess.Popen(
            args, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )

    def wait_ready(self, path: str, timeout: float = 20.0) -> None:
        """Poll ``path`` until it answers; fail with the process's stderr if it died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                _, err = self.popen.communicate(timeout=5)
                raise RuntimeError(f"process exited {self.popen.returncode}: {err.decode()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(self.url + path, timeout=1.0)
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.url}{path} not ready in {timeout}s")

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait (bounded); SIGKILL if it does not exit."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(timeout=5)
            raise

    def kill(self) -> None:
        """SIGKILL: the process dies without a word, as a crashed backend does."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait(timeout=5)

    def close(self) -> None:
        """Stop it whatever its state, and close its pipes."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(timeout=5)
        for pipe in (self.popen.stdout, self.popen.stderr):
            if pipe is not None:
                pipe.close()


class Upstream(Proc):
    """``gateway_upstream.py`` in its own process, scripted over HTTP."""

    def __init__(self, name: str):
        port = free_port()
        super().__init__(
            [sys.executable, str(HERE / "gateway_upstream.py"), "--port", str(port), "--name", name], port
        )
        self.name = name

    def control(self, **settings: Any) -> None:
        httpx.post(self.url + "/_control", json=settings, timeout=5).raise_for_status()

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.url + "/_stats", timeout=5).json()

    def reset(self) -> None:
        httpx.post(self.url + "/_reset", timeout=5).raise_for_status()


class Gateway(Proc):
    """``polyfleet serve`` on a routes file written from ``routes``."""

    def __init__(self, tmp_path: Path, routes: dict[str, Any], env: dict[str, str] | None = None):
        port = free_port()
        self.ledger = tmp_path / "usage.db"
        routes = {
            "listen": {"host": "127.0.0.1", "port": port},
            "ledger": f"sqlite:///{self.ledger}",
            **routes,
        }
        self.routes_file = tmp_path / "routes.yaml"
        self.routes_file.write_text(yaml.safe_dump(routes, sort_keys=False), encoding="utf-8")
        super().__init__([str(POLYFLEET), "serve", str(self.routes_file)], port, env)
        self.clients: list[Any] = []

    def openai(self, key: str = "none") -> openai.OpenAI:
        """An official OpenAI SDK client on this gateway (closed with the gateway)."""
        sdk = openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=20)
        self.clients.append(sdk)
        return sdk

    def anthropic(self, key: str = "none") -> anthropic.Anthropic:
        """An official Anthropic SDK client on this gateway (closed with the gateway)."""
        sdk = anthropic.Anthropic(base_url=self.url, api_key=key, max_retries=0, timeout=20)
        self.clients.append(sdk)
        return sdk

    def close(self) -> None:
        for sdk in self.clients:
            sdk.close()
        super().close()

    def ledger_rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows from the ledger (read after the gateway stopped, or after a flush)."""
        with contextlib.closing(sqlite3.connect(self.ledger)) as conn:
            return conn.execute(sql).fetchall()


def backend(upstream: Upstream, weight: float = 1.0, **fields: Any) -> dict[str, Any]:
    """A routes-file backend entry for ``upstream``."""
    return {
        "name": upstream.name,
        "url": upstream.url + "/v1",
        "weight": weight,
        "provider": upstream.name,
        **fields,
    }


@pytest.fixture(scope="module", name="upstreams")
def upstreams_fixture() -> Iterator[list[Upstream]]:
    """Three upstreams a, b, c for the whole module."""
    procs = [Upstream(name) for name in ("a", "b", "c")]
    try:
        for proc in procs:
            proc.wait_ready("/_stats")
        yield procs
    finally:
        for proc in procs:
            proc.close()


@pytest.fixture(name="fresh")
def fresh_fixture(upstreams: list[Upstream]) -> list[Upstream]:
    """The module's upstreams, restarted if a test killed one, with stats and modes reset."""
    for i, proc in enumerate(upstreams):
        if proc.popen.poll() is not None:
            proc.close()
            upstreams[i] = Upstream(proc.name)
            upstreams[i].wait_ready("/_stats")
        upstreams[i].reset()
    return upstreams


@pytest.fixture(name="gateway")
def gateway_fixture(tmp_path: Path) -> Iterator[Any]:
    """``gateway(routes, env=None)`` starts a gateway and waits for /healthz; stopped after the test.

    With ``wait=False`` it returns at once (start several, then ``wait_ready("/healthz")`` each).
    """
    started: list[Gateway] = []

    def start(
        routes: dict[str, Any], env: dict[str, str] | None = None, name: str = "gw", wait: bool = True
    ) -> Gateway:
        where = tmp_path / name
        where.mkdir()
        proc = Gateway(where, routes, env)
        started.append(proc)
        if wait:
            proc.wait_ready("/healthz")
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.close()
