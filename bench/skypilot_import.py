"""Time ``import_skypilot`` on the shared SkyPilot catalog copy (target: under 2 s).

Run from the repository root::

    .venv/bin/python bench/skypilot_import.py [DIR] [--repeat 5]

DIR defaults to /work/shared/data/skypilot-catalog, falling back to tests/data/skypilot.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from polyfleet.catalog.io import load_bundled
from polyfleet.catalog.skypilot import import_skypilot

DEFAULTS = (Path("/work/shared/data/skypilot-catalog"), Path(__file__).parents[1] / "tests/data/skypilot")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", type=Path)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    directory = args.dir or next(d for d in DEFAULTS if d.is_dir())
    accelerators = load_bundled().accelerators
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = import_skypilot(directory, accelerators)
        times.append(time.perf_counter() - start)
    best = min(times)
    print(f"import_skypilot({directory}): {len(result.offers)} offers, {len(result.skipped)} skipped")
    print(f"best of {args.repeat}: {best * 1000:.1f} ms; worst {max(times) * 1000:.1f} ms")
    print("OK: under 2 s" if max(times) < 2.0 else "SLOW: over 2 s")


if __name__ == "__main__":
    main()
