"""The bundled catalog: coverage the product promises, and every row sourced."""

from __future__ import annotations

import pytest

from polyfleet.catalog.io import load_bundled

REQUIRED_ACCELERATORS = {
    "nvidia-a100-80gb",
    "nvidia-h100-sxm",
    "nvidia-h200",
    "nvidia-b200",
    "nvidia-l4",
    "amd-mi300x",
    "amd-mi325x",
    "google-tpu-v5e",
    "google-tpu-v5p",
    "google-tpu-v6e",
    "aws-trainium1",
    "aws-trainium2",
    "aws-inferentia2",
    "microsoft-maia-100",
    "intel-gaudi3",
}
REQUIRED_MODELS = {
    "llama-3.1-8b",
    "llama-3.1-70b",
    "llama-3.1-405b",
    "mixtral-8x7b",
    "deepseek-v3",
    "qwen2.5-72b",
}


@pytest.fixture(scope="module")
def catalog():
    return load_bundled()


def test_required_accelerators_present_with_specs(catalog):
    missing = REQUIRED_ACCELERATORS - set(catalog.accelerators)
    assert not missing
    for acc_id in REQUIRED_ACCELERATORS:
        acc = catalog.accelerators[acc_id]
        assert acc.hbm_gb > 0 and acc.hbm_tbps > 0
        assert acc.bf16_tflops or acc.fp8_tflops, acc_id


def test_stacks_match_vendors(catalog):
    expected = {
        "nvidia": "cuda",
        "amd": "rocm",
        "google": "xla",
        "aws": "neuron",
        "microsoft": "maia",
        "intel": "synapse",
    }
    for acc in catalog.accelerators.values():
        assert acc.stack == expected[acc.vendor], acc.id


def test_offers_cover_six_providers_and_spot(catalog):
    providers = {o.provider for o in catalog.offers.values()}
    assert {"aws", "gcp", "azure", "oci", "lambda", "nebius"} <= providers
    assert {o.term for o in catalog.offers.values()} >= {"on-demand", "spot"}
    for offer in catalog.offers.values():
        assert offer.accelerator in catalog.accelerators, offer.id
        # no provider publishes capacity: every default says it is assumed
        assert offer.available_instances_assumed, offer.id


def test_h100_price_spread_is_real(catalog):
    """SOURCES.md: roughly a 4x spread in on-demand $/chip-hour for the same H100."""
    prices = [
        o.usd_per_chip_hour
        for o in catalog.offers.values()
        if o.accelerator == "nvidia-h100-sxm" and o.term == "on-demand"
    ]
    assert max(prices) / min(prices) > 3


def test_models_have_architecture(catalog):
    assert set(catalog.models) >= REQUIRED_MODELS
    assert len(catalog.models) >= 8
    for card in catalog.models.values():
        assert card.kv_bytes_per_token and card.kv_bytes_per_token > 0, card.name
    v3 = catalog.models["deepseek-v3"]
    assert v3.attention == "mla" and v3.active_b < v3.params_b
    # Llama 3.1 70B, GQA: 2 x 80 layers x 8 kv heads x 128 x 2 bytes
    assert catalog.models["llama-3.1-70b"].kv_bytes_per_token == 2 * 80 * 8 * 128 * 2


def test_api_offers_three_models_three_hosts_and_a_reseller(catalog):
    hosts: dict[str, set[str]] = {}
    for a in catalog.api_offers.values():
        hosts.setdefault(a.model, set()).add(a.provider)
    assert sum(len(h) >= 3 for h in hosts.values()) >= 3
    resold = [a for a in catalog.api_offers.values() if a.resells]
    assert resold
    # the maker of a resold model also sells it directly
    assert any(r.resells in hosts[r.model] for r in resold)


@pytest.mark.parametrize("section", ["accelerators", "offers", "api_offers", "models"])
def test_every_row_is_sourced_and_dated(catalog, section):
    for record in getattr(catalog, section).values():
        assert record.source.strip(), record
        assert record.as_of.strip(), record


