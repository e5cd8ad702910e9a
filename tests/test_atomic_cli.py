"""Every writer in the CLI goes through ``polyfleet.io.write_output`` (issue 20).

Three checks, so a new writer cannot bypass the one function:
1. the commands are walked (click introspection of ``polyfleet.cli.main``): every path
   option that names a file to write is an ``OutputPath``, every other path option is a
   declared input;
2. each ``OutputPath`` option found is run for real with a spy on ``write_output`` that
   must see the path (a new output option without a run here fails the walk);
3. no module under ``src/polyfleet`` but ``io/atomic.py`` opens a file for writing,
   renames over a path or saves a chart to a path.
"""

from __future__ import annotations

import ast
import json
import os
import stat
from pathlib import Path

import click
import pytest

from conftest import EXAMPLES, run_cli
from polyfleet.cli import main
from polyfleet.cli._common import OutputPath
from polyfleet.io import atomic

SRC = Path(__file__).resolve().parents[1] / "src" / "polyfleet"
DATA = Path(__file__).resolve().parent / "data"

#: (command path, parameter name) of path options that are read, not written (a path option
#: whose name or help says out/write/chart/save must be listed here or be an OutputPath).
INPUTS = {
    ("plan", "spec_path"),
    ("plan", "backends_map"),
    ("export skypilot", "plan_path"),
    ("export skypilot", "spec_path"),
    ("risk", "plan_path"),
    ("risk", "spec_path"),
    ("frontier", "spec_path"),
    ("perf calibrate", "measurements"),
    ("catalog import-skypilot", "directory"),
    ("catalog import-skypilot", "catalog_dir"),  # a folder; --write replaces its offers.csv via _write_atomic
    ("usage", "routes_path"),
    ("serve", "routes_path"),
    ("report", "source"),
    ("report", "spec_path"),
    ("deal", "spec_path"),
}

#: output options checked structurally only (OutputPath + the AST check below), because one
#: real run takes tens of seconds on 2 cores: their own tests write through the same _emit /
#: _write_atomic helpers.
STRUCTURAL_ONLY = {("report", "out"), ("deal", "out")}


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # loads the lazily imported command modules
        command = group.get_command(ctx, name)
        assert command is not None
        path = f"{prefix}{name}"
        out.append((path, command))
        if isinstance(command, click.Group):
            out.extend(_commands(command, f"{path} "))
    return out


def _path_params() -> list[tuple[str, click.Parameter]]:
    return [
        (path, param)
        for path, command in _commands(main)
        for param in command.params
        if isinstance(param.type, click.Path)
    ]


def _looks_like_output(param: click.Parameter) -> bool:
    words = f"{param.name} {getattr(param, 'help', '') or ''}".lower()
    return any(w in words for w in ("out", "write", "chart", "save"))


def test_every_path_option_is_an_output_or_a_declared_input():
    outputs, inputs = [], []
    for path, param in _path_params():
        if isinstance(param.type, OutputPath):
            outputs.append((path, param.name))
        else:
            inputs.append((path, param.name))
            assert not _looks_like_output(param) or (path, param.name) in INPUTS, (
                f"`polyfleet {path}` {param.name}: a path option that writes must be "
                "type=OutputPath() (cli/_common.py) and write through polyfleet.io.write_output"
            )
    assert len(outputs) >= 10  # plan --out/--routes, risk, frontier x2, perf x2, export, usage, import
    assert set(inputs) >= INPUTS - {("catalog import-skypilot", "catalog_dir")}  # the walk sees them all


TRAINING_SPEC = """\
horizon_months: 1
workloads:
  - {name: pretrain, kind: training, model: llama-3.1-8b, tokens_b: 50, deadline_days: 7, stacks: [cuda]}
  - {name: chat, kind: inference, model: llama-3.1-8b, requests_per_s: 2,
     input_tokens: 1000, output_tokens: 200, allow_api: false}
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A spec with a training job, its plan, and an empty ledger, shared by the runs below."""
    d = tmp_path_factory.mktemp("writers")
    (d / "spec.yaml").write_text(TRAINING_SPEC)
    result = run_cli("plan", d / "spec.yaml", "--format", "json", "--out", d / "plan.json")
    assert result.exit_code == 0, result.stderr
    plan = json.loads((d / "plan.json").read_text())
    offers = {a["offer"] for w in plan["workloads"] if w["kind"] == "inference" for a in w["allocations"]}
    backends = {o: {"url": "http://127.0.0.1:9001/v1", "usd_per_mtok_in": 0.2, "usd_per_mtok_out": 0.6}
                for o in sorted(offers)}  # fmt: skip
    (d / "backends.yaml").write_text(json.dumps({"models": {"chat": "llama-3.1-8b"}, "backends": backends}))
    from polyfleet.gateway.store import Ledger

    Ledger(f"sqlite:///{d / 'usage.db'}").open().close()
    return d


