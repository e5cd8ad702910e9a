"""Read YAML files with a line number for every field path, for one-line error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from polyfleet.errors import SpecError

Lines = dict[tuple[Any, ...], int]


def _node_lines(node: yaml.Node, path: tuple[Any, ...], out: Lines, file: str) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key, value in node.value:
            if key.value in seen:
                raise SpecError(
                    f"key {key.value!r} appears twice in one mapping",
                    file=file,
                    line=key.start_mark.line + 1,
                    path=dotted((*path, key.value)),
                )
            seen.add(key.value)
            _node_lines(value, (*path, key.value), out, file)
            out[(*path, key.value)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _node_lines(item, (*path, index), out, file)


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


def read_yaml(path: Path, what: str = "spec") -> tuple[Any, Lines]:
    """Parse ``path``; bad bytes, bad YAML and duplicate keys become one-line ``SpecError``s."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"cannot read {what}: not UTF-8 text (byte {exc.start})", file=file) from exc
    except OSError as exc:
        raise SpecError(f"cannot read {what}: {exc.strerror}", file=file) from exc
    try:
        loader = yaml.SafeLoader(text)  # parse once: the node tree gives lines, then data
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        mark = getattr(exc, "problem_mark", None)
        context = getattr(exc, "context_mark", None)
        n_lines = text.count("\n") + 1
        if context is not None and (mark is None or mark.line + 1 >= n_lines):
            mark = context  # the stream ended: point at what was left open
        line = mark.line + 1 if mark is not None else None
        raise SpecError(f"malformed YAML: {problem}", file=file, line=line) from exc
    lines: Lines = {}
    if node is not None:
        _node_lines(node, (), lines, file)
    return data, lines
