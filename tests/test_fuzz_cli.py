"""Fuzz: every command on a generated corpus of broken inputs and flags (issue 16).

A few hundred cases, generated with a fixed seed: specs with one field mutated (wrong
types, NaN/inf/absurd numbers, unknown ids, missing or unknown keys), text-level damage
(truncation, stray bytes), hostile files (empty, binary, UTF-16, an alias bomb, deep
nesting), plan JSON mutated or cut short, and random flag values.  Each runs in-process
(click's CliRunner) and fails the test on a traceback, a run over ``HANG_S`` seconds, or
an exit code other than 0 (done), 1 (infeasible) or 2 (bad input).  Bad input must also
be one line on stderr.
"""

from __future__ import annotations

import copy
import json
import math
import random
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from conftest import EXAMPLES
from polyfleet.cli import main

HANG_S = 10
SEED = 16

BASE_SPEC: dict[str, Any] = {
    "horizon_months": 1,
    "policy": {"max_share": {"provider": 0.8}, "survive_provider_loss": 0.3, "budget_usd": 200000},
    "offers": [
        {"id": "own-h100", "provider": "own", "region": "home", "accelerator": "nvidia-h100-sxm",
         "term": "reserved-1y", "chips_per_instance": 8, "usd_per_chip_hour": 1.5,
         "available_instances": 4},
    ],
    "workloads": [
        {"name": "chat", "kind": "inference", "model": "llama-3.1-8b", "requests_per_s": 4,
         "input_tokens": 1000, "output_tokens": 200, "peak_to_mean": 1.5,
         "slo": {"ttft_ms": 2000, "tpot_ms": 60}, "stacks": ["cuda", "rocm"], "allow_api": True},
        {"name": "office", "kind": "api", "model": "claude-sonnet-4.5",
         "mtok_in_per_month": 100, "mtok_out_per_month": 20},
        {"name": "ft", "kind": "training", "model": "llama-3.1-8b", "tokens_b": 5,
         "deadline_days": 20, "stacks": ["cuda"]},
    ],
}  # fmt: skip

BAD_NUMBERS: list[Any] = [0, -1, -0.5, 1e308, -1e308, math.nan, math.inf, -math.inf, 1e-320, 2**70, True]
BAD_VALUES: list[Any] = ["", "abc", None, [], {}, [1, 2], {"x": 1}, "llama-3.1-7b", "x" * 300, "ü…→"]


