"""Read YAML (and JSON) files with a line number for every field path, for one-line errors.

Limits, so that no input can hang or crash a command (README, "The spec"): a file over
``MAX_BYTES`` (64 MiB), nesting deeper than ``MAX_DEPTH`` (64 levels; indentation past
column 512) and a document that expands, through aliases, to more than ``MAX_NODES``
(1,000,000) values (an alias bomb, "billion laughs") are refused with one line, in well
under a second; so are UTF-16 and binary files, and numbers that are not finite or
exceed ``MAX_MAGNITUDE`` (1e18) in size.  A JSON file that
stops early says "truncated JSON at line N", not "malformed YAML".
"""

from __future__ import annotations

import json
import math
import os
import re
import select
import stat
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from polyfleet.errors import SpecError

Lines = dict[tuple[Any, ...], int]

MAX_BYTES = 64 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 1_000_000
#: the largest magnitude a number in any input may have (1e308 overflows prices x hours)
MAX_MAGNITUDE = 1e18


def _expanded_size(root: yaml.Node, file: str) -> int:
    """Values the document holds once every alias is expanded, counted per distinct node.

    Aliases make the node tree a DAG: sizes are memoised by node, so a bomb of nine
    aliases of nine aliases ... is measured in a few dozen steps, never expanded.
    """
    size: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in size:
            continue
        if isinstance(node, yaml.MappingNode):
            children = [v for kv in node.value for v in kv]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            size[id(node)] = 1
            continue
        if done:
            size[id(node)] = min(1 + sum(size[id(c)] for c in children), MAX_NODES + 1)
        else:
            if len(stack) > MAX_NODES:
                break
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in size)
    return size.get(id(root), MAX_NODES + 1)


def _node_lines(root: yaml.Node, out: Lines, file: str) -> None:
    """Line of every field path; duplicate keys, too deep and too many nodes are errors.

    Iterative (no recursion limit to hit) and counting each node every time an alias
    reaches it, so an alias bomb is refused after ``MAX_NODES`` visits, not expanded.
    """
    stack: list[tuple[yaml.Node, tuple[Any, ...]]] = [(root, ())]
    visited = 0
    while stack:
        node, path = stack.pop()
        visited += 1
        if visited > MAX_NODES:
            raise SpecError(
                f"the document expands to more than {MAX_NODES:,} values (aliases repeating aliases?)",
                file=file,
                line=node.start_mark.line + 1,
            )
        if len(path) > MAX_DEPTH:
            raise SpecError(
                f"nested more than {MAX_DEPTH} levels deep", file=file, line=node.start_mark.line + 1
            )
        out.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key, value in node.value:
                try:
                    new = key.value not in seen
                except TypeError:  # a mapping or list used as a key
                    raise SpecError(
                        "a key must be a plain name, not a list or mapping",
                        file=file,
                        line=key.start_mark.line + 1,
                        path=dotted(path),
                    ) from None
                if not new:
                    raise SpecError(
                        f"key {key.value!r} appears twice in one mapping",
                        file=file,
                        line=key.start_mark.line + 1,
                        path=dotted((*path, key.value)),
                    )
                seen.add(key.value)
                out[(*path, key.value)] = key.start_mark.line + 1
                stack.append((value, (*path, key.value)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, index)) for index, item in enumerate(node.value))


_NUMERIC = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
_BRACKETS = re.compile(r"[\[\]{}]")
_INDENT = re.compile(r"^[ \t]*", re.MULTILINE)


def _check_depth(text: str, file: str) -> None:
    """Refuse nesting past ``MAX_DEPTH`` before the parser, which recurses per level, sees it.

    Flow nesting counts brackets (quotes ignored: a string with dozens of unmatched
    brackets is refused too); block nesting is bounded by indentation, at most 8 columns
    per level.
    """
    depth = 0
    for match in _BRACKETS.finditer(text):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_DEPTH:
            line = text.count("\n", 0, match.start()) + 1
            raise SpecError(f"nested more than {MAX_DEPTH} levels deep", file=file, line=line)
    if max((len(m.group()) for m in _INDENT.finditer(text)), default=0) > 8 * MAX_DEPTH:
        raise SpecError(f"nested more than {MAX_DEPTH} levels deep (indented past column 512)", file=file)


def _check_numbers(data: Any, lines: Lines, file: str) -> None:
    """Every number finite and at most ``MAX_MAGNITUDE`` in size: past that a plan overflows."""
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            stack.extend((v, (*path, k)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(value))
        if isinstance(value, str) and _NUMERIC.fullmatch(value.strip()):
            value = float(value)  # YAML reads 1e308 (no dot) as a string; pydantic would take it
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (not math.isfinite(value) or abs(value) > MAX_MAGNITUDE)
        ):
            raise SpecError(
                f"expected a finite number of magnitude at most {MAX_MAGNITUDE:.0e}, got {value:g}",
                file=file,
                line=line_of(lines, path),
                path=dotted(path),
            )


def _json_error(text: str, file: str) -> SpecError | None:
    """For text that is meant as JSON: what is wrong with it, in JSON's terms."""
    if not text.lstrip().startswith(("{", "[")):
        return None
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        end = len(text.rstrip())
        if exc.pos >= end or exc.msg.startswith("Unterminated string"):  # the text stops mid-value
            last = text[:end].count("\n") + 1
            return SpecError(f"truncated JSON at line {last}", file=file, line=last)
        return SpecError(f"malformed JSON: {exc.msg}", file=file, line=exc.lineno)
    except RecursionError:
        return None
    return None


