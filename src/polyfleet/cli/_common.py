"""Shared CLI helpers: formats, one-line errors, atomic writes, rendering."""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, BinaryIO

import click
import yaml
from rich.console import Console

from polyfleet.errors import SpecError

FORMATS = click.Choice(["table", "json", "yaml"])


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"polyfleet: {message}", err=True)
    sys.exit(code)


def _handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn SpecError into one line on stderr and exit 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SpecError as exc:
            _fail(exc.render())
        return None

    return wrapper


def _write_atomic_with(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write via a temporary file and rename, so a failure never truncates an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    _write_atomic_with(path, lambda fh: fh.write(text.encode("utf-8")))


def _render(data: Any, fmt: str, table: Callable[[], Any]) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False)
    buffer = io.StringIO()
    Console(file=buffer, width=200, force_terminal=False, color_system=None).print(table())
    return buffer.getvalue()


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text, nl=False)
    else:
        _write_atomic(out, text)
        click.echo(f"wrote {out}", err=True)
