"""A SkyPilot task YAML for one training workload's placement in a polyfleet plan.

The plan JSON (``polyfleet plan --format json``) names the offer; the offer's region,
instance type and term come from a catalog (the bundled one, or a spec's).  The task sets
``resources.{cloud, region, accelerators, use_spot, instance_type}`` and ``num_nodes``
(the plan's instance count); ``setup``/``run`` are left for the user.

An offer imported from a SkyPilot catalog exports the accelerator name its catalog row
used (SkyPilot rejects another name for the instance type); others use
:data:`SKYPILOT_ACCELERATORS`.  ``tests/test_skypilot_sky.py`` checks the output with
SkyPilot's own parser and optimizer (see ``docs/skypilot.md``).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from polyfleet.catalog.io import Catalog
from polyfleet.catalog.models import Offer
from polyfleet.errors import SpecError, did_you_mean

#: polyfleet accelerator id -> SkyPilot accelerator name (GPUs, Trainium, Inferentia).
SKYPILOT_ACCELERATORS: dict[str, str] = {
    "nvidia-h100-sxm": "H100",
    "nvidia-h100-pcie": "H100",
    "nvidia-h100-nvl": "H100",
    "nvidia-h200": "H200",
    "nvidia-b200": "B200",
    "nvidia-gb200": "GB200",
    "nvidia-a100-80gb": "A100-80GB",
    "nvidia-a100-40gb": "A100",
    "nvidia-l40s": "L40S",
    "nvidia-l4": "L4",
    "nvidia-a10g": "A10G",
    "amd-mi300x": "MI300X",
    "amd-mi325x": "MI325X",
    "amd-mi355x": "MI355X",
    "aws-trainium1": "Trainium",
    "aws-trainium2": "Trainium2",
    "aws-inferentia2": "Inferentia2",
    "nvidia-b300": "B300",
    "nvidia-gb300": "GB300",
    "nvidia-gh200": "GH200",
    "nvidia-a10": "A10",
    "nvidia-rtx-pro-6000": "RTXPRO6000",
    "amd-mi350x": "MI350X",
}

#: polyfleet provider -> SkyPilot cloud name: every public cloud in SkyPilot 0.14's registry
#: (``sky.utils.registry.CLOUD_REGISTRY``), which is also the folder name of its price catalog,
#: so offers imported with ``catalog: [bundled, "skypilot:DIR"]`` export under the same name.
#: Kubernetes, Slurm and SSH node pools are left out: they are not clouds one buys an offer from.
SKYPILOT_CLOUDS: dict[str, str] = {
    name: name
    for name in [
        "aws",
        "azure",
        "cudo",
        "do",
        "fluidstack",
        "gcp",
        "hyperbolic",
        "ibm",
        "lambda",
        "mithril",
        "nebius",
        "oci",
        "paperspace",
        "primeintellect",
        "runpod",
        "scp",
        "seeweb",
        "shadeform",
        "vast",
        "verda",
        "vsphere",
        "yotta",
    ]
}

#: Clouds on which SkyPilot 0.14 launches single-node clusters only (``MULTI_NODE`` is in
#: their ``_CLOUD_UNSUPPORTED_FEATURES``; Verda has it behind an experimental flag).  A
#: multi-node placement there still exports, with a warning in the header.
SINGLE_NODE_CLOUDS = frozenset(
    ["hyperbolic", "primeintellect", "runpod", "seeweb", "shadeform", "vast", "verda", "vsphere", "yotta"]
)

#: The SkyPilot name an imported offer came with, kept in its notes by
#: :mod:`polyfleet.catalog.skypilot` (``SkyPilot verda 8A100.176V: $9.28/h for 8x A100-80GB-640GB``).
_IMPORTED_NAME = re.compile(r"^SkyPilot \S+ .*?: \$[0-9.e+-]+/h for (\d+)x ([^\s;]+)")


def _accelerators(offer: Offer) -> tuple[str, bool]:
    """SkyPilot ``accelerators`` value and whether ``instance_type`` belongs in resources.

    TPUs are named by slice (``tpu-v5p-8: 1``: SkyPilot's pattern, the offer's instance
    type with a ``tpu-`` prefix, one slice per node) and take no instance type.
    """
    if offer.accelerator.startswith("google-tpu"):
        slice_name = offer.instance_type or offer.accelerator.removeprefix("google-")
        if not slice_name.startswith("tpu-"):
            slice_name = f"tpu-{slice_name}"
        return f"{slice_name}:1", False
    name = imported_skypilot_name(offer) or SKYPILOT_ACCELERATORS.get(offer.accelerator)
    if name is None:
        raise SpecError(
            f"accelerator {offer.accelerator!r} of offer {offer.id!r} has no SkyPilot name",
            path="accelerator",
        )
    return f"{name}:{offer.chips_per_instance}", True


def imported_skypilot_name(offer: Offer) -> str | None:
    """SkyPilot's own accelerator name for an offer imported from its catalog, else None.

    SkyPilot checks ``accelerators`` against the instance type's catalog row by name, and
    some clouds name shapes their own way (Verda's 8-GPU A100 is ``A100-80GB-640GB``), so an
    imported offer must export the name it was imported with, not polyfleet's canonical one.
    """
    if not offer.source.startswith("SkyPilot catalog"):
        return None
    match = _IMPORTED_NAME.match(offer.notes)
    if match is None or int(match.group(1)) != offer.chips_per_instance:
        return None
    return match.group(2)


def _task_name(workload: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]+", "-", workload.lower())).strip("-") or "polyfleet-task"


def skypilot_task(plan: Any, workload: str, catalog: Catalog, *, plan_file: str = "PLAN") -> dict[str, Any]:
    """The task for ``workload`` (a training workload placed in ``plan``) as a dict.

    Raises :class:`SpecError` for a malformed plan, an unknown or non-training workload,
    an offer the catalog lacks, or a provider or accelerator SkyPilot does not know.
    """
    if not isinstance(plan, dict) or not isinstance(plan.get("workloads"), list):
        raise SpecError("not a polyfleet plan: no 'workloads' list", file=plan_file)
    by_name = {w.get("name"): w for w in plan["workloads"] if isinstance(w, dict)}
    if workload not in by_name:
        names = [n for n in by_name if isinstance(n, str)]
        raise SpecError(
            f"no workload {workload!r} in the plan{did_you_mean(workload, names)}", file=plan_file
        )
    entry = by_name[workload]
    if entry.get("kind") != "training":
        raise SpecError(
            f"workload {workload!r} is {entry.get('kind')!r}: only training workloads export to SkyPilot",
            file=plan_file,
        )
    allocations = [a for a in entry.get("allocations") or [] if isinstance(a, dict) and a.get("offer")]
    if len(allocations) != 1:
        raise SpecError(
            f"training workload {workload!r} has {len(allocations)} placements in the plan; expected 1",
            file=plan_file,
        )
    alloc = allocations[0]
    offer_id = alloc["offer"]
    offer = catalog.offers.get(offer_id)
    if offer is None:
        raise SpecError(
            f"offer {offer_id!r} is not in the catalog; pass --spec SPEC to use the spec's catalog",
            file=plan_file,
        )
    cloud = SKYPILOT_CLOUDS.get(offer.provider)
    if cloud is None:
        raise SpecError(
            f"provider {offer.provider!r} of offer {offer_id!r} is not a SkyPilot cloud", file=plan_file
        )
    accelerators, with_instance_type = _accelerators(offer)
    instances = alloc.get("instances")
    if not isinstance(instances, int) or instances < 1:
        raise SpecError(f"placement of {workload!r} has no instance count", file=plan_file)
    resources: dict[str, Any] = {
        "cloud": cloud,
        "region": offer.region or None,
        "accelerators": accelerators,
        "use_spot": offer.term == "spot",
    }
    if with_instance_type and offer.instance_type:
        resources["instance_type"] = offer.instance_type
    resources = {k: v for k, v in resources.items() if v is not None}
    return {"name": _task_name(workload), "resources": resources, "num_nodes": instances}


def skypilot_task_yaml(plan: Any, workload: str, catalog: Catalog, *, plan_file: str = "PLAN") -> str:
    """:func:`skypilot_task` as YAML text with a comment header saying where it came from."""
    task = skypilot_task(plan, workload, catalog, plan_file=plan_file)
    alloc = next(a for w in plan["workloads"] if w.get("name") == workload for a in w["allocations"])
    offer = catalog.offers[alloc["offer"]]
    header = [
        f"# SkyPilot task for polyfleet training workload {workload!r} (from {plan_file}).",
        f"# offer {offer.id}: {offer.provider} {offer.region or '-'} "
        f"{offer.instance_type or '-'} ({offer.term}),",
        f"# {task['num_nodes']} node(s) x {offer.chips_per_instance} {offer.accelerator}"
        + (f", planned run {alloc['run_hours']} h" if alloc.get("run_hours") is not None else "")
        + ".",
    ]
    if task["num_nodes"] > 1 and task["resources"]["cloud"] in SINGLE_NODE_CLOUDS:
        header.append(
            f"# WARNING: SkyPilot launches {task['resources']['cloud']} clusters single-node only;"
            f" this placement needs {task['num_nodes']} nodes."
        )
    if offer.term.startswith("reserved"):
        header.append(f"# the plan priced a {offer.term} term: use your reservation (use_spot is false).")
    elif offer.term == "capacity-block":
        # SkyPilot launches into a purchased block named in ~/.sky/config.yaml
        # (docs.skypilot.co, "Using Reservations": aws.specific_reservations)
        header.append(
            "# the plan priced a capacity block: buy it for the run's days, then list its id"
            " (cr-...) under aws.specific_reservations in ~/.sky/config.yaml."
        )
    header.append("# Add `setup:` and `run:` for your training job, then: sky launch task.yaml")
    return "\n".join(header) + "\n" + yaml.safe_dump(task, sort_keys=False)
