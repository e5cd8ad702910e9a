"""``polyfleet perf`` flags the session-8 mutation fuzz broke (each in-process, well under a second)."""

from __future__ import annotations

import json

from conftest import run_cli


def _invoke(args: list[str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of ``polyfleet ARGS`` (exceptions propagate: a traceback fails)."""
    result = run_cli(*args)
    return result.exit_code, result.stdout, result.stderr


def test_a_request_whose_mean_live_kv_outgrows_the_room_is_infeasible_not_a_crash():
    """--output-cv 5 makes a request's mean live KV output*(1+25)/2 = 13x its output: more than
    its full context, which sized the layout.  The idealised batch came out 0 and the
    requests per second divided by it (a ZeroDivisionError traceback)."""
    args = ["perf", "--model", "mixtral-8x7b", "--accelerator", "nvidia-h100-sxm", "--tp", "8",
            "--output-tokens", "1000000", "--output-cv", "5", "--format", "json"]  # fmt: skip
    code, out, err = _invoke(args)
    assert code == 1
    reason = json.loads(out)["reason"]
    assert reason.startswith("memory: the KV memory left after the weights holds no request (")
    assert err == f"polyfleet: mixtral-8x7b on nvidia-h100-sxm: {reason}\n"


def test_perf_configs_that_exits_1_writes_no_chart(tmp_path):
    """No configuration meets the SLO: exit 1, and the chart path is not touched (README: a run
    that fails never touches the output path); it was written before the exit."""
    chart = tmp_path / "front.png"
    args = ["perf", "configs", "--model", "llama-3.1-8b", "--accelerator", "nvidia-l4",
            "--tpot-ms", "0.001", "--chart", chart]  # fmt: skip
    code, _, err = _invoke(args)
    assert code == 1 and err.startswith("polyfleet: no configuration meets the SLO (")
    assert not chart.exists()
