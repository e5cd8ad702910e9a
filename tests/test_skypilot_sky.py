"""SkyPilot itself checks polyfleet's SkyPilot export and ``catalog cheapest``, offline.

The tests marked ``needs_sky`` are skipped without the ``skypilot`` package (dev extra);
the ``cheapest`` unit and CLI tests at the end run without it.

SkyPilot (the ``dev`` extra) runs in one child process per module, with ``HOME`` and
``SKY_RUNTIME_DIR`` in a temporary folder that holds a copy of tests/data/skypilot as
``.sky/catalogs/v8`` (no ``.meta`` md5 files, so SkyPilot never re-downloads them), its
enabled-cloud check replaced by the four catalog clouds (as SkyPilot's own tests do) and
every socket connect made to fail, so no credentials, network or ~/.sky are involved.  A
child keeps SkyPilot's import-time state (catalog paths fixed from HOME, loggers, a SQLite
state DB) and its import warnings out of the pytest process.  The child parses each task
YAML with ``sky.Task.from_yaml`` and runs ``sky.optimizer.Optimizer.optimize`` on it and on
single-task questions; the tests compare what SkyPilot says with what polyfleet says.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from conftest import run_cli, write_spec
from polyfleet.catalog.cheapest import OfferTable, cheapest_offers, parse_request
from polyfleet.catalog.io import Catalog, load_bundled, load_catalog_file
from polyfleet.catalog.models import Offer
from polyfleet.catalog.skypilot import import_skypilot, offers_csv
from polyfleet.report.skypilot_task import SINGLE_NODE_CLOUDS, skypilot_task_yaml
from polyfleet.spec import load_spec

needs_sky = pytest.mark.skipif(
    importlib.util.find_spec("sky") is None, reason="skypilot is not installed (dev extra)"
)

DATA = Path(__file__).parent / "data" / "skypilot"
V8 = DATA / "catalogs" / "v8"
HOURS = 100.0
#: SkyPilot's display name per catalog folder (common/accelerators.csv lists clouds so).
CLOUD_NAMES = {"hyperbolic": "Hyperbolic", "lambda": "Lambda", "nebius": "Nebius", "verda": "Verda"}
QUESTIONS = [
    ("H100:1", False),
    ("H100:3", False),
    ("H100:8", False),
    ("H100:8", True),
    ("H200:8", True),
    ("B200:8", False),
    ("B200:8", True),  # no spot 8 x B200 anywhere: both must say so
    ("A100:8", False),
    ("A100-80GB:8", False),
    ("L40S:2", False),
    ("GH200:1", False),  # Lambda's GH200 (mapped to nvidia-gh200 since the 2026-12 catalog)
]

CHILD = textwrap.dedent(
    """
    import json, socket, sys

    def no_network(*args, **kwargs):
        raise OSError("network blocked by the polyfleet test")

    socket.socket.connect = no_network
    socket.create_connection = no_network
    import sky
    from sky import check, clouds, exceptions, optimizer

    job = json.load(open(sys.argv[1]))
    enabled = [clouds.Lambda(), clouds.Nebius(), clouds.Hyperbolic(), clouds.Verda()]
    check.get_cached_enabled_clouds_or_refresh = lambda *a, **k: enabled
    check.check_capability = lambda *a, **k: None

    def best(task):
        dag = sky.Dag()
        dag.add(task)
        try:
            optimizer.Optimizer.optimize(dag, quiet=True)
        except exceptions.ResourcesUnavailableError as exc:
            return {"error": str(exc).splitlines()[0]}
        except Exception as exc:  # e.g. ResourcesMismatchError: reported, asserted on in the test
            return {"error": f"{type(exc).__name__}: {exc}"}
        r = task.best_resources
        return {"cloud": str(r.cloud).lower(), "region": r.region, "instance_type": r.instance_type,
                "usd_total": r.get_cost(job["hours"] * 3600) * task.num_nodes}

    out = {"tasks": {}, "questions": []}
    for path in job["tasks"]:
        try:
            task = sky.Task.from_yaml(path)
        except Exception as exc:
            out["tasks"][path] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        (r,) = task.resources
        parsed = {"cloud": str(r.cloud).lower(), "region": r.region, "accelerators": r.accelerators,
                  "use_spot": r.use_spot, "instance_type": r.instance_type, "num_nodes": task.num_nodes}
        task.set_time_estimator(lambda _r: job["hours"] * 3600)
        parsed["best"] = best(task)
        out["tasks"][path] = parsed
    for request, spot in job["questions"]:
        task = sky.Task(name="q").set_resources(sky.Resources(accelerators=request, use_spot=spot))
        task.set_time_estimator(lambda _r: job["hours"] * 3600)
        out["questions"].append(best(task))
    json.dump(out, open(sys.argv[2], "w"))
    """
)


def run_skypilot(home: Path, tasks: list[Path], questions: list[tuple[str, bool]]) -> dict[str, Any]:
    """Parse and optimise ``tasks`` and ``questions`` in a SkyPilot child rooted at ``home``."""
    job, result = home / "job.json", home / "result.json"
    job.write_text(json.dumps({"tasks": [str(t) for t in tasks], "questions": questions, "hours": HOURS}))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().endswith("_PROXY") and not key.startswith(("SKYPILOT", "AWS_", "GOOGLE_"))
    }
    env.update(HOME=str(home), SKY_RUNTIME_DIR=str(home), SKYPILOT_DISABLE_USAGE_COLLECTION="1")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(job), str(result)],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(result.read_text())


@pytest.fixture(scope="module")
def imported():
    return import_skypilot(V8, load_bundled().accelerators)


@pytest.fixture(scope="module")
def sky(tmp_path_factory, imported):
    """Everything SkyPilot is asked in this module, answered in one child run."""
    root = tmp_path_factory.mktemp("sky")
    home = root / "home"
    shutil.copytree(V8, home / ".sky" / "catalogs" / "v8")  # with the catalog's common/accelerators.csv

    # 1. a real plan on [bundled, skypilot:DIR], exported through the CLI
    shutil.copytree(DATA, root / "catalog")
    spec = write_spec(
        root,
        """
        catalog: [bundled, "skypilot:catalog/catalogs/v8"]
        workloads:
          - {name: pretrain, kind: training, model: llama-3.1-8b, tokens_b: 30, deadline_days: 10,
             stacks: [cuda]}
        """,
    )
    plan_path, plan_task = root / "plan.json", root / "plan-task.yaml"
    assert run_cli("plan", spec, "--format", "json", "--out", plan_path).exit_code == 0
    exported = run_cli(
        "export", "skypilot", plan_path, "--workload", "pretrain", "--spec", spec, "--out", plan_task
    )
    assert exported.exit_code == 0, exported.stderr

    # 2. one task per imported (cloud, instance type, term), one node; 3. a 3-node Lambda task
    catalog = Catalog(offers=imported.offers)
    tasks: dict[str, Path] = {}
    for offer in imported.offers.values():
        key = f"{offer.provider}/{offer.instance_type}/{offer.term}"
        if key not in tasks:
            tasks[key] = _task_file(root, offer.id, catalog, 1)
    multi = _task_file(root, "lambda-gpu-8x-h100-sxm5-us-east-1-on-demand", catalog, 3)

    answers = run_skypilot(home, [plan_task, *tasks.values(), multi], QUESTIONS)
    return {
        "answers": answers,
        "plan": json.loads(plan_path.read_text()),
        "plan_task": plan_task,
        "spec_catalog": load_spec(spec).catalog,
        "tasks": tasks,
        "multi": multi,
        "catalog": catalog,
    }


def _task_file(root: Path, offer_id: str, catalog: Catalog, instances: int) -> Path:
    plan = {
        "workloads": [
            {"name": "job", "kind": "training", "allocations": [{"offer": offer_id, "instances": instances}]}
        ]
    }
    path = root / "tasks" / f"{offer_id}-x{instances}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(skypilot_task_yaml(plan, "job", catalog), encoding="utf-8")
    return path


def _csv_names(v8: Path) -> dict[tuple[str, str], str]:
    """(cloud, instance type) -> the ``AcceleratorName`` its vms.csv row gives."""
    names = {}
    for path in v8.glob("*/vms.csv"):
        with path.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                names[(path.parent.name, row["InstanceType"])] = row["AcceleratorName"]
    return names


CSV_NAMES = _csv_names(V8)


def _expected(offer: Offer, instances: int) -> dict[str, Any]:
    """What SkyPilot must parse from the task for ``offer`` on ``instances`` nodes."""
    return {
        "cloud": offer.provider,
        "region": offer.region,
        "accelerators": {CSV_NAMES[(offer.provider, offer.instance_type)]: offer.chips_per_instance},
        "use_spot": offer.term == "spot",
        "instance_type": offer.instance_type,
        "num_nodes": instances,
    }


@needs_sky
def test_planned_training_task_parses_and_launches_where_planned(sky):
    workload = next(w for w in sky["plan"]["workloads"] if w["name"] == "pretrain")
    (alloc,) = workload["allocations"]
    offer = sky["spec_catalog"].offers[alloc["offer"]]
    assert offer.source.startswith("SkyPilot catalog")  # placed on an imported offer
    parsed = dict(sky["answers"]["tasks"][str(sky["plan_task"])])
    assert "error" not in parsed, parsed
    best = parsed.pop("best")
    assert parsed == _expected(offer, alloc["instances"])
    assert sum(parsed["accelerators"].values()) * parsed["num_nodes"] == alloc["chips"]
    if alloc["instances"] == 1 or offer.provider not in SINGLE_NODE_CLOUDS:
        # SkyPilot's optimizer, given the task, lands on exactly the planned instance and price
        assert (best["cloud"], best["region"], best["instance_type"]) == (
            offer.provider,
            offer.region,
            offer.instance_type,
        )
        per_hour = offer.usd_per_chip_hour * offer.chips_per_instance * alloc["instances"]
        assert best["usd_total"] == pytest.approx(per_hour * HOURS, rel=1e-9)


@needs_sky
def test_every_imported_instance_type_exports_to_a_task_skypilot_places_there(sky):
    # every (cloud, instance type, term) of the test catalog: 3 hyperbolic + 16 lambda + 21 nebius + 57 verda
    # (GH200, A10, B300 and RTX PRO 6000 shapes are mapped since the 2026-12 catalog)
    assert len(sky["tasks"]) == 97
    assert {key.split("/")[0] for key in sky["tasks"]} == set(CLOUD_NAMES)
    by_id = sky["catalog"].offers
    for path in sky["tasks"].values():
        offer = by_id[path.name.removesuffix("-x1.yaml")]
        parsed = dict(sky["answers"]["tasks"][str(path)])
        assert "error" not in parsed, (path.name, parsed)
        best = parsed.pop("best")
        assert parsed == _expected(offer, 1), path.name
        assert "error" not in best, (path.name, best)
        assert (best["cloud"], best["region"], best["instance_type"]) == (
            offer.provider,
            offer.region,
            offer.instance_type,
        ), path.name
        assert best["usd_total"] == pytest.approx(
            offer.usd_per_chip_hour * offer.chips_per_instance * HOURS, rel=1e-9
        ), path.name


@needs_sky
def test_verda_shape_names_round_trip(sky):
    # Verda names its 8 x A100 80GB shape A100-80GB-640GB; SkyPilot rejects A100-80GB:8 there
    path = sky["tasks"]["verda/8A100.176V/on-demand"]
    parsed = sky["answers"]["tasks"][str(path)]
    assert parsed["accelerators"] == {"A100-80GB-640GB": 8}
    assert sky["catalog"].offers[path.name.removesuffix("-x1.yaml")].accelerator == "nvidia-a100-80gb"


@needs_sky
def test_multi_node_task(sky):
    parsed = sky["answers"]["tasks"][str(sky["multi"])]
    assert parsed["num_nodes"] == 3
    assert parsed["best"]["instance_type"] == "gpu_8x_h100_sxm5"
    offer = sky["catalog"].offers["lambda-gpu-8x-h100-sxm5-us-east-1-on-demand"]
    assert parsed["best"]["usd_total"] == pytest.approx(offer.usd_per_chip_hour * 8 * 3 * HOURS)


def test_single_node_cloud_multi_node_export_warns(imported):
    catalog = Catalog(offers=imported.offers)
    plan = {
        "workloads": [
            {
                "name": "j",
                "kind": "training",
                "allocations": [{"offer": "verda-8h100-80s-176v-fin-03-spot", "instances": 2}],
            }
        ]
    }
    text = skypilot_task_yaml(plan, "j", catalog)
    assert "WARNING: SkyPilot launches verda clusters single-node only" in text
    assert yaml.safe_load(text)["num_nodes"] == 2
    plan["workloads"][0]["allocations"][0]["instances"] = 1
    assert "WARNING" not in skypilot_task_yaml(plan, "j", catalog)


def test_reserved_and_capacity_block_exports_say_how_to_launch_into_them():
    """A reserved row's task says to use the reservation; a capacity block's names the
    SkyPilot setting that launches into a purchased block; on-demand says neither."""
    from polyfleet.catalog.io import load_bundled

    catalog = load_bundled()
    plan = {"workloads": [{"name": "j", "kind": "training", "allocations": [{"instances": 2}]}]}
    lines = {}
    for offer_id in (
        "aws-p5-48xlarge-us-east-1-capacity-block",
        "aws-p5-48xlarge-us-east-1-on-demand",
    ):
        plan["workloads"][0]["allocations"][0]["offer"] = offer_id
        text = skypilot_task_yaml(plan, "j", catalog)
        lines[offer_id] = text
        task = yaml.safe_load(text)
        assert task["num_nodes"] == 2 and task["resources"]["use_spot"] is False
    assert "aws.specific_reservations" in lines["aws-p5-48xlarge-us-east-1-capacity-block"]
    assert "reservation" not in lines["aws-p5-48xlarge-us-east-1-on-demand"]


@needs_sky
def test_cheapest_matches_skypilot_optimizer(sky, imported):
    table = OfferTable(imported.offers)
    for (request, spot), answer in zip(QUESTIONS, sky["answers"]["questions"], strict=True):
        name, count = parse_request(request)
        choices = table.cheapest(name, count, HOURS, use_spot=spot, names="skypilot")
        if "error" in answer:
            assert choices == [], request
            continue
        picks = {(c.provider, c.region, c.instance_type) for c in choices}
        assert (answer["cloud"], answer["region"], answer["instance_type"]) in picks, (request, spot)
        for choice in choices:  # every tie costs what SkyPilot's pick costs
            assert choice.usd_total == pytest.approx(answer["usd_total"], rel=1e-9), request


# --- cheapest_offers without SkyPilot ---------------------------------------------------------


def _brute_force(offers, acc_ids, count, term):
    fits = [
        o
        for o in offers.values()
        if o.accelerator in acc_ids and o.chips_per_instance == count and o.term == term
    ]
    if not fits:
        return set()
    best = min(o.usd_per_chip_hour * o.chips_per_instance for o in fits)
    return {o.id for o in fits if o.usd_per_chip_hour * o.chips_per_instance <= best * (1 + 1e-9)}


def test_cheapest_equals_a_loop_over_every_offer(imported):
    offers = {**load_bundled().offers, **imported.offers}
    table = OfferTable(offers)
    asked = 0
    for acc, count, term in sorted({(o.accelerator, o.chips_per_instance, o.term) for o in offers.values()}):
        if term not in ("on-demand", "spot"):
            continue
        choices = table.cheapest(acc, count, 7.0, use_spot=term == "spot", num_nodes=2)
        assert {c.offer for c in choices} == _brute_force(offers, {acc}, count, term), (acc, count, term)
        for c in choices:
            offer = offers[c.offer]
            assert c.usd_total == pytest.approx(offer.usd_per_chip_hour * offer.chips_per_instance * 7.0 * 2)
        asked += 1
    assert asked > 50
    # the function form builds the same table
    assert cheapest_offers(offers, "nvidia-h200", 8, 7.0) == table.cheapest("nvidia-h200", 8, 7.0)


def test_skypilot_names_and_chip_ids(imported):
    table = OfferTable(imported.offers)
    # SkyPilot's H100 is every H100 part; the polyfleet id is one part
    h100 = table.cheapest("h100", 1, 1.0)
    assert {c.accelerator for c in h100} <= {"nvidia-h100-sxm", "nvidia-h100-pcie", "nvidia-h100-nvl"}
    assert h100 == table.cheapest("H100", 1, 1.0)
    pcie = _brute_force(imported.offers, {"nvidia-h100-pcie"}, 1, "on-demand")
    assert {c.offer for c in table.cheapest("nvidia-h100-pcie", 1, 1.0)} == pcie
    everything = {"nvidia-h100-sxm", "nvidia-h100-pcie", "nvidia-h100-nvl"}
    assert {c.offer for c in h100} == _brute_force(imported.offers, everything, 1, "on-demand")
    # chip semantics find Verda's 8 x A100 80GB, which SkyPilot files as A100-80GB-640GB
    chip = table.cheapest("A100-80GB", 8, 1.0)
    named = table.cheapest("A100-80GB", 8, 1.0, names="skypilot")
    assert [c.instance_type for c in chip] == ["8A100.176V"]
    assert {c.provider for c in named} == {"lambda"} and len(named) == 17  # same price in 17 regions
    assert chip[0].usd_total < named[0].usd_total
    assert table.cheapest("A100-80GB-640GB", 8, 1.0, names="skypilot") == chip


def test_count_nodes_availability_and_at_least():
    offers = {
        o["id"]: Offer.model_validate(o)
        for o in (
            {
                "id": "a8",
                "provider": "p",
                "accelerator": "nvidia-h100-sxm",
                "chips_per_instance": 8,
                "usd_per_chip_hour": 2.0,
                "available_instances": 2,
            },
            {
                "id": "b8",
                "provider": "q",
                "accelerator": "nvidia-h100-sxm",
                "chips_per_instance": 8,
                "usd_per_chip_hour": 3.0,
                "available_instances": 10,
            },
            {
                "id": "c4",
                "provider": "p",
                "accelerator": "nvidia-h100-sxm",
                "chips_per_instance": 4,
                "usd_per_chip_hour": 1.0,
                "available_instances": 10,
            },
            {
                "id": "r8",
                "provider": "p",
                "accelerator": "nvidia-h100-sxm",
                "chips_per_instance": 8,
                "usd_per_chip_hour": 0.5,
                "available_instances": 10,
                "term": "reserved-1y",
            },
        )
    }
    table = OfferTable(offers)
    assert [c.offer for c in table.cheapest("H100", 8, 10)] == ["a8"]  # reserved is never chosen
    assert table.cheapest("H100", 8, 10)[0].usd_total == pytest.approx(16 * 10)
    three = table.cheapest("H100", 8, 10, num_nodes=3)  # a8 has only 2 instances
    assert [c.offer for c in three] == ["b8"] and three[0].usd_total == pytest.approx(24 * 10 * 3)
    assert [c.offer for c in table.cheapest("H100", 2, 1)] == []  # exact count, as SkyPilot
    assert [c.offer for c in table.cheapest("H100", 2, 1, exact=False)] == ["c4"]
    assert table.cheapest("H100", 8, 1, use_spot=True) == []
    assert table.counts_for("H100") == [4, 8]


def test_bad_requests():
    assert parse_request("H100:8") == ("H100", 8)
    assert parse_request("nvidia-h100-sxm") == ("nvidia-h100-sxm", 1)
    for bad in ("H100:0", "H100:x", ":8", "H100:8:1", ""):
        with pytest.raises(ValueError, match="expected ACCELERATOR"):
            parse_request(bad)
    table = OfferTable(load_bundled().offers)
    with pytest.raises(ValueError, match="did you mean 'H100'"):
        table.cheapest("H10", 1, 1)
    with pytest.raises(ValueError, match="hours must be > 0"):
        table.cheapest("H100", 1, 0)


def test_cheapest_cli(tmp_path):
    folder = f"skypilot:{V8}"
    result = run_cli(
        "catalog", "cheapest", "H100:8", "--hours", "100", "--catalog", folder, "--format", "json"
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    expected = cheapest_offers(import_skypilot(V8, load_bundled().accelerators).offers, "H100", 8, 100)
    assert data["choices"] == [c.to_dict() for c in expected]
    assert data["choices"][0]["instance_type"] == "8H100.80S.176V" and data["choices"][0]["usd_total"] == 1592
    table = run_cli("catalog", "cheapest", "H100:8", "--spot", "--hours", "10", "--catalog", folder, "--wide")
    assert table.exit_code == 0 and "8H100.80S.176V" in table.stdout and "$79.60" in table.stdout
    # the bundled catalog by default, and spec-style entries in order
    default = run_cli("catalog", "cheapest", "nvidia-h100-sxm:8", "--format", "json")
    assert default.exit_code == 0 and json.loads(default.stdout)["choices"]
    none = run_cli("catalog", "cheapest", "H100:5", "--catalog", folder)
    assert none.exit_code == 1
    assert "sizes offered: 1, 2, 3, 4, 8" in none.stderr and len(none.stderr.strip().splitlines()) == 1
    for args, message in (
        (("H100:0",), "expected ACCELERATOR"),
        (("H10:8",), "did you mean 'H100'"),
        (("H100:8", "--catalog", f"skypilot:{tmp_path / 'nowhere'}"), "SkyPilot catalog folder not found"),
        (("H100:8", "--catalog", str(tmp_path / "x-offers.csv")), "catalog file not found"),
        (("H100:8", "--hours", "0"), "--hours"),
    ):
        bad = run_cli("catalog", "cheapest", *args)
        assert bad.exit_code == 2, args
        assert message in bad.stderr and "Traceback" not in bad.stderr, (args, bad.stderr)


def test_skypilot_name_survives_an_offers_csv(tmp_path, imported):
    # `catalog import-skypilot --out x-offers.csv` then `catalog: [bundled, x-offers.csv]`
    path = tmp_path / "sky-offers.csv"
    path.write_text(offers_csv(imported.offers), encoding="utf-8")
    catalog = load_catalog_file(path)
    plan = {
        "workloads": [
            {
                "name": "j",
                "kind": "training",
                "allocations": [{"offer": "verda-8a100-176v-fin-03-on-demand", "instances": 1}],
            }
        ]
    }
    task = yaml.safe_load(skypilot_task_yaml(plan, "j", catalog))
    assert task["resources"]["accelerators"] == "A100-80GB-640GB:8"
    # an offer of the same chip that did not come from SkyPilot gets polyfleet's mapping
    own = catalog.offers["verda-8a100-176v-fin-03-on-demand"].model_copy(update={"source": "our quote"})
    task = yaml.safe_load(skypilot_task_yaml(plan, "j", Catalog(offers={own.id: own})))
    assert task["resources"]["accelerators"] == "A100-80GB:8"
