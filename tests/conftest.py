"""Shared fixtures: write a spec to a temporary file and run the CLI on it."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner, Result

from polyfleet.catalog.models import Accelerator
from polyfleet.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

# one inference service on the bundled catalog: the base of many spec-error and field tests
SVC = """\
workloads:
  - name: svc
    kind: inference
    model: llama-3.1-8b
    requests_per_s: 5
    input_tokens: 1000
    output_tokens: 200
"""


def write_spec(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    """Write dedented ``text`` to ``tmp_path/name`` and return the path."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def run_cli(*args: str) -> Result:
    """Invoke ``polyfleet`` in-process with stdout and stderr kept apart."""
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        runner = CliRunner()  # click >= 8.2 always keeps stderr apart
    return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def spec_file(tmp_path: Path) -> Callable[..., Path]:
    """``spec_file(text, name=...)``: a spec written under this test's tmp_path."""

    def make(text: str, name: str = "spec.yaml") -> Path:
        return write_spec(tmp_path, text, name)

    return make


@pytest.fixture
def cli() -> Callable[..., Result]:
    """``cli(*args)``: run the CLI in-process, returning click's Result."""
    return run_cli


def toy_acc(**over: object) -> Accelerator:
    """100 TFLOPS bf16, 200 fp8, 10 GB, 1 TB/s."""
    fields: dict = {
        "id": "toy",
        "vendor": "nvidia",
        "bf16_tflops": 100.0,
        "fp8_tflops": 200.0,
        "hbm_gb": 10.0,
        "hbm_tbps": 1.0,
        "stack": "cuda",
    }
    fields.update(over)
    return Accelerator(**fields)


def load_bench(name: str) -> ModuleType:
    """``bench/<name>.py`` as a module (registered in ``sys.modules``: its dataclasses need it)."""
    path = Path(__file__).resolve().parents[1] / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
