"""``polyfleet serve``: run the gateway of a routes file on uvicorn (uvloop, httptools)."""

from __future__ import annotations

import os
import resource
from pathlib import Path

import click
import uvicorn

from polyfleet.cli._app import main
from polyfleet.cli._common import _fail, _handles_errors
from polyfleet.gateway import Gateway, load_routes
from polyfleet.gateway.config import is_loopback
from polyfleet.gateway.server import GatewayServer, guarded_protocol

_FD_HEADROOM = 64  # descriptors kept for upstream connections, the ledger writer, logs


def _connection_cap(wanted: int) -> int:
    """Raise the open-files limit to its hard limit; the connection cap that fits under it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    # each client connection may hold an upstream connection too: two descriptors
    return max(1, min(wanted, (soft - _FD_HEADROOM) // 2))


@main.command("serve")
@click.argument("routes_path", metavar="ROUTES", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--host", help="listen address (default: the routes file's listen.host)")
@click.option("--port", type=click.IntRange(0, 65535), help="listen port (default: listen.port)")
@click.option("--ledger", help="ledger URL, overriding the routes file (sqlite:///FILE or postgresql://…)")
@_handles_errors
def serve_cmd(routes_path: Path, host: str | None, port: int | None, ledger: str | None) -> None:
    """Serve the OpenAI/Anthropic-compatible gateway described by ROUTES until SIGTERM or Ctrl-C.

    SIGTERM stops accepting, lets requests in flight finish (timeouts.shutdown_s) and
    flushes the ledger.  Exit 2 on a bad routes file or a missing api_key_env variable.

    Environment: every variable a backend's api_key_env names (its upstream key, e.g.
    ANTHROPIC_API_KEY, GROQ_API_KEY for the frontier-lab routes) must be set; nothing
    else is read from the environment (the ledger and state URLs come from ROUTES or
    --ledger).  The variables it reads are listed on stderr at start.
    """
    routes = load_routes(routes_path, environ=os.environ)
    host = host or routes.listen.host
    port = routes.listen.port if port is None else port
    if routes.keys is None and not is_loopback(host):
        _fail(
            f"{routes_path}: listen.host: an open gateway (no 'keys') may only listen on loopback, not {host}"
        )
    if ledger is not None and not ledger.startswith(("sqlite://", "postgresql://", "postgres://")):
        _fail(f"--ledger: expected sqlite:///FILE or postgresql://…, got {ledger!r}")
    cap = _connection_cap(routes.limits.max_connections)
    if cap < routes.limits.max_connections:
        click.echo(
            f"polyfleet: limits.max_connections {routes.limits.max_connections} lowered to {cap}"
            " to fit the open-files limit (ulimit -n)",
            err=True,
        )
    limits = routes.limits.model_copy(update={"max_connections": cap})
    app = Gateway(routes, ledger_url=ledger)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=guarded_protocol(limits),
        lifespan="on",
        access_log=False,
        proxy_headers=False,  # nothing reads the client address: skip X-Forwarded-* parsing
        log_level="warning",
        timeout_graceful_shutdown=int(routes.timeouts.shutdown_s + 0.999),
        timeout_keep_alive=max(1, round(routes.limits.keepalive_timeout_s)),
        backlog=4096,
    )
    keys = sorted({b.api_key_env for m in routes.models for b in m.backends if b.api_key_env})
    click.echo(f"polyfleet: upstream keys from {', '.join(keys) or 'no environment variable'}", err=True)
    click.echo(f"polyfleet: serving {len(routes.models)} model(s) on http://{host}:{port}", err=True)
    server = GatewayServer(config, app)
    server.run()
    if not server.started:
        _fail("the gateway did not start (see the error above)", 1)
