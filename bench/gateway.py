"""Gateway overhead, side by side in one run against the same upstream.

Targets: ``direct`` (the upstream itself), ``aiohttp`` (a minimal pass-through written
here, aiohttp's server and client: the floor a common Python proxy pays), ``uvicorn``
(the same pass-through as an ASGI app on polyfleet's own stack: uvicorn + httptools +
uvloop and polyfleet's upstream client, ``gateway/transport.py``; that stack's floor, so
polyfleet against it is what its checks cost),
``polyfleet`` (``polyfleet serve`` with every check on: routing, ledger, metrics, a
gateway key with a daily budget (each request reserves and settles its maximum cost),
client limits, disconnect watching, protocol checks of the answer, stream-end detection)
and ``litellm`` (LiteLLM's proxy, one worker, local cost map, a
non-default master key, the same backend).  Load: ``wrk`` (Debian package) at
concurrency 1, 16 and 128, non-streaming and streaming chat completions.  Printed per
cell: requests/s, added p50/p99 latency over direct, CPU ms per request of the target's
processes (the upstream's, for direct); then, per mode and concurrency, the issue's
measures: polyfleet's requests/s as a share of the aiohttp pass-through's (and of the
uvicorn one's) and as a multiple of LiteLLM's, and its p50/p99 over the pass-through's and
over direct's.

    .venv/bin/python bench/gateway.py [--duration 5] [--rounds 3] [--bench-venv ~/.cache/polyfleet-bench/venv]

With ``--rounds N`` every cell runs N times (the targets' order turning each round) and
the tables show each figure's median over the rounds, then polyfleet against the
pass-through round by round.

LiteLLM and aiohttp live in a separate venv (created on first use), never in .venv;
without ``litellm`` among ``--targets`` the pass-through runs on .venv's aiohttp and no
venv is made.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
UPSTREAM = ROOT / "tests" / "gateway_upstream.py"
POLYFLEET = Path(sys.executable).parent / "polyfleet"
MASTER_KEY = "sk-bench-not-the-default-7f3a"
GATEWAY_KEY = "sk-bench-gateway-key-5d21"
BODY = (
    '{"model": "llama", "messages": [{"role": "user", "content": "say hello to the fleet"}],'
    ' "max_tokens": 16%s}'
)
TICKS = os.sysconf("SC_CLK_TCK")

AIOHTTP_PROXY = """
import sys, aiohttp, uvloop
from aiohttp import web
UP = sys.argv[2]
async def session(app):
    app["s"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
    yield
    await app["s"].close()
async def proxy(request):
    body = await request.read()
    async with request.app["s"].post(UP + request.path, data=body,
                                     headers={"content-type": "application/json"}) as up:
        if "text/event-stream" in up.headers.get("content-type", ""):
            out = web.StreamResponse(status=up.status, headers={"content-type": up.headers["content-type"]})
            await out.prepare(request)
            async for chunk in up.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out
        return web.Response(status=up.status, body=await up.read(),
                            headers={"content-type": up.headers.get("content-type", "application/json")})
app = web.Application()
app.cleanup_ctx.append(session)
app.router.add_post("/{tail:.*}", proxy)
app.router.add_get("/{tail:.*}", lambda r: web.Response(text="ok"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None,
            loop=uvloop.new_event_loop())
"""

# the same pass-through on polyfleet's own stack (uvicorn + httptools + uvloop, polyfleet's upstream
# client): the floor of that stack, to tell what polyfleet's checks cost from what the server and client cost
UVICORN_PROXY = """
import sys, uvicorn
from polyfleet.gateway.transport import Transport
UP = sys.argv[2]
transport = Transport(connect_s=10.0, first_byte_s=60.0)
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await transport.start()
                await send({"type": "lifespan.startup.complete"})
            else:
                await transport.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["method"] == "GET":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    up = await transport.post(UP + scope["path"], body, {"content-type": "application/json"})
    kind = up.headers.get("content-type", "application/json").encode()
    await send({"type": "http.response.start", "status": up.status, "headers": [(b"content-type", kind)]})
    if kind.startswith(b"text/event-stream"):
        while chunk := await up.next_chunk():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        await send({"type": "http.response.body", "body": await up.read()})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
            access_log=False, log_level="warning", proxy_headers=False)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120.0, headers: dict | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=2, headers=headers)
            return
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready in {timeout}s")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its descendants (LiteLLM and uvicorn may fork workers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(kids)
        frontier += kids
    total = 0.0
    for p in tree:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def bench_venv(path: Path) -> Path:
    """The venv holding LiteLLM and aiohttp, created when missing."""
    python = path / "bin" / "python"
    if not python.exists():
        print(f"creating {path} with litellm[proxy] and aiohttp (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "litellm[proxy]", "aiohttp", "uvloop"], check=True
        )
    return path


