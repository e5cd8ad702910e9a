"""``polyfleet report`` in a real headless Chromium: the page loads with no console output,
every chart renders (the screenshot is not blank where each chart stands), and a click on
a column header sorts the allocations table.

One Chromium run takes the screenshot and dumps the DOM after the page settled
(``--virtual-time-budget``).  The page itself records any error or ``console.error`` on
``<body data-errors>``, marks each chart ``data-rendered`` with its box in page pixels
(``data-box``), and sets ``data-charts-done`` when every chart resolved; Chromium's log
(``--enable-logging=stderr``) must hold no ``CONSOLE`` line at all (Vega's warnings
included).  Network is pointed at a closed port: the page needs none.

Skipped without Chromium, except under ``POLYFLEET_REQUIRE_SERVICES=1`` (CI), where a
missing Chromium fails.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from polyfleet.plan import plan
from polyfleet.report.html import collect, render
from polyfleet.spec import build_spec
from test_report_html import spec_data

WIDTH, HEIGHT = 1280, 5000


def chromium() -> str:
    """The Chromium binary, or skip (fail when services are required)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium not found (Debian: apt-get install chromium)"
        if os.environ.get("POLYFLEET_REQUIRE_SERVICES") == "1":
            pytest.fail(message + "; POLYFLEET_REQUIRE_SERVICES=1 requires it")
        pytest.skip(message)
    return found


def test_report_renders_in_chromium(tmp_path: Path) -> None:
    from PIL import Image

    binary = chromium()
    spec = build_spec(spec_data())
    plan_dict = plan(spec).to_dict()
    monthly = plan(build_spec(spec_data(horizon_months=2, periods="monthly"))).to_dict()
    figures = collect(plan_dict, spec, risk_scenarios=200, frontier=True, monthly_plan=monthly)
    page = tmp_path / "report.html"
    # the test's copy clicks the $/month header once and records the order the rows end in
    click = (
        "<script>document.querySelector('th[data-key=usd_per_month]').click();"
        "document.body.setAttribute('data-sorted',Array.prototype.map.call("
        "document.querySelectorAll('#allocations tbody td[data-key=usd_per_month]'),"
        "function(td){return td.getAttribute('data-value');}).join(' '));</script>"
    )
    head, _, tail = render(figures, "browser test").rpartition("</body>")  # the bundle has "</body>" too
    page.write_text(head + click + "</body>" + tail, encoding="utf-8")
    expected = {"spend", "survival", "frontier", "risk", "monthly", "accelerators"}
    assert set(re.findall(r'<div class="chart" id="chart-(\w+)"', page.read_text())) == expected

    shot = tmp_path / "shot.png"
    run = subprocess.run(
        [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--window-size={WIDTH},{HEIGHT}",
            "--virtual-time-budget=20000",
            "--enable-logging=stderr",
            "--v=0",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    dom = run.stdout
    body = re.search(r"<body([^>]*)>\s*<h1>", dom)  # the page's body: the bundle's text has "<body>" too
    assert body is not None
    assert "data-errors" not in body.group(1), body.group(1)
    assert f'data-charts-done="{len(expected)}"' in body.group(1), body.group(1)
    sorted_usd = re.search(r'data-sorted="([^"]*)"', body.group(1))
    assert sorted_usd is not None
    values = [float(v) for v in sorted_usd.group(1).split()]
    assert values == sorted(a["usd"] for w in plan_dict["workloads"] for a in w["allocations"])
    assert values != [a["usd"] for w in plan_dict["workloads"] for a in w["allocations"]]  # it moved

    image = Image.open(shot).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    for name in sorted(expected):
        div = re.search(rf'<div([^>]*\bid="chart-{name}"[^>]*)>', dom)
        assert div is not None and 'data-rendered="1"' in div.group(1), name
        box = re.search(r'data-box="(\d+),(\d+),(\d+),(\d+)"', div.group(1))
        assert box is not None, name
        left, top, width, height = map(int, box.groups())
        assert width > 100 and height > 50 and top + height <= HEIGHT, (name, box.groups())
        region = image.crop((left, top, left + width, top + height))
        pixels = np.asarray(region).reshape(-1, 3)
        inked = float((pixels.min(axis=1) < 200).mean())
        colours = len(np.unique(pixels, axis=0))
        assert inked > 0.01, f"chart {name} is blank: {inked:.2%} inked"
        assert colours > 8, f"chart {name} has {colours} colours"
