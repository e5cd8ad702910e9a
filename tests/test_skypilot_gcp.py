"""GCP's split pricing in SkyPilot's catalog (issue 4): GPUs plus their host VM, TPU slices.

The fixture (tests/data/skypilot-gcp, see its README) has the real file's row shapes.
Hand-computed prices first; then SkyPilot's own GCP catalog reader, run offline in a child
process on the same file, must price every offer polyfleet imports the same way.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from polyfleet.catalog.io import load_bundled
from polyfleet.catalog.skypilot import import_skypilot
from polyfleet.catalog.skypilot_gcp import tpu_slice

V8 = Path(__file__).parent / "data" / "skypilot-gcp" / "catalogs" / "v8"


@pytest.fixture(scope="module")
def gcp():
    return import_skypilot(V8, load_bundled().accelerators)


def test_a_gpu_costs_its_own_row_plus_the_cheapest_host_vm_in_its_zone(gcp) -> None:
    a100 = gcp.offers["gcp-a2-highgpu-1g-us-central1-on-demand"]
    assert a100.accelerator == "nvidia-a100-40gb" and a100.chips_per_instance == 1
    assert a100.usd_per_chip_hour == pytest.approx(2.93 + 0.73948)
    assert gcp.offers["gcp-a2-highgpu-1g-us-central1-spot"].usd_per_chip_hour == pytest.approx(1.17 + 0.36975)
    eight = gcp.offers["gcp-a2-highgpu-8g-us-central1-on-demand"]
    assert eight.usd_per_chip_hour == pytest.approx((23.47 + 5.91582) / 8)
    h100 = gcp.offers["gcp-a3-highgpu-2g-us-central1-on-demand"]
    assert h100.accelerator == "nvidia-h100-sxm"
    assert h100.usd_per_chip_hour == pytest.approx((19.6 + 2.36502) / 2)
    # L4 x1 may sit on any g2-standard size: the cheapest one in the zone (g2-standard-4)
    l4 = gcp.offers["gcp-g2-standard-4-us-central1-on-demand"]
    assert l4.usd_per_chip_hour == pytest.approx(0.56 + 0.2)
    assert "gcp-g2-standard-8-us-central1-on-demand" not in gcp.offers
    assert "host VM g2-standard-4 $0.2/h" in l4.notes


def test_a_gpu_without_a_priced_host_is_skipped_with_the_reason(gcp) -> None:
    reasons = {s.line: s.reason for s in gcp.skipped}
    # A100 in europe-west4-b: the a2 host is listed only in europe-west4-a
    assert "no priced host VM (a2-highgpu-1g) in the zone" in reasons[13]
    assert not any(o.region == "europe-west4" for o in gcp.offers.values())
    # host with no spot price: no spot offer (SkyPilot's sum is NaN too)
    assert "gcp-a3-highgpu-2g-us-east4-on-demand" in gcp.offers
    assert "gcp-a3-highgpu-2g-us-east4-spot" not in gcp.offers
    assert "no host VM rule" in reasons[18]  # T4: no polyfleet accelerator


def test_tpu_slices_are_priced_whole_by_chip_count(gcp) -> None:
    assert tpu_slice("tpu-v6e-4") == ("google-tpu-v6e", 4)
    assert tpu_slice("tpu-v5p-8") == ("google-tpu-v5p", 4)  # v5p names count TensorCores
    assert tpu_slice("tpu-v5litepod-16") == ("google-tpu-v5e", 16)
    assert tpu_slice("tpu-v3-8") is None
    v6e = gcp.offers["gcp-tpu-v6e-4-us-central1-on-demand"]
    assert v6e.chips_per_instance == 4 and v6e.usd_per_chip_hour == pytest.approx(10.8 / 4)
    v5p = gcp.offers["gcp-tpu-v5p-8-us-central1-on-demand"]
    assert v5p.chips_per_instance == 4 and v5p.usd_per_chip_hour == pytest.approx(4.2)


def test_the_700_placeholder_is_never_used(gcp) -> None:
    assert all(o.usd_per_chip_hour * o.chips_per_instance != 700.0 for o in gcp.offers.values())
    assert not any(o.region == "asia-east1" for o in gcp.offers.values())
    # the on-demand price in southamerica-west1 is real; its spot price is the stand-in
    assert "gcp-tpu-v6e-1-southamerica-west1-on-demand" in gcp.offers
    assert "gcp-tpu-v6e-1-southamerica-west1-spot" not in gcp.offers
    placeholders = [s for s in gcp.skipped if "placeholder" in s.reason]
    assert len(placeholders) == 3 and all("700" in s.reason for s in placeholders)


CHILD = textwrap.dedent(
    """
    import json, socket, sys

    def no_network(*args, **kwargs):
        raise OSError("network blocked by the polyfleet test")

    socket.socket.connect = no_network
    socket.create_connection = no_network
    from sky.catalog import gcp_catalog

    out = []
    listed = gcp_catalog.list_accelerators(gpus_only=False, all_regions=True, require_price=True)
    for name, infos in listed.items():
        for i in infos:
            out.append({"name": i.accelerator_name, "count": i.accelerator_count,
                        "instance_type": i.instance_type, "region": i.region,
                        "price": i.price, "spot_price": i.spot_price})
    json.dump(out, open(sys.argv[1], "w"))
    """
)


@pytest.mark.skipif(importlib.util.find_spec("sky") is None, reason="skypilot is not installed (dev extra)")
def test_every_gcp_offer_is_priced_as_skypilot_prices_it(gcp, tmp_path: Path) -> None:
    shutil.copytree(V8, tmp_path / ".sky" / "catalogs" / "v8")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().endswith("_PROXY") and not k.startswith(("SKYPILOT", "AWS_", "GOOGLE_"))
    }
    env.update(HOME=str(tmp_path), SKY_RUNTIME_DIR=str(tmp_path), SKYPILOT_DISABLE_USAGE_COLLECTION="1")
    result = tmp_path / "out.json"
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(result)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    sky_rows = json.loads(result.read_text())
    assert sky_rows, "SkyPilot listed nothing"
    checked = 0
    for offer in gcp.offers.values():
        chips = offer.chips_per_instance
        price = offer.usd_per_chip_hour * chips
        key = "spot_price" if offer.term == "spot" else "price"
        same = [
            r[key]
            for r in sky_rows
            if r["region"] == offer.region
            and (r["instance_type"] == offer.instance_type or r["name"] == offer.instance_type)
            and r[key] is not None
        ]
        assert same, f"SkyPilot lists no {offer.instance_type} in {offer.region} ({offer.term})"
        assert min(same) == pytest.approx(price, rel=1e-9), offer.id
        checked += 1
    assert checked == len(gcp.offers) == 14


def test_duplicate_host_rows_use_the_cheapest_priced_one(tmp_path: Path) -> None:
    """A zone listing the same host twice: unpriced rows are dropped, the cheapest is used."""
    folder = tmp_path / "gcp"
    folder.mkdir()
    header = (V8 / "gcp" / "vms.csv").read_text().splitlines()[0]
    gpu = "{'Gpus': [{'MemoryInfo': {'SizeInMiB': 40960}}]}"
    rows = [
        "a2-highgpu-1g,12.0,85.0,,,,us-central1,us-central1-a,,",  # unpriced first
        "a2-highgpu-1g,12.0,85.0,,,,us-central1,us-central1-a,5.0,2.0",  # dearer
        "a2-highgpu-1g,12.0,85.0,,,,us-central1,us-central1-a,0.73948,0.36975",
        f',,,A100,1,"{gpu}",us-central1,us-central1-a,2.93,1.17',
    ]
    (folder / "vms.csv").write_text("\n".join([header, *rows]) + "\n")
    result = import_skypilot(tmp_path, load_bundled().accelerators)
    assert result.offers["gcp-a2-highgpu-1g-us-central1-on-demand"].usd_per_chip_hour == pytest.approx(
        3.66948
    )
    assert result.offers["gcp-a2-highgpu-1g-us-central1-spot"].usd_per_chip_hour == pytest.approx(1.53975)
