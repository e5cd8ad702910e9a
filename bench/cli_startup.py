"""How fast ``polyfleet --version`` answers, side by side with a bare interpreter and an eager load.

Issue 16 asks for ``--version`` under 0.3 s.  Three commands, each run ``--repeat`` times
in fresh processes, best and median wall time:

* ``python -c pass``: the interpreter alone (the floor);
* ``polyfleet --version``: the console script as a user runs it (command modules load lazily);
* ``eager``: the same plus importing every command module (what ``--version`` cost before
  the lazy group: the planner, numpy/scipy/HiGHS, pydantic, uvicorn, matplotlib).

    .venv/bin/python bench/cli_startup.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time(cmd: list[str], repeat: int) -> tuple[float, float, float]:
    """Best and median wall seconds, median CPU seconds (wall is noisy on a shared machine)."""
    walls, cpus = [], []
    for _ in range(repeat):
        cpu, start = _cpu(), time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        walls.append(time.perf_counter() - start)
        cpus.append(_cpu() - cpu)
    return min(walls), statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    exe = sys.executable
    script = str(Path(exe).with_name("polyfleet"))
    eager = (
        "import click, polyfleet.cli as c; ctx = click.Context(c.main); "
        "[c.main.get_command(ctx, n) for n in c.main.list_commands(ctx)]"
    )
    rows = [
        ("python -c pass", [exe, "-c", "pass"]),
        ("polyfleet --version", [script, "--version"]),
        ("eager: every command module", [exe, "-c", eager]),
    ]
    print(f"{'command':<30} {'best s':>8} {'median s':>9} {'CPU s':>7}   ({args.repeat} runs each)")
    for name, cmd in rows:
        best, median, cpu = _time(cmd, args.repeat)
        print(f"{name:<30} {best:>8.3f} {median:>9.3f} {cpu:>7.3f}")


if __name__ == "__main__":
    main()
