"""Bad-input messages stay one short line whatever the input echoes back (session-8 fuzz)."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from polyfleet.cli._common import MAX_MESSAGE_CHARS


def _invoke(args: list[str]) -> tuple[int, str]:
    """Exit code and stderr of ``polyfleet ARGS`` (exceptions propagate: a traceback fails)."""
    result = run_cli(*args)
    return result.exit_code, result.stderr


def _spec(tmp_path, model: str):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "workloads:\n  - {name: svc, kind: inference, model: " + json.dumps(model) + ", requests_per_s: 1,"
        " input_tokens: 100, output_tokens: 10}\n"
    )
    return spec


def _calibration_points(tmp_path, tp: str):
    src = tmp_path / "m.jsonl"
    point = {"model": "llama-3.1-8b", "weight_dtype": "bf16", "accelerator": "nvidia-h100-sxm",
             "tensor_parallel": tp, "input_tokens": 100, "output_tokens": 100,
             "output_tokens_per_s_whole_tp_group": 1000}  # fmt: skip
    src.write_text(json.dumps(point) + "\n")
    return src


@pytest.mark.parametrize(
    ("make", "args", "head"),
    [
        (_spec, ["plan", "{src}"], ":2: workloads[0].model: unknown model 'xxxxx"),
        (_calibration_points, ["perf", "calibrate", "{src}", "--out", "{dir}/c.yaml"],
         ":1: tensor_parallel: expected an integer, got 'xxxxx"),
    ],
)  # fmt: skip
def test_a_5000_character_value_is_cut_in_the_middle(tmp_path, make, args, head):
    """The value was echoed whole: a 5,000-character line."""
    src = make(tmp_path, "x" * 5000)
    code, err = _invoke([a.format(src=src, dir=tmp_path) for a in args])
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"polyfleet: {src}{head}")
    assert len(err) <= len("polyfleet: \n") + MAX_MESSAGE_CHARS + 40
    assert " characters ...] xxxx" in err


def test_a_file_name_with_a_line_break_stays_on_one_line(tmp_path):
    """The name was printed as it is: two lines on stderr."""
    code, err = _invoke(["plan", tmp_path / "a\nb.yaml"])
    assert code == 2
    assert err == f"polyfleet: {tmp_path}/a b.yaml: cannot read spec: No such file or directory\n"
