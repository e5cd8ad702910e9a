"""Importers that refresh the bundled catalog files: diff first, write only with --write."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pytest

from conftest import run_cli
from polyfleet.catalog.hf_config import card_from_config, read_config
from polyfleet.catalog.import_prices import polyfleet_model, read_genai_prices, read_litellm
from polyfleet.catalog.io import load_catalog_file
from polyfleet.catalog.models import ApiOffer, Offer
from polyfleet.catalog.refresh import keep_curated
from polyfleet.catalog.skypilot_refresh import onto_bundled

DATA = Path(__file__).parent / "data"
MINI = DATA / "catalog-mini"


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    shutil.copytree(MINI, folder)
    return folder


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("claude-sonnet-4-5", "claude-sonnet-4.5"),
        ("global.anthropic.claude-sonnet-5-v1:0", "claude-sonnet-5"),
        ("meta-llama/llama-4-maverick-17b-128e-instruct", "llama-4-maverick"),
        ("meta.llama4-maverick-17b-instruct-v1:0", "llama-4-maverick"),
        ("accounts/fireworks/models/llama-v3p1-405b-instruct", "llama-3.1-405b"),
        ("us.meta.llama3-1-70b-instruct-v1:0", "llama-3.1-70b"),
        ("glm-5p2", "glm-5.2"),
        ("openai.gpt-oss-120b-1:0", "gpt-oss-120b"),
    ],
)
def test_price_list_names_become_polyfleet_names(raw: str, name: str) -> None:
    assert polyfleet_model(raw) == name


def test_genai_prices_reader_takes_the_price_in_force_and_skips_deprecated() -> None:
    result = read_genai_prices(DATA / "genai-prices" / "data.json", models=None, on=date(2026, 8, 21))
    sonnet = result.offers["anthropic-claude-sonnet-5"]
    # on 2026-08-21 the 2026-09-01 rise is not in force yet: 2 / 10, the rise noted
    assert (sonnet.usd_per_mtok_in, sonnet.usd_per_mtok_out) == (2, 10)
    assert "from 2026-09-01: 3.0 / 15.0" in sonnet.notes
    later = read_genai_prices(DATA / "genai-prices" / "data.json", models=None, on=date(2026, 12, 1))
    assert later.offers["anthropic-claude-sonnet-5"].usd_per_mtok_out == 15
    assert result.offers["groq-llama-4-maverick"].vendor == "groq"
    assert result.offers["google-gemini-3.5-flash"].usd_per_mtok_in == 1.5  # base tier
    assert ("groq:old-model", "deprecated in the price list") in result.skipped
    assert not any(o.provider.startswith("huggingface") for o in result.offers.values())


def test_litellm_reader_converts_per_token_to_per_mtok() -> None:
    path = DATA / "litellm" / "model_prices_and_context_window.json"
    result = read_litellm(path, models=None)
    maverick = result.offers["groq-llama-4-maverick"]
    assert (maverick.usd_per_mtok_in, maverick.usd_per_mtok_out) == (0.25, 0.75)  # 2.5e-7 x 1e6
    assert result.offers["deepseek-deepseek-v4-flash"].usd_per_mtok_out == pytest.approx(0.28)
    assert "openai-text-embedding-3-small" not in result.offers  # not a chat model


def test_import_prices_diff_keeps_curated_rows_and_writes_only_when_asked(catalog_dir: Path) -> None:
    before = (catalog_dir / "api_offers.csv").read_text()
    args = ["catalog", "import-prices", "--genai", str(DATA / "genai-prices" / "data.json")]
    dry = run_cli(*args, "--model", "llama-4-maverick", "--catalog-dir", str(catalog_dir))
    assert dry.exit_code == 0, dry.stderr
    out = dry.stdout
    # new host for a wanted model; the list's 1 / 5 replaces 0.8 / 4 (a row older than the list)
    assert "+ groq-llama-4-maverick" in out
    assert "~ anthropic-claude-haiku-4.5-standard: usd_per_mtok_in 0.8 -> 1; usd_per_mtok_out 4 -> 5" in out
    # Sonnet 5 was fixed after the list's date (2026-12-04 > 2026-08-21): kept at 2 / 10
    assert "anthropic-claude-sonnet-5-standard" not in out
    assert "claude-opus-9" not in out  # not a model polyfleet plans with, not asked for
    assert "0 removed" in out and (catalog_dir / "api_offers.csv").read_text() == before
    wrote = run_cli(*args, "--model", "llama-4-maverick", "--catalog-dir", str(catalog_dir), "--write")
    assert wrote.exit_code == 0, wrote.stderr
    rows = load_catalog_file(catalog_dir / "api_offers.csv").api_offers
    assert rows["anthropic-claude-haiku-4.5-standard"].usd_per_mtok_in == 1
    assert rows["anthropic-claude-sonnet-5-standard"].usd_per_mtok_out == 10
    assert rows["own-llama-3.3-70b"].usd_per_mtok_in == 0.1  # hand-curated, not in any list
    assert rows["groq-llama-4-maverick"].source.startswith(
        "https://github.com/pydantic/genai-prices/blob/47df840"
    )
    assert rows["groq-llama-4-maverick"].as_of == "<=2026-08-21"
    # --prune removes an earlier import's row the list no longer has
    pruned = run_cli(*args, "--catalog-dir", str(catalog_dir), "--prune", "--format", "json")
    assert json.loads(pruned.stdout)["removed"] == ["groq-llama-4-scout"]


def test_keep_curated_takes_the_bundled_fields_and_the_imported_price() -> None:
    old = ApiOffer(id="aws-m-global", provider="aws", model="m", usd_per_mtok_in=3, usd_per_mtok_out=15,
                   tier="global", retired="2026-11-30", as_of="2026-01-01", notes="curated")  # fmt: skip
    new = ApiOffer(id="aws-m", provider="aws", model="m", usd_per_mtok_in=2, usd_per_mtok_out=10,
                   as_of="2026-08-21", notes="imported")  # fmt: skip
    row = keep_curated(new, old, ("id", "tier", "retired"), "imported curated")
    assert (row.id, row.tier, row.retired) == ("aws-m-global", "global", "2026-11-30")
    assert (row.usd_per_mtok_in, row.usd_per_mtok_out, row.as_of) == (2, 10, "2026-08-21")
    assert row.notes == "imported curated"


def test_skypilot_fold_keeps_the_bundled_id_region_and_capacity() -> None:
    def offer(id_: str, region: str, usd: float, avail: int) -> Offer:
        return Offer(id=id_, provider="lambda", region=region, accelerator="nvidia-h100-sxm",
                     chips_per_instance=8, usd_per_chip_hour=usd, available_instances=avail,
                     notes="n")  # fmt: skip

    bundled = {"lambda-8x-h100-us": offer("lambda-8x-h100-us", "us", 2.99, 10)}
    imported = {"a": offer("a", "us-east-1", 3.99, 64), "b": offer("b", "us-west-1", 4.49, 64)}
    (row,) = onto_bundled(imported, bundled).values()
    assert (row.id, row.region, row.available_instances) == ("lambda-8x-h100-us", "us", 10)
    assert row.usd_per_chip_hour == 3.99  # the cheaper imported region
    assert row.notes.endswith("(imported region us-east-1)")


def test_import_prices_needs_a_source() -> None:
    result = run_cli("catalog", "import-prices")
    assert result.exit_code == 2 and "--genai" in result.stderr and "Traceback" not in result.stderr


VMS = """InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice
gpu_8x_h100_sxm5,H100,8,208,1800,31.92,us-east-1,,
gpu_8x_h100_sxm5,H100,8,208,1800,31.92,asia-south-1,,
gpu_1x_gh200,GH200,1,64,432,2.29,us-east-3,,
"""


def test_import_skypilot_refreshes_offers_csv(tmp_path: Path, catalog_dir: Path) -> None:
    folder = tmp_path / "sky" / "lambda"
    folder.mkdir(parents=True)
    (folder / "vms.csv").write_text(VMS)
    args = ["catalog", "import-skypilot", str(tmp_path / "sky"), "--catalog-dir", str(catalog_dir)]
    dry = run_cli(*args)
    assert dry.exit_code == 0, dry.stderr
    # 31.92 / 8 = 3.99 per chip; the bundled row keeps its id and region label
    assert "~ lambda-gpu-8x-h100-sxm5-us-on-demand: usd_per_chip_hour 2.99 -> 3.99" in dry.stdout
    assert "+ lambda-gpu-1x-gh200-us-east-3-on-demand" in dry.stdout
    assert "- lambda-gpu-1x-gone-us-on-demand" in dry.stdout  # the snapshot's shape is gone
    assert "own-h100" not in dry.stdout  # another provider, hand-curated: kept
    wrote = run_cli(*args, "--write", "--as-of", "2026-11-30")
    assert wrote.exit_code == 0, wrote.stderr
    offers = load_catalog_file(catalog_dir / "offers.csv").offers
    assert set(offers) == {
        "lambda-gpu-8x-h100-sxm5-us-on-demand",
        "lambda-gpu-1x-gh200-us-east-3-on-demand",
        "own-h100",
    }
    h100 = offers["lambda-gpu-8x-h100-sxm5-us-on-demand"]
    assert h100.usd_per_chip_hour == pytest.approx(3.99) and h100.as_of == "2026-11-30"
    assert "Cheapest of 2 rows" in h100.notes and h100.region == "us"


def test_hf_config_cards() -> None:
    llama = card_from_config(read_config(DATA / "hf" / "llama-3.1-8b-config.json"), name="llama")
    # 128256 x 4096 x 2 + 32 x (4096 x 128 x (2 x 32 + 2 x 8) + 3 x 4096 x 14336) = 8.03e9
    assert llama.params_b == pytest.approx(8.03, abs=0.005)
    assert llama.attention == "gqa" and llama.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2
    nxt = card_from_config(read_config(DATA / "hf" / "qwen3-next-80b-a3b-config.json"), name="qwen3-next")
    # hybrid: 48 layers, a full-attention layer every 4th -> 12 layers cache per token
    assert nxt.attention == "hybrid" and nxt.full_attention_layers == 12
    assert nxt.kv_bytes_per_token == 2 * 12 * 2 * 256 * 2  # 24 KiB per token at bf16
    assert nxt.experts == 512 and nxt.experts_per_token == 10
    with pytest.raises(ValueError, match="deepseek_v4"):
        card_from_config(read_config(DATA / "hf" / "deepseek-v4-config.json"), name="v4")


def test_import_hf_config_cli(catalog_dir: Path) -> None:
    config = DATA / "hf" / "qwen3-next-80b-a3b-config.json"
    args = ["catalog", "import-hf-config", str(config), "--name", "qwen3-next-80b-a3b", "--catalog-dir"]
    dry = run_cli(*args, str(catalog_dir))
    assert dry.exit_code == 0, dry.stderr
    assert "hybrid, KV 24.0 KiB/token" in dry.stdout and "+ qwen3-next-80b-a3b" in dry.stdout
    assert "qwen3-next" not in (catalog_dir / "models.csv").read_text()
    wrote = run_cli(*args, str(catalog_dir), "--params-b", "80", "--active-params-b", "3", "--write")
    assert wrote.exit_code == 0, wrote.stderr
    card = load_catalog_file(catalog_dir / "models.csv").models["qwen3-next-80b-a3b"]
    assert (card.params_b, card.active_params_b, card.full_attention_layers) == (80, 3, 12)
    assert "llama-3.3-70b" in load_catalog_file(catalog_dir / "models.csv").models  # kept
    rejected = run_cli("catalog", "import-hf-config", str(DATA / "hf" / "deepseek-v4-config.json"))
    assert rejected.exit_code == 2 and "deepseek_v4" in rejected.stderr
    assert len(rejected.stderr.strip().splitlines()) == 1