def _leaves(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _leaves(value, (*path, index))
    if path:
        yield path, data


def _set(data: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> None:
    for part in path[:-1]:
        data = data[part]
    if delete and isinstance(data, dict):
        del data[path[-1]]
    else:
        data[path[-1]] = value


def _mutants(base: dict[str, Any], rng: random.Random, n: int) -> list[str]:
    """``n`` YAML texts, each ``base`` with one leaf replaced, deleted or joined by a stranger."""
    leaves = list(_leaves(base))
    out = []
    for _ in range(n):
        data = copy.deepcopy(base)
        path, value = rng.choice(leaves)
        op = rng.random()
        if op < 0.1:
            _set(data, path, None, delete=True)
        elif op < 0.15 and isinstance(value, dict):
            value = dict(value, zzz_unknown=1)
            _set(data, path, value)
        elif op < 0.6 and isinstance(value, int | float):
            _set(data, path, rng.choice(BAD_NUMBERS))
        else:
            _set(data, path, rng.choice(BAD_NUMBERS + BAD_VALUES))
        out.append(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return out


def _damaged(text: str, rng: random.Random, n: int) -> list[bytes]:
    """Text-level damage: cut short, stray bytes, a line repeated, quotes and colons dropped."""
    raw = text.encode("utf-8")
    out = []
    for _ in range(n):
        cut = rng.randrange(1, len(raw))
        op = rng.randrange(5)
        if op == 0:
            out.append(raw[:cut])
        elif op == 1:
            out.append(raw[:cut] + bytes(rng.randrange(256) for _ in range(8)) + raw[cut:])
        elif op == 2:
            lines = raw.splitlines(keepends=True)
            i = rng.randrange(len(lines))
            out.append(b"".join(lines[: i + 1] + lines[i:]))
        elif op == 3:
            out.append(raw.replace(b":", b"", 1 + rng.randrange(3)))
        else:
            out.append(raw[:cut] + b"\t{[&x *y !!python/object:os.system '" + raw[cut:])
    return out


HOSTILE: dict[str, bytes] = {
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "utf16": "workloads: []\n".encode("utf-16"),
    "bomb": (
        b'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
        + b"".join(
            f"{k}: &{k} [{', '.join(['*' + p] * 9)}]\n".encode()
            for p, k in zip("abcdefg", "bcdefgh", strict=True)
        )
    ),
    "deep_flow": b"workloads: " + b"[" * 3000 + b"]" * 3000 + b"\n",
    "deep_block": "".join("  " * i + f"k{i}:\n" for i in range(400)).encode(),
    "scalar": b"just a string\n",
    "list": b"- 1\n- 2\n",
    "python_tag": b"!!python/object/apply:os.system ['echo hi']\n",
    "latin1": "workloads: [{name: caf\xe9}]\n".encode("latin-1"),
}


class Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise Hang(f"no answer within {HANG_S} s")


def _invoke(args: list[str]) -> tuple[int, str, str, BaseException | None]:
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        runner = CliRunner()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        result = runner.invoke(main, args, catch_exceptions=True)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    exc = result.exception
    if isinstance(exc, SystemExit):
        exc = None
    return result.exit_code, result.stdout, result.stderr, exc


def _problem(args: list[str]) -> str | None:
    """What is wrong with running ``args``, or None."""
    code, out, err, exc = _invoke(args)
    if exc is not None:
        return f"{type(exc).__name__}: {exc}"
    if code not in (0, 1, 2):
        return f"exit {code}"
    if "Traceback" in out + err:
        return "a traceback in the output"
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        usage = any(line.startswith("Usage:") for line in lines)  # click's own usage errors
        if not usage and len(lines) != 1:
            return f"bad input must be one line on stderr, got {len(lines)}: {err[:300]!r}"
    return None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[list[str]]:
    """Every command's cases, as argument lists over files written here."""
    rng = random.Random(SEED)
    d = tmp_path_factory.mktemp("fuzz")
    files: dict[str, Path] = {}
    for name, raw in HOSTILE.items():
        files[name] = d / f"{name}.yaml"
        files[name].write_bytes(raw)
    base_text = yaml.safe_dump(BASE_SPEC, sort_keys=False)
    (d / "base.yaml").write_text(base_text)
    result = CliRunner().invoke(main, ["plan", str(d / "base.yaml"), "--format", "json", "--out",
                                       str(d / "plan.json"), "--time-limit", "5"])  # fmt: skip
    assert result.exit_code == 0, result.output
    plan_text = (d / "plan.json").read_text()
    plan = json.loads(plan_text)

    cases: list[list[str]] = []
    hostile = [str(p) for p in files.values()]
    quick = ["--time-limit", "1", "--gap", "0.05"]
    for i, text in enumerate(_mutants(BASE_SPEC, rng, 150)):
        path = d / f"m{i}.yaml"
        path.write_text(text, encoding="utf-8")
        cases.append(["plan", str(path), *quick, *(["--format", "json"] if i % 3 == 0 else [])])
    for i, raw in enumerate(_damaged(base_text, rng, 40)):
        path = d / f"t{i}.yaml"
        path.write_bytes(raw)
        cases.append(["plan", str(path), *quick])
    for f in [*hostile, str(d / "missing.yaml"), str(d)]:
        cases.append(["plan", f, *quick])
        cases.append(["risk", f, "--scenarios", "20"])
        cases.append(["export", "skypilot", f, "--workload", "ft"])
        cases.append(["frontier", f, "--provider-caps", "1", "--survival", "0"])
        cases.append(["deal", f])
        cases.append(["perf", "calibrate", f, "--out", str(d / "cal.yaml")])
        cases.append(["usage", "--routes", f])
        cases.append(["serve", f, "--port", "1"])
    for f in ["empty", "binary", "bomb", "deep_flow"]:
        cases.append(["report", str(files[f]), "--out", str(d / "r.html")])

    # plan JSON: fields mutated, cut short, and handed to risk and export
    for i, text in enumerate(_mutants(plan, rng, 40)):
        path = d / f"p{i}.json"
        path.write_text(json.dumps(yaml.safe_load(text)), encoding="utf-8")
        cases.append(["risk", str(path), "--scenarios", "20"])
        cases.append(["export", "skypilot", str(path), "--workload", "ft"])
    for i in range(10):
        path = d / f"cut{i}.json"
        path.write_text(plan_text[: rng.randrange(1, len(plan_text))], encoding="utf-8")
        cases.append(["risk", str(path), "--scenarios", "20"])
    cases.append(["risk", str(d / "plan.json"), "--scenarios", "20", "--month", "3"])
    cases.append(["risk", str(d / "plan.json"), "--spec", str(d / "m1.yaml"), "--scenarios", "20"])
    cases.append(["export", "skypilot", str(d / "plan.json"), "--workload", "fx"])
    cases.append(["export", "skypilot", str(d / "plan.json"), "--workload", "chat"])

    # flags: every numeric flag of the quick commands, with hostile values
    numbers = ["nan", "inf", "-inf", "0", "-1", "1e308", "1e-320", "99999999999999999999", "abc", ""]
    for _ in range(60):
        flag = rng.choice(["--input-tokens", "--output-tokens", "--tpot-ms", "--ttft-ms", "--max-chips"])
        acc = rng.choice([[], ["--accelerator", "nvidia-h100-sxm"], ["--accelerator", "nvidia-h10"]])
        model = rng.choice(["llama-3.1-8b", "llama-3.1-8", "mixtral-8x7b"])
        cases.append(["perf", "--model", model, *acc, flag, rng.choice(numbers)])
    for _ in range(20):
        flag = rng.choice(["--input-tokens", "--output-tokens", "--tpot-ms"])
        model = rng.choice(["llama-3.1-8b", "llama-3.1-7b"])
        cases.append(["catalog", "paths", model, flag, rng.choice(numbers)])
    for _ in range(20):
        request = rng.choice(["H100:8", "H100", "H1000:8", "H100:0", "H100:x", ":8", "H100:1e9", ""])
        flag = rng.choice(["--hours", "--nodes"])
        cases.append(["catalog", "cheapest", request, flag, rng.choice(numbers)])
    for what in ("accelerators", "offers", "models", "api-offers"):
        cases.append(["catalog", what, "--vendor", "nvidai", "--provider", "awz", "--stack", "cudaa"])
    # catalog CSVs named by a spec, and measurement CSVs: unknown ids, missing columns, junk
    header = "id,provider,region,accelerator,term,chips_per_instance,usd_per_chip_hour,available_instances"
    offers_csvs = {
        "unknown-acc": f"{header},source,as_of\nx1,own,r,nvidia-h1000,on-demand,8,1.0,4,me,2026-01\n",
        "missing-cols": "id,provider,region\nx1,own,r\n",
        "header-only": header + "\n",
        "bad-number": f"{header},source,as_of\nx1,own,r,nvidia-h100-sxm,on-demand,8,nan,4,me,2026-01\n",
        "junk": "\x00\x01\x02,\n\xff",
    }
    for name, body in offers_csvs.items():
        (d / f"{name}-offers.csv").write_text(body, encoding="utf-8", errors="surrogateescape")
        spec = dict(BASE_SPEC, catalog=["bundled", f"{name}-offers.csv"])
        (d / f"cat-{name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
        cases.append(["plan", str(d / f"cat-{name}.yaml"), *quick])
        (d / f"{name}-meas.csv").write_text(body.replace("offers", "x"), encoding="utf-8")
        cases.append(["perf", "calibrate", str(d / f"{name}-meas.csv"), "--out", str(d / "cal.yaml")])
        cases.append(["catalog", "cheapest", "H100:8", "--catalog", str(d / f"{name}-offers.csv")])
    (d / "empty-dir").mkdir()
    cases.append(["catalog", "import-skypilot", str(d / "empty-dir")])
    for grid in ("nan", "inf", "0,2", "a,b", "", "0.5,,1"):
        cases.append(["frontier", str(d / "base.yaml"), "--provider-caps", grid, "--survival", "0"])
    (d / "notdb.db").write_bytes(b"not a database\n" * 20)
    sqlite3.connect(d / "other.db").close()
    for url in (f"sqlite:///{d / 'notdb.db'}", f"sqlite:///{d}", "mysql://x", "", f"sqlite:///{d}/none.db"):
        cases.append(["usage", "--ledger", url])
    for out in (str(d), str(d / "no" / "plan.json"), str(files["empty"]) + "/x.json"):
        cases.append(["plan", str(d / "base.yaml"), "--out", out])
    return cases


def test_corpus_is_a_few_hundred_cases_over_every_command(corpus):
    assert len(corpus) >= 300
    ctx_commands = {c[0] for c in corpus}
    listed = set(main.list_commands(click.Context(main)))
    assert listed - ctx_commands == set(), f"commands no case runs: {sorted(listed - ctx_commands)}"


def test_no_traceback_no_hang_exit_0_1_2(corpus):
    problems = []
    for args in corpus:
        problem = _problem(args)
        if problem:
            problems.append(f"polyfleet {' '.join(args)}\n    -> {problem}")
    assert not problems, f"{len(problems)} of {len(corpus)} cases:\n" + "\n".join(problems[:20])


@pytest.mark.parametrize("name", ["bomb", "deep_flow", "deep_block"])
def test_hostile_yaml_is_refused_within_a_second(name, tmp_path):
    import time

    from polyfleet.errors import SpecError
    from polyfleet.yamlio import read_yaml

    path = tmp_path / "x.yaml"
    path.write_bytes(HOSTILE[name])
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        read_yaml(path)
    assert time.perf_counter() - start < 1.0
    assert ("aliases" if name == "bomb" else "nested more than 64 levels") in str(info.value)


def test_truncated_plan_json_names_the_line(tmp_path):
    plan = tmp_path / "plan.json"
    plan.write_text('{\n  "status": "optimal",\n  "workloads": [\n    {"name": "ch')
    code, _, err, exc = _invoke(["risk", str(plan)])
    assert exc is None and code == 2
    assert err == f"polyfleet: {plan}:4: truncated JSON at line 4\n"


def test_non_finite_flag_is_one_line(tmp_path):
    code, _, err, _ = _invoke(["perf", "--model", "llama-3.1-8b", "--tpot-ms", "nan"])
    assert (code, err) == (2, "polyfleet: --tpot-ms: expected a finite number, got nan\n")
    code, _, err, _ = _invoke(["catalog", "cheapest", "H100:8", "--hours", "inf"])
    assert (code, err) == (2, "polyfleet: --hours: expected a finite number, got inf\n")


def test_a_ledger_that_is_not_a_database(tmp_path):
    path = tmp_path / "usage.db"
    path.write_bytes(b"junk" * 100)
    code, _, err, exc = _invoke(["usage", "--ledger", f"sqlite:///{path}"])
    assert exc is None and code == 2
    assert err.startswith(f"polyfleet: sqlite:///{path}: cannot open the ledger") and err.count("\n") == 1


def test_examples_still_plan(tmp_path):
    """The corpus' base is sane: the fuzz is not all exit-2 noise."""
    code, out, err, exc = _invoke(["plan", str(EXAMPLES / "startup.yaml"), "--format", "json"])
    assert (code, exc) == (0, None), err
    assert json.loads(out)["status"] in ("optimal", "feasible")


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            "egress:\n  - {provider: nebuis, usd_per_gb: 0.05}\n",
            ":4: egress[0].provider: unknown provider 'nebuis'; did you mean 'nebius'?",
        ),
        (
            "risk:\n  chip_delay_probability_by_accelerator: {nvidia-h10: 0.2}\n",
            ":4: risk.chip_delay_probability_by_accelerator.nvidia-h10: unknown accelerator 'nvidia-h10';"
            " did you mean 'nvidia-h100",
        ),
        ("", None),
    ],
)
def test_unknown_names_in_egress_and_risk_say_did_you_mean(tmp_path, section, expected):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "workloads:\n  - {name: svc, kind: inference, model: llama-3.1-8b, requests_per_s: 2,"
        " input_tokens: 500, output_tokens: 100, allow_api: false}\n" + section
    )
    code, _, err, exc = _invoke(["plan", str(spec), "--time-limit", "5"])
    assert exc is None
    if expected is None:
        assert code == 0, err
    else:
        assert code == 2 and err.startswith(f"polyfleet: {spec}{expected}") and err.count("\n") == 1


def test_a_calibration_for_an_unknown_accelerator_says_did_you_mean(tmp_path):
    bundled = (Path(__file__).resolve().parents[1] / "src/polyfleet/perf/data/calibration.yaml").read_text()
    first = next(line for line in bundled.splitlines() if line.startswith("  ") and line.endswith(":"))
    (tmp_path / "cal.yaml").write_text(bundled.replace(first, first.replace("-", "_", 1), 1))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "workloads:\n  - {name: svc, kind: inference, model: llama-3.1-8b, requests_per_s: 2,"
        " input_tokens: 500, output_tokens: 100, allow_api: false}\ncalibration: cal.yaml\n"
    )
    code, _, err, exc = _invoke(["plan", str(spec)])
    assert exc is None and code == 2
    wrong = first.strip().rstrip(":").replace("-", "_", 1)
    assert err.startswith(f"polyfleet: {spec}:3: calibration: cal.yaml: unknown accelerator {wrong!r}")
    assert "did you mean" in err