def test_committed_rows_undercut_their_on_demand_row(catalog):
    """Each reserved row has an on-demand row for the same provider x instance, and 3y < 1y < on-demand.

    Hand-computed from the Cyclenerd dump (month = 730 h): a2-highgpu-8g us-central1 1y
    $13,514.9691136 / 730 / 8 = $2.3142/GPU-h and 3y $7,508.53662384 / 730 / 8 = $1.2857/GPU-h.
    """
    offers = catalog.offers.values()
    reserved = [o for o in offers if o.term.startswith("reserved")]
    assert {o.provider for o in reserved} >= {"gcp"}
    for r in reserved:
        on_demand = [
            o.usd_per_chip_hour
            for o in offers
            if o.term == "on-demand" and o.provider == r.provider and o.accelerator == r.accelerator
        ]
        assert on_demand, r.id
        assert r.usd_per_chip_hour < min(on_demand), r.id
    by_id = catalog.offers
    one_year = by_id["gcp-a2-highgpu-8g-us-central1-reserved-1y"].usd_per_chip_hour
    three_year = by_id["gcp-a2-highgpu-8g-us-central1-reserved-3y"].usd_per_chip_hour
    assert one_year == pytest.approx(2.3142, abs=1e-4)
    assert three_year == pytest.approx(1.2857, abs=1e-4)
    assert three_year < one_year


def test_aws_reserved_and_capacity_block_rows(catalog):
    """AWS 1-year RIs and Capacity Blocks, hand-computed from their sources (instance $/h / chips).

    p4d.24xlarge 1y No Upfront $13.921094/h / 8 = $1.7401 (vantage export, 2026-01-21);
    trn1.32xlarge $13.22895 / 16 = $0.8268; Capacity Block p5.48xlarge $39.33 / 8 = $4.916,
    trn1.32xlarge $15.49 / 16 = $0.968 (AWS page, late-2024 rates).
    """
    by_id = catalog.offers

    def usd(offer_id: str) -> float:
        return by_id[offer_id].usd_per_chip_hour

    assert usd("aws-p4d-24xlarge-us-east-1-reserved-1y") == pytest.approx(13.921094 / 8, abs=1e-4)
    assert usd("aws-trn1-32xlarge-us-east-1-reserved-1y") == pytest.approx(13.22895 / 16, abs=1e-4)
    blocks = [o for o in by_id.values() if o.term == "capacity-block"]
    assert {o.provider for o in blocks} == {"aws"} and len(blocks) == 4
    p5 = by_id["aws-p5-48xlarge-us-east-1-capacity-block"]
    assert p5.usd_per_chip_hour == pytest.approx(39.33 / 8, abs=1e-3) == 4.916
    assert usd("aws-trn1-32xlarge-ap-southeast-4-capacity-block") == pytest.approx(15.49 / 16, abs=1e-3)
    for block in blocks:
        # the block's limits travel with the row; 64 instances is AWS's per-block cap
        assert "182 days" in block.notes and "64 instances per block" in block.notes, block.id
        assert block.available_instances == 64
    # a block is cheaper than the same chip on demand at AWS (p5: $4.916 vs $6.88)
    assert p5.usd_per_chip_hour < usd("aws-p5-48xlarge-us-east-1-on-demand")


def test_late_2026_gap_rows_from_the_skypilot_v8_files(catalog):
    """GCP a4 (B200) and TPU v6e-256, RunPod MI300X and L40S: instance $/h / chips, by hand.

    a4-highgpu-8g $90.216 / 8 = $11.277; v6e-256 $691.2 / 256 = $2.70 and spot $146.6496 / 256
    = $0.57285 (the v6e-1 spot row's rate too); RunPod 1x MI300X $2.29, 1x L40S $0.86.
    """
    offers = catalog.offers
    assert offers["gcp-a4-highgpu-8g-us-central1-on-demand"].usd_per_chip_hour == pytest.approx(90.216 / 8)
    v6e = offers["gcp-v6e-256-us-central1-on-demand"]
    assert v6e.chips_per_instance == 256 and v6e.usd_per_chip_hour == pytest.approx(691.2 / 256)
    spot = offers["gcp-v6e-256-us-central1-spot"].usd_per_chip_hour
    assert spot == pytest.approx(146.6496 / 256) == offers["gcp-v6e-1-us-central1-spot"].usd_per_chip_hour
    assert offers["runpod-1x-mi300x-secure-us-on-demand"].usd_per_chip_hour == 2.29
    assert offers["runpod-1x-l40s-secure-us-on-demand"].usd_per_chip_hour == 0.86
