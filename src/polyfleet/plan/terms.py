"""Offer terms that bind the buyer: reserved 1y/3y commitments and capacity blocks.

What each term means to a plan (``docs/planning-model.md``, *Terms*):

* ``reserved-1y`` / ``reserved-3y``: capacity committed for 12 / 36 months and billed every
  hour of the term whether used or not.  A single-period plan prices the rows at their
  hourly rate over its horizon without the lock; its ``commitments`` output says what
  signing the term obliges (``obligation_usd``) beside what the plan's total counts.
  Monthly plans charge the lock (``LOCK_MONTHS``, ``plan/monthly.py``).
* ``capacity-block``: a short reservation (AWS EC2 Capacity Blocks for ML) booked for a
  whole number of days, 1-14 in 1-day steps or 7-182 in 7-day steps, paid up front for the
  whole block, guaranteed (not reclaimable like spot) and with no lock beyond the block.
  A training job on one pays for the whole days that cover its run (``block_days``);
  serving capacity books the plan's horizon (a monthly plan: each month).

Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from polyfleet.plan.candidates import HOURS_PER_MONTH, Candidates

#: months a reserved term locks capacity for
LOCK_MONTHS = {"reserved-1y": 12, "reserved-3y": 36}
#: the short-reservation term: booked in whole days, paid for the whole block
BLOCK_TERM = "capacity-block"
#: terms a plan signs for: reported in ``commitments``
COMMITTED_TERMS = (*LOCK_MONTHS, BLOCK_TERM)


def block_days(run_hours: float) -> int:
    """Whole days of capacity blocks that cover a run of ``run_hours`` (at least one).

    Blocks are sold for 1-14 days in 1-day steps and 7-182 days in 7-day steps (AWS EC2
    Capacity Blocks, docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-capacity-blocks.html,
    read 2026-12), so consecutive blocks (a 7-day multiple plus a 1-6 day block) buy any
    whole number of days: a 15-day run books 14 + 1, not 21.
    """
    return max(math.ceil(run_hours / 24 - 1e-9), 1)


def book_blocks(cand: Candidates) -> Candidates:
    """Training placements on capacity blocks pay for the whole block (whole days), not the run.

    ``tr_usd`` of such a placement becomes chips x price x block hours (+ its egress);
    ``tr_hours`` stays the run's hours (what the instances are busy for).
    """
    if not len(cand.tr_o):
        return cand
    block = np.array([cand.offers[o].term == BLOCK_TERM for o in cand.tr_o], bool)
    if not block.any():
        return cand
    block_hours = np.array([24.0 * block_days(h) for h in cand.tr_hours])
    price = np.array([cand.offers[o].usd_per_chip_hour for o in cand.tr_o])
    booked = cand.tr_chips * price * block_hours + cand.tr_egress_usd
    return replace(cand, tr_usd=np.where(block, booked, cand.tr_usd))


def commitments(
    purchases: list[dict[str, Any]],
    workloads: list[dict[str, Any]],
    offers: dict[str, Any],
    horizon_months: float,
) -> list[dict[str, Any]]:
    """What a single-period plan signs for: one row per purchase of a reserved or block term.

    ``offers`` maps offer id -> ``Offer``.  Reserved: ``usd_per_month`` is the instances'
    price for 730 h; the plan must sign ``ceil(H / L)`` terms of L months to cover its
    horizon H, so ``obligation_usd = usd_per_month x L x ceil(H / L)`` and ``end_month``
    is ``L x ceil(H / L)``.  Capacity block: the block is what the plan pays
    (``obligation_usd`` = the purchase's usd); a training job's block ends after its
    ``block_days``, serving capacity's at the horizon.  ``beyond_plan_usd`` is the
    obligation the plan's ``total_usd`` does not count.
    """
    users: dict[str, list[str]] = {}
    blocks: dict[str, int] = {}
    for w in workloads:
        for a in w.get("allocations", []):
            if a.get("term") in COMMITTED_TERMS:
                users.setdefault(a["offer"], []).append(w["name"])
                if a["term"] == BLOCK_TERM and a.get("block_days"):
                    blocks[a["offer"]] = max(blocks.get(a["offer"], 0), int(a["block_days"]))
    out = []
    for p in purchases:
        term = p.get("term")
        if term not in COMMITTED_TERMS or not p.get("instances"):
            continue
        offer = offers[p["offer"]]
        usd_per_month = p["instances"] * offer.chips_per_instance * offer.usd_per_chip_hour * HOURS_PER_MONTH
        row: dict[str, Any] = {
            "offer": p["offer"],
            "provider": p["provider"],
            "term": term,
            "workloads": sorted(set(users.get(p["offer"], []))),
            "instances": int(p["instances"]),
            "chips": int(p["chips"]),
            "usd_per_month": round(usd_per_month, 2),
        }
        if term in LOCK_MONTHS:
            lock = LOCK_MONTHS[term]
            terms_signed = max(math.ceil(horizon_months / lock - 1e-9), 1)
            obligation = usd_per_month * lock * terms_signed
            row |= {"term_months": lock, "end_month": lock * terms_signed}
        else:
            obligation = float(p["usd"])
            days = blocks.get(p["offer"])
            serving = any(w["kind"] != "training" for w in workloads if w["name"] in row["workloads"])
            if days and not serving:
                row |= {"block_days": days, "end_month": math.ceil(days * 24 / HOURS_PER_MONTH - 1e-9)}
            else:
                row |= {"end_month": math.ceil(horizon_months - 1e-9)}
        row["obligation_usd"] = round(obligation, 2)
        row["beyond_plan_usd"] = round(max(obligation - float(p["usd"]), 0.0), 2)
        out.append(row)
    return out
