"""The commands the README shows run, and the figures it quotes match a fresh run (issue 16).

Every ``.venv/bin/polyfleet ...`` line of the README's ``sh`` blocks (backslash
continuations joined, trailing comments dropped) runs in order, in-process, in a
temporary directory that sees the repository's ``examples/`` and ``tests/`` (so
``plan.json`` written by one line is read by the next), and must exit 0.  ``serve`` runs
a server until stopped and ``usage`` reads the ledger ``serve`` writes: both are left to
tests/test_gateway_*.py, which run them against real processes.  The two sweeps
(``heavy``, about 20 s each) run with ``POLYFLEET_README_ALL=1``; every line is parsed either way.
The deal example's line runs with ``--format json`` so that the expected costs the README
quotes for its answer are checked against that run.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest

from conftest import ROOT
from polyfleet.cli._terminal import set_wide

README = ROOT / "README.md"
NEEDS_A_SERVER = {"serve", "usage"}
#: lines left to POLYFLEET_README_ALL=1: the frontier sweep (18.8 s on 2 quiet cores) and the
#: deal example's break-even sweep (21.3 s); each is covered by its own tests
#: (tests/test_frontier.py, tests/test_deals.py).  Every other line runs here (about 45 s in
#: all: the frontier-lab plans and what reads their plan.json 7 s, the deal example 17 s,
#: the report with --risk --frontier 12 s).  Every line is still parsed by click below.
RUN_ALL = os.environ.get("POLYFLEET_README_ALL") == "1"


def heavy(args: list[str]) -> bool:
    return args[0] == "frontier" or (args[0] == "deal" and any(a.startswith("--sweep") for a in args))


def readme_commands() -> list[list[str]]:
    """The README's ``.venv/bin/polyfleet`` command lines, as argument lists, in order."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip()
            if not line.startswith(".venv/bin/polyfleet "):
                continue
            args = shlex.split(line, comments=True)[1:]
            commands.append(args)
    return commands


def test_readme_shows_the_commands():
    commands = readme_commands()
    assert len(commands) >= 20
    firsts = {c[0] for c in commands}
    assert {"plan", "perf", "catalog", "export", "risk", "frontier", "serve", "usage"} <= firsts


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("readme")
    for name in ("examples", "tests"):
        (d / name).symlink_to(ROOT / name)
    return d


def _run(args: list[str], cwd: Path):
    from click.testing import CliRunner

    from polyfleet.cli import main

    old = Path.cwd()
    os.chdir(cwd)
    try:
        set_wide(False)
        return CliRunner().invoke(main, args, catch_exceptions=False)
    finally:
        os.chdir(old)


def test_every_readme_command_parses():
    """Each line names real commands and options with valid values (click parses it)."""
    import click

    from polyfleet.cli import main

    for args in readme_commands():
        command: click.Command = main
        ctx = main.make_context("polyfleet", list(args))
        rest = ctx.protected_args + ctx.args
        while isinstance(command, click.Group) and rest:
            name, sub, rest = command.resolve_command(ctx, rest)
            assert sub is not None, args
            command = sub
            ctx = sub.make_context(name or "", list(rest), parent=ctx)
            rest = getattr(ctx, "protected_args", []) + ctx.args
        assert not rest, f"polyfleet {shlex.join(args)}: unexpected {rest}"


#: the tour's line whose answer the README's "The answer (a run on the catalog ..." paragraph
#: quotes; it runs once, with ``--format json`` added, so its figures can be checked (the
#: table form of ``deal`` is covered by tests/test_deals.py)
DEAL_EXAMPLE = ["deal", "examples/five-year-deal.yaml"]


@pytest.fixture(scope="module")
def readme_runs(workdir) -> dict:
    """Every README line run once, in order: the failures and the deal example's JSON report."""
    failures, deal = [], None
    for args in readme_commands():
        if args[0] in NEEDS_A_SERVER or (heavy(args) and not RUN_ALL):
            continue
        if args == DEAL_EXAMPLE:
            args = [*args, "--format", "json"]
        result = _run(args, workdir)
        if result.exit_code != 0:
            failures.append(f"polyfleet {shlex.join(args)}: exit {result.exit_code}: {result.output[-400:]}")
        elif args[:2] == DEAL_EXAMPLE:
            deal = json.loads(result.output)
    return {"failures": failures, "deal": deal}


def test_every_readme_command_exits_0(workdir, readme_runs):
    failures = readme_runs["failures"]
    assert not failures, "\n".join(failures)
    # what the tour's lines wrote is there for the lines after them
    written = ["calibration.yaml", "skypilot-offers.csv", "perf.png"]
    written += ["task.yaml", "routes.yaml", "report.html"]
    assert json.loads((workdir / "plan.json").read_text())["status"] in ("optimal", "feasible")
    if RUN_ALL:
        written += ["frontier.png"]
    for name in written:
        assert (workdir / name).stat().st_size > 0, name


def test_readme_catalog_counts_match_the_bundled_catalog():
    """The README's counts of accelerators, offers, providers, api offers and model cards."""
    from polyfleet.catalog.io import load_bundled

    text = README.read_text(encoding="utf-8")
    match = re.search(
        r"holds \w+ CSVs.*?(\d+) accelerators.*?(\d+) offers from (\d+)\s+providers.*?"
        r"(\d+) api offers.*?(\d+) model cards",
        text,
        flags=re.S,
    )
    assert match, "the README's catalog sentence moved"
    cat = load_bundled()
    shown = tuple(int(g) for g in match.groups())
    actual = (
        len(cat.accelerators),
        len(cat.offers),
        len({o.provider for o in cat.offers.values()}),
        len(cat.api_offers),
        len(cat.models),
    )
    assert shown == actual


def test_readme_deal_answer_matches_a_fresh_run(readme_runs):
    """The README's expected five-year cost of the recommended deal and of no deal ($M, one
    decimal) are those of a fresh ``polyfleet deal examples/five-year-deal.yaml`` run."""
    report = readme_runs["deal"]
    assert report is not None, "the README no longer runs `polyfleet deal examples/five-year-deal.yaml`"
    text = README.read_text(encoding="utf-8")
    match = re.search(
        r"The answer \(a run on the catalog.*?cost\s+\$(\d+\.\d)M\s+expected\s+against\s+"
        r"\$(\d+\.\d)M\s+with\s+no\s+deal",
        text,
        flags=re.S,
    )
    assert match, "the README's deal answer sentence moved"
    expected = {a["alternative"]: a["expected_usd"] for a in report["alternatives"]}
    shown = (float(match[1]), float(match[2]))
    assert shown == (round(expected["recommended"] / 1e6, 1), round(expected["no deal"] / 1e6, 1))