@contextlib.contextmanager
def process(args: list[str], env: dict | None = None, cwd: str | None = None) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(
        args,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip()).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(url: str, concurrency: int, duration: float, stream: bool, key: str | None) -> dict[str, float]:
    """One wrk run; requests/s, p50 and p99 in ms, non-2xx and socket errors."""
    headers = f'wrk.headers["Authorization"] = "Bearer {key}"' if key else ""
    body = BODY % (', "stream": true' if stream else "")
    script = textwrap.dedent(f"""
        wrk.method = "POST"
        wrk.body = '{body}'
        wrk.headers["Content-Type"] = "application/json"
        {headers}
    """)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{concurrency}",
                f"-d{max(1, round(duration))}s",
                "--latency",
                "--timeout",
                "10s",
                "-s",
                fh.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(fh.name)
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    for pct in ("50", "99"):
        result[f"p{pct}"] = _ms(re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M).group(1))
    result["requests"] = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    result["errors"] = (int(bad.group(1)) if bad else 0) + (sum(map(int, errors.groups())) if errors else 0)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per cell")
    parser.add_argument(
        "--bench-venv", type=Path, default=Path.home() / ".cache" / "polyfleet-bench" / "venv"
    )
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 128])
    parser.add_argument(
        "--targets", nargs="+", default=["direct", "aiohttp", "uvicorn", "polyfleet", "litellm"]
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="run every cell this many times; print medians (LiteLLM: once)"
    )
    args = parser.parse_args()
    venv = bench_venv(args.bench_venv) if "litellm" in args.targets else Path(sys.executable).parent.parent
    work = Path(tempfile.mkdtemp(prefix="polyfleet-bench-"))
    up_port = free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    with contextlib.ExitStack() as stack:
        up = stack.enter_context(
            process([sys.executable, str(UPSTREAM), "--port", str(up_port), "--name", "up"])
        )
        wait_ready(upstream + "/_stats", up)
        targets: dict[str, tuple[str, subprocess.Popen, str | None]] = {
            "direct": (upstream + "/v1/chat/completions", up, None)
        }
        if "aiohttp" in args.targets:
            port = free_port()
            (work / "proxy.py").write_text(AIOHTTP_PROXY)
            proc = stack.enter_context(
                process([str(venv / "bin" / "python"), str(work / "proxy.py"), str(port), upstream])
            )
            wait_ready(f"http://127.0.0.1:{port}/", proc)
            targets["aiohttp"] = (f"http://127.0.0.1:{port}/v1/chat/completions", proc, None)
        if "uvicorn" in args.targets:
            port = free_port()
            (work / "uvicorn_proxy.py").write_text(UVICORN_PROXY)
            proc = stack.enter_context(
                process([sys.executable, str(work / "uvicorn_proxy.py"), str(port), upstream])
            )
            wait_ready(f"http://127.0.0.1:{port}/", proc)
            targets["uvicorn"] = (f"http://127.0.0.1:{port}/v1/chat/completions", proc, None)
        if "polyfleet" in args.targets:
            port = free_port()
            key_sha256 = hashlib.sha256(GATEWAY_KEY.encode()).hexdigest()
            (work / "routes.yaml").write_text(
                textwrap.dedent(f"""
                listen: {{host: 127.0.0.1, port: {port}}}
                ledger: sqlite:///{work}/usage.db
                keys: [{{name: bench, key_sha256: "{key_sha256}", budget_usd_per_day: 1000000000}}]
                models:
                  - name: llama
                    backends:
                      - {{name: up, url: "{upstream}/v1", weight: 1, provider: own,
                         usd_per_mtok_in: 0.2, usd_per_mtok_out: 0.6}}
            """)
            )
            proc = stack.enter_context(process([str(POLYFLEET), "serve", str(work / "routes.yaml")]))
            wait_ready(f"http://127.0.0.1:{port}/healthz", proc)
            targets["polyfleet"] = (f"http://127.0.0.1:{port}/v1/chat/completions", proc, GATEWAY_KEY)
        if "litellm" in args.targets:
            port = free_port()
            (work / "litellm.yaml").write_text(
                textwrap.dedent(f"""
                model_list:
                  - model_name: llama
                    litellm_params: {{model: openai/llama, api_base: "{upstream}/v1", api_key: sk-upstream}}
            """)
            )
            env = {
                "LITELLM_LOCAL_MODEL_COST_MAP": "True",
                "LITELLM_MASTER_KEY": MASTER_KEY,
                "LITELLM_LOG": "ERROR",
            }
            proc = stack.enter_context(
                process(
                    [
                        str(venv / "bin" / "litellm"),
                        "--config",
                        str(work / "litellm.yaml"),
                        "--port",
                        str(port),
                        "--num_workers",
                        "1",
                    ],
                    env=env,
                    cwd=str(work),
                )
            )
            wait_ready(f"http://127.0.0.1:{port}/health/liveliness", proc, timeout=180)
            targets["litellm"] = (f"http://127.0.0.1:{port}/v1/chat/completions", proc, MASTER_KEY)
        runs: dict[tuple[str, str, int], list[dict[str, float]]] = {}
        names = list(targets)
        for round_no in range(args.rounds):
            # each round runs every cell; the targets' order turns by one each round, so a
            # stall of the shared machine or a warm cache never lands on the same target
            order = names[round_no % len(names) :] + names[: round_no % len(names)]
            for stream in (False, True):
                mode = "stream" if stream else "json"
                for conc in args.concurrency:
                    for name in order:
                        if name == "litellm" and round_no > 0:
                            continue  # 50-100x slower: one round says as much
                        url, proc, key = targets[name]
                        run_wrk(url, conc, 1.0, stream, key)  # warm-up: connections, caches
                        before = cpu_seconds(proc.pid)
                        result = run_wrk(url, conc, args.duration, stream, key)
                        cpu = cpu_seconds(proc.pid) - before
                        result["cpu_ms"] = 1000 * cpu / max(result["requests"], 1)
                        runs.setdefault((name, mode, conc), []).append(result)
                        print(
                            f"  round {round_no + 1} {name:9} {mode:6} c={conc:<3} "
                            f"{result['rps']:9.0f} req/s",
                            file=sys.stderr,
                        )
        rows = []
        for stream in (False, True):
            mode = "stream" if stream else "json"
            for conc in args.concurrency:
                base = None
                for name in names:
                    result = median_of(runs[(name, mode, conc)])
                    base = base or result
                    rows.append((name, mode, conc, result, base))
        if args.rounds > 1:
            per_round(runs)
    print("\n| target | mode | conc | req/s | added p50 ms | added p99 ms | CPU ms/req | errors |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name, mode, conc, r, base in rows:
        added = (r["p50"] - base["p50"], r["p99"] - base["p99"]) if name != "direct" else (r["p50"], r["p99"])
        label = "(p50/p99 itself)" if name == "direct" else ""
        print(
            f"| {name} {label} | {mode} | {conc} | {r['rps']:.0f} | {added[0]:.2f} | {added[1]:.2f} "
            f"| {r['cpu_ms']:.3f} | {r['errors']} |"
        )
    summarize(rows)


def median_of(results: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the rounds of one cell (errors: their sum)."""
    keys = ("rps", "p50", "p99", "cpu_ms", "requests")
    out = {k: statistics.median(r[k] for r in results) for k in keys}
    out["errors"] = sum(r["errors"] for r in results)
    return out


def per_round(runs: dict[tuple[str, str, int], list[dict[str, float]]]) -> None:
    """polyfleet against the aiohttp pass-through round by round: how much a single round can swing."""
    print(
        "\n| mode | conc | round | polyfleet / pass-through req/s "
        "| added p50 / p99 ms over the pass-through |"
    )
    print("|---|---:|---:|---:|---:|")
    for (name, mode, conc), pf_runs in runs.items():
        pt_runs = runs.get(("aiohttp", mode, conc))
        if name != "polyfleet" or pt_runs is None:
            continue
        for i, (pf, pt) in enumerate(zip(pf_runs, pt_runs, strict=True)):
            print(
                f"| {mode} | {conc} | {i + 1} | {pf['rps'] / pt['rps']:.0%} "
                f"| {pf['p50'] - pt['p50']:.2f} / {pf['p99'] - pt['p99']:.2f} |"
            )


def summarize(rows: list) -> None:
    """The issue's measures per cell: polyfleet against the aiohttp pass-through (and LiteLLM) of the
    same run, and what queueing alone predicts for the added p50 (Little's law: with wrk keeping
    ``conc`` requests in flight, latency is about conc / requests-per-second once a target is
    saturated)."""
    cells: dict[tuple[str, int], dict[str, dict]] = {}
    for name, mode, conc, r, _ in rows:
        cells.setdefault((mode, conc), {})[name] = r
    print(
        "\n| mode | conc | polyfleet / pass-through req/s | added p50 / p99 ms over the pass-through "
        "| conc/req-s difference ms | added p50 / p99 ms over direct | polyfleet / LiteLLM req/s "
        "| polyfleet / uvicorn pass-through req/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for (mode, conc), cell in cells.items():
        pf, pt, direct, lite = (cell.get(k) for k in ("polyfleet", "aiohttp", "direct", "litellm"))
        own = cell.get("uvicorn")
        if pf is None or pt is None:
            continue
        queueing = 1000 * conc * (1 / pf["rps"] - 1 / pt["rps"])
        over_direct = f"{pf['p50'] - direct['p50']:.2f} / {pf['p99'] - direct['p99']:.2f}" if direct else ""
        versus = f"{pf['rps'] / lite['rps']:.0f}x" if lite else ""
        share_of_own = f"{pf['rps'] / own['rps']:.0%}" if own else ""
        print(
            f"| {mode} | {conc} | {pf['rps'] / pt['rps']:.0%} | {pf['p50'] - pt['p50']:.2f} / "
            f"{pf['p99'] - pt['p99']:.2f} | {queueing:.2f} | {over_direct} | {versus} "
            f"| {share_of_own} |"
        )


if __name__ == "__main__":
    main()