def _runs(d: Path) -> dict[tuple[str, str], list[str]]:
    """One real run per output option; ``OUT`` is replaced by the path to write."""
    return {
        ("plan", "out"): ["plan", str(d / "spec.yaml"), "--format", "json", "--out", "OUT"],
        ("plan", "routes_out"): [
            "plan", str(d / "spec.yaml"), "--out", str(d / "lab.txt"), "--routes", "OUT",
            "--backends", str(d / "backends.yaml"),
        ],
        ("export skypilot", "out"): [
            "export", "skypilot", str(d / "plan.json"), "--workload", "pretrain", "--out", "OUT",
        ],
        ("risk", "out"): ["risk", str(d / "plan.json"), "--scenarios", "50", "--out", "OUT"],
        ("frontier", "out"): [
            "frontier", str(d / "spec.yaml"), "--provider-caps", "1", "--survival", "0",
            "--scenarios", "20", "--out", "OUT",
        ],
        ("frontier", "chart"): [
            "frontier", str(d / "spec.yaml"), "--provider-caps", "1", "--survival", "0",
            "--scenarios", "20", "--chart", "OUT.svg",
        ],
        ("perf", "chart"): ["perf", "--model", "llama-3.1-8b", "--tpot-ms", "50", "--chart", "OUT.svg"],
        ("perf configs", "chart"): [
            "perf", "configs", "--model", "llama-3.1-8b", "--accelerator", "nvidia-h100-sxm",
            "--chart", "OUT.svg",
        ],
        ("perf calibrate", "out"): [
            "perf", "calibrate", str(EXAMPLES / "published_throughput.csv"), "--out", "OUT",
        ],
        ("catalog import-skypilot", "out"): [
            "catalog", "import-skypilot", str(DATA / "skypilot"), "--out", "OUT-offers.csv",
        ],
        ("usage", "out"): ["usage", "--ledger", f"sqlite:///{d / 'usage.db'}", "--out", "OUT"],
    }  # fmt: skip


def _output_options() -> list[tuple[str, str]]:
    return [(path, p.name or "") for path, p in _path_params() if isinstance(p.type, OutputPath)]


@pytest.mark.parametrize("option", _output_options(), ids=lambda o: f"{o[0]} {o[1]}")
def test_each_output_option_writes_through_the_one_function(option, workdir, monkeypatch):
    if option in STRUCTURAL_ONLY:
        pytest.skip("slow command: covered by the OutputPath type and the AST check")
    runs = _runs(workdir)
    assert option in runs, f"`polyfleet {option[0]}` {option[1]}: add a run for it to _runs()"
    target = workdir / f"{option[0].replace(' ', '-')}-{option[1]}"
    args = [a.replace("OUT", str(target)) for a in runs[option]]
    written = Path(next(a for a in args if a.startswith(str(target))))
    written.unlink(missing_ok=True)
    seen: list[str] = []
    real = atomic.write_output

    def spy(path, write):
        seen.append(str(path))
        return real(path, write)

    monkeypatch.setattr(atomic, "write_output", spy)
    old = os.umask(0o022)
    try:
        result = run_cli(*args)
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.stderr
    assert str(written) in seen
    assert written.stat().st_size > 0
    assert stat.S_IMODE(written.stat().st_mode) == 0o644


def test_output_to_a_directory_fails_before_the_work(tmp_path):
    """A bad --out is refused at once, one line naming the flag, the path and the reason."""
    result = run_cli("plan", EXAMPLES / "startup.yaml", "--out", tmp_path)
    assert result.exit_code == 2
    assert result.stderr == f"polyfleet: --out: cannot write {tmp_path}: is a directory\n"
    result = run_cli("plan", EXAMPLES / "startup.yaml", "--out", tmp_path / "no" / "plan.json")
    assert result.stderr.strip().endswith("no such directory") and result.exit_code == 2


def test_out_dash_is_stdout_and_messages_go_to_stderr(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("plan", EXAMPLES / "startup.yaml", "--format", "json", "--out", "-")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["status"] == "optimal"
    assert "wrote" not in result.stderr
    assert list(tmp_path.iterdir()) == []
    out = run_cli("perf", "calibrate", EXAMPLES / "published_throughput.csv", "--out", "-")
    assert out.exit_code == 0
    assert out.stdout.startswith("# polyfleet calibration") or "accelerators:" in out.stdout
    assert "median error" in out.stderr  # the table went to stderr: stdout holds only the file


def test_infeasible_plan_leaves_out_untouched(tmp_path):
    out = tmp_path / "plan.json"
    out.write_text("previous plan\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text((EXAMPLES / "startup.yaml").read_text().replace("budget_usd: 20000", "budget_usd: 1"))
    result = run_cli("plan", spec, "--format", "json", "--out", out)
    assert result.exit_code == 1
    assert out.read_text() == "previous plan\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json", "spec.yaml"]


class _Writes(ast.NodeVisitor):
    """Calls that write a file by path, outside ``polyfleet.io.atomic``."""

    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []

    def visit_Call(self, node: ast.Call) -> None:
        f = node.func
        name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
        owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
        if name in ("write_text", "write_bytes", "mkstemp", "NamedTemporaryFile", "to_csv", "copyfile"):
            self.found.append((node.lineno, name))
        elif owner in ("os", "shutil") and name in ("replace", "rename", "move", "copy", "copy2"):
            self.found.append((node.lineno, f"{owner}.{name}"))
        elif name == "open" and owner in ("", "io", "builtins"):
            mode = (
                node.args[1]
                if len(node.args) > 1
                else next((k.value for k in node.keywords if k.arg == "mode"), None)
            )
            if isinstance(mode, ast.Constant) and any(c in str(mode.value) for c in "wax+"):
                target = ast.unparse(node.args[0]) if node.args else ""
                if target != "os.devnull":
                    self.found.append((node.lineno, f"open(..., {mode.value!r})"))
        elif name == "savefig" and node.args and not isinstance(node.args[0], ast.Name):
            self.found.append((node.lineno, "savefig to a path"))
        self.generic_visit(node)


def test_no_other_code_writes_files():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path == SRC / "io" / "atomic.py":
            continue
        visitor = _Writes()
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
        offenders += [f"{path.relative_to(SRC)}:{line}: {what}" for line, what in visitor.found]
    assert not offenders, "write files through polyfleet.io.write_output: " + "; ".join(offenders)
