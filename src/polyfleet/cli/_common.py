"""Shared CLI helpers: formats, one-line errors, output files, rendering."""

from __future__ import annotations

import contextlib
import json
import math
import socket
import sys
from collections.abc import Callable, Iterator
from functools import wraps
from pathlib import Path
from typing import Any, BinaryIO

import click
import yaml

from polyfleet.cli._terminal import render_table, set_wide, working
from polyfleet.errors import SpecError
from polyfleet.io import OutputError, atomic, check_output

FORMATS = click.Choice(["table", "json", "yaml"])

__all__ = ["FORMATS", "OutputPath", "set_wide", "wide_option", "working"]


def wide_option() -> click.Option:
    """``--wide``: tables at their natural width, every column (added to every command with --format)."""
    return click.Option(
        ["--wide"],
        is_flag=True,
        expose_value=False,
        callback=lambda ctx, param, value: set_wide(value),
        help="show tables at full width, every column (default: fit the terminal, 80 when piped)",
    )


#: the longest message ``_fail`` prints whole; a longer one (a 5,000-character value echoed
#: back) keeps its head (file, line, field, what is expected) and its tail
MAX_MESSAGE_CHARS = 300


def one_short_line(message: str) -> str:
    """``message`` on one line of at most about ``MAX_MESSAGE_CHARS`` characters.

    Line breaks (a value holding one) become spaces; past the limit the middle is cut,
    saying how much, so the file, line and field at the head and the end survive.
    """
    message = " ".join(message.splitlines())
    if len(message) <= MAX_MESSAGE_CHARS:
        return message
    head, tail = MAX_MESSAGE_CHARS * 2 // 3, MAX_MESSAGE_CHARS // 4
    cut = len(message) - head - tail
    return f"{message[:head]} [... {cut:,} characters ...] {message[-tail:]}"


def _fail(message: str, code: int = 2) -> None:
    """``polyfleet: MESSAGE`` as one short line on stderr, then exit ``code``."""
    click.echo(f"polyfleet: {one_short_line(message)}", err=True)
    sys.exit(code)


class OutputPath(click.Path):
    """A click path option that names a file polyfleet writes (``-`` is standard output).

    Commands declare every output option with this type: ``_handles_errors`` checks each
    one before the command's work starts (a directory or a missing parent is a one-line
    error at once, not after a minute of planning), and while one is ``-`` the command's
    other stdout text goes to stderr.  ``tests/test_atomic_cli.py`` walks the commands to
    check every path option is either this or a declared input.
    """

    def __init__(self) -> None:
        super().__init__(dir_okay=True, allow_dash=True, path_type=Path)


#: True while a command writes an output to ``-``: its other stdout text goes to stderr.
_stdout_claimed = False


def _check_outputs() -> None:
    """Refuse, before any work, non-finite numbers and output paths that can never be written.

    click's ``FloatRange`` lets ``nan`` through every bound and ``inf`` through open ones.
    """
    global _stdout_claimed
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        values = value if isinstance(value, tuple | list) else (value,)
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            flag = param.opts[0] if param.opts else (param.name or "").upper()
            _fail(f"{flag}: expected a finite number, got {value}")
        if isinstance(param.type, OutputPath) and value is not None:
            if str(value) == "-":
                _stdout_claimed = True
                continue
            try:
                check_output(value)
            except OutputError as exc:
                flag = param.opts[0] if param.opts else param.name
                _fail(f"{flag}: {exc.render()}")


#: what ``--address`` accepts (Ray's own forms)
RAY_ADDRESSES = "auto, HOST:PORT or ray://HOST:PORT"


def check_ray_address(address: str | None, timeout_s: float = 2.0) -> None:
    """Refuse, within ``timeout_s``, a ``--address`` Ray would retry for minutes.

    ``ray.init`` given a malformed address or one nobody listens on keeps retrying its
    connection (a minute or more) or fails with a traceback; a TCP connect to HOST:PORT
    says the same at once.  ``auto`` (a cluster on this machine) is left to Ray.
    """
    if address is None or address == "auto":
        return
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or "/" in host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SpecError(f"expected {RAY_ADDRESSES}, got {address!r}", file="--address")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except (OSError, UnicodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise SpecError(
            f"cannot reach {host}:{port} ({reason}); expected {RAY_ADDRESSES}", file="--address"
        ) from None


def _handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Check output paths first; turn SpecError and OutputError into one line on stderr.

    SpecError exits 2; OutputError exits with its own code (2 for a bad path, 1 when the
    disk failed while writing).
    """

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _stdout_claimed
        _stdout_claimed = False
        try:
            _check_outputs()
            return fn(*args, **kwargs)
        except SpecError as exc:
            _fail(exc.render())
        except OutputError as exc:
            _fail(exc.render(), exc.exit_code)
        finally:
            _stdout_claimed = False
        return None

    return wrapper


@contextlib.contextmanager
def plan_shape_errors(path: Path) -> Iterator[None]:
    """A plan file edited by hand into another shape (a list where a mapping was, a missing
    key): one line naming the file and what broke, exit 2, instead of a traceback."""
    try:
        yield
    except (KeyError, TypeError, AttributeError, IndexError) as exc:
        what = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc).splitlines()[0]
        raise SpecError(
            f"not a plan as `polyfleet plan --format json` writes it ({what})", file=str(path)
        ) from None


def _write_atomic_with(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write an output file through :func:`polyfleet.io.write_output` (name kept for callers)."""
    atomic.write_output(path, write)


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) through :func:`polyfleet.io.write_output_text`."""
    atomic.write_output_text(path, text)


def _wrote(path: Path) -> None:
    """Tell stderr a file was written (nothing to say for ``-``)."""
    if str(path) != "-":
        click.echo(f"wrote {path}", err=True)


def _render(data: Any, fmt: str, table: Callable[[], Any]) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False)
    return render_table(table(), sys.stderr if _stdout_claimed else sys.stdout)


def _emit(text: str, out: Path | None) -> None:
    """``text`` to ``out``, or to stdout (stderr while an output option is ``-``)."""
    if out is None:
        click.echo(text, nl=False, err=_stdout_claimed)
    else:
        _write_atomic(out, text)
        _wrote(out)


def _show(data: Any, fmt: str, table: Callable[[], Any], out: Path | None = None) -> None:
    """``data`` as ``fmt`` (``table`` builds the table only when asked) to ``out`` or stdout.

    The one call a command makes to print its result: ``_render`` then ``_emit``.
    """
    _emit(_render(data, fmt, table), out)