def _unique_keys(file: str, line: int | None) -> Any:
    """An ``object_pairs_hook`` refusing an object that names a key twice (JSON keeps the last)."""

    def build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise SpecError(f"duplicate key {key!r}: expected each key once", file=file, line=line)
            out[key] = value
        return out

    return build


def loads_json(text: str, file: str, line: int | None = None, *, unique_keys: bool = False) -> Any:
    """``json.loads(text)``; nesting too deep for its parser is a one-line ``SpecError``.

    The C parser recurses per level and raises ``RecursionError`` (a traceback) at about
    the interpreter's recursion limit; a ``JSONDecodeError`` is left to the caller, whose
    message says what the file should have been.  With ``unique_keys`` a key named twice
    in one object is a ``SpecError`` too (as ``read_yaml`` refuses it), not the last one
    silently kept.
    """
    hook = _unique_keys(file, line) if unique_keys else None
    try:
        return json.loads(text, object_pairs_hook=hook)
    except RecursionError:
        raise SpecError(
            f"nested too deeply for JSON (at most about {sys.getrecursionlimit():,} levels)",
            file=file,
            line=line,
        ) from None


def dotted(path: tuple[Any, ...]) -> str:
    """``('workloads', 0, 'slo')`` -> ``workloads[0].slo``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def line_of(lines: Lines, path: tuple[Any, ...]) -> int | None:
    """Line of the longest prefix of ``path`` present in the YAML."""
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None


#: longest wait for the next bytes of a pipe or device input (a FIFO nobody writes to)
READ_WAIT_S = 3.0


def read_input(path: Path | str, what: str = "spec", max_bytes: int | None = None) -> bytes:
    """The bytes of an input file, refusing in one line what would hang or exhaust memory.

    A regular file larger than ``max_bytes`` is refused from its size.  Anything else (a
    named pipe, ``/dev/stdin``, a device such as ``/dev/zero``) is read up to ``max_bytes``,
    waiting at most ``READ_WAIT_S`` for each next chunk: an endless device or a pipe
    nobody writes to is an error, not a hang.  A directory is named as one.  ``max_bytes``
    defaults to ``MAX_BYTES``.
    """
    file = str(path)
    path = Path(path)
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    limit = f"{max_bytes / 2**20:g} MiB"
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise SpecError(f"cannot read {what}: a directory, not a file", file=file)
        if stat.S_ISREG(mode):
            if path.stat().st_size > max_bytes:
                raise SpecError(f"cannot read {what}: larger than {limit}", file=file)
            return path.read_bytes()
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            chunks: list[bytes] = []
            size = 0
            while True:
                ready, _, _ = select.select([fd], [], [], READ_WAIT_S)
                if not ready:
                    raise SpecError(
                        f"cannot read {what}: no data for {READ_WAIT_S:g} s (a pipe nobody writes to?)",
                        file=file,
                    )
                try:
                    chunk = os.read(fd, 1 << 20)
                except BlockingIOError:
                    time.sleep(0.01)
                    continue
                if not chunk:
                    return b"".join(chunks)
                size += len(chunk)
                if size > max_bytes:
                    raise SpecError(f"cannot read {what}: more than {limit} (an endless device?)", file=file)
                chunks.append(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        raise SpecError(f"cannot read {what}: {exc.strerror or exc}", file=file) from exc


def read_yaml(path: Path, what: str = "spec") -> tuple[Any, Lines]:
    """Parse ``path``; bad bytes, bad YAML and duplicate keys become one-line ``SpecError``s."""
    file = str(path)
    raw = read_input(path, what)
    head = raw[:64]
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or (
        len(head) >= 8 and (set(head[1::2]) == {0} or set(head[0::2]) == {0})
    ):
        raise SpecError(f"cannot read {what}: UTF-16 text; save it as UTF-8", file=file)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SpecError(f"cannot read {what}: not UTF-8 text (byte {exc.start})", file=file) from exc
    if "\x00" in text:
        raise SpecError(f"cannot read {what}: binary data (a NUL byte), not text", file=file)
    _check_depth(text, file)
    try:
        loader = yaml.SafeLoader(text)  # parse once: the node tree gives lines, then data
        try:
            node = loader.get_single_node()
            lines: Lines = {}
            if node is not None:  # limits first: constructing or walking a bomb is the hang
                if _expanded_size(node, file) > MAX_NODES:
                    raise SpecError(
                        f"the document expands to more than {MAX_NODES:,} values through aliases"
                        " (an alias bomb?)",
                        file=file,
                    )
                _node_lines(node, lines, file)
            data = loader.construct_document(node) if node is not None else None
            _check_numbers(data, lines, file)
        finally:
            loader.dispose()
    except SpecError:
        raise
    except RecursionError:  # the parser recurses per level: far deeper than MAX_DEPTH
        raise SpecError(f"nested more than {MAX_DEPTH} levels deep", file=file) from None
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        if not isinstance(exc, yaml.YAMLError):  # a value the constructor cannot build (a bad date)
            raise SpecError(f"malformed YAML: {str(exc).splitlines()[0]}", file=file) from None
        as_json = _json_error(text, file)
        if as_json is not None:
            raise as_json from None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        context = getattr(exc, "context_mark", None)
        n_lines = text.count("\n") + 1
        if context is not None and (mark is None or mark.line + 1 >= n_lines):
            mark = context  # the stream ended: point at what was left open
        line = mark.line + 1 if mark is not None else None
        raise SpecError(f"malformed YAML: {problem}", file=file, line=line) from exc
    return data, lines
