"""Catalog importers on price lists and configs of another shape (session-8 fuzz): one line
naming the file and the entry, exit 2 (were TypeError/AttributeError/ValueError tracebacks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli

DATA = Path(__file__).parent / "data"


def _invoke(args: list[str]) -> tuple[int, str]:
    """Exit code and stderr of ``polyfleet ARGS`` (exceptions propagate: a traceback fails)."""
    result = run_cli(*args)
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("hidden_size", [4096], "hidden_size: expected a whole number >= 0, got [4096]"),
        ("num_key_value_heads", "8", "num_key_value_heads: expected a whole number >= 0, got '8'"),
        ("vocab_size", 1.5, "vocab_size: expected a whole number >= 0, got 1.5"),
        ("text_config", 3, "text_config: expected a mapping, got 3"),
    ],
)
def test_a_config_count_of_another_type_names_the_key(tmp_path, key, value, says):
    config = json.loads((DATA / "hf/llama-3.1-8b-config.json").read_text())
    config[key] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    code, err = _invoke(["catalog", "import-hf-config", path, "--name", "x"])
    assert (code, err) == (2, f"polyfleet: {path}: {says}\n")


def test_a_config_whose_card_is_refused_names_the_card_field(tmp_path):
    config = json.loads((DATA / "hf/llama-3.1-8b-config.json").read_text())
    config["max_position_embeddings"] = 0
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    code, err = _invoke(["catalog", "import-hf-config", path, "--name", "x"])
    assert code == 2 and err.startswith(f"polyfleet: {path}: context_tokens: the model card it makes: ")
    assert err.count("\n") == 1


def _provider(data: list) -> dict:
    """The first provider entry the importer reads (one it maps, with models)."""
    from polyfleet.catalog.import_prices import GENAI_PROVIDERS

    return next(p for p in data if p.get("id") in GENAI_PROVIDERS and p.get("models"))


def _price_list(data: list, what: str) -> None:
    """``data`` with one entry swapped for ``what`` the fuzz found broke the importer."""
    if what == "provider":
        data[0] = 7
    elif what == "models":
        _provider(data)["models"] = 3
    elif what == "model":
        _provider(data)["models"][0] = "x"
    elif what == "prices":
        _provider(data)["models"][0]["prices"] = 5
    else:
        _provider(data)["models"][0]["prices"] = [{"constraint": {"start_date": "soon"}, "prices": {}}]


@pytest.mark.parametrize(
    ("what", "says"),
    [
        ("provider", "[0]: expected a provider object, got 7"),
        ("models", ".models: expected a list of models, got 3"),
        ("model", ".models[0]: expected a model object, got 'x'"),
        ("prices", ".models[0]: not a genai-prices model entry ('int' object is not iterable)"),
        ("date", ".models[0]: not a genai-prices model entry (Invalid isoformat string: 'soon')"),
    ],
)
def test_a_genai_price_list_of_another_shape_names_the_entry(tmp_path, what, says):
    data = json.loads((DATA / "genai-prices/data.json").read_text())
    _price_list(data, what)
    path = tmp_path / "data.json"
    path.write_text(json.dumps(data))
    code, err = _invoke(["catalog", "import-prices", "--genai", path])
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"polyfleet: {path}: [") and says in err, err


def test_a_litellm_cost_that_rounds_to_nothing_names_the_entry(tmp_path):
    path = tmp_path / "prices.json"
    entry = {"litellm_provider": "groq", "mode": "chat", "input_cost_per_token": 1e-7}
    path.write_text(json.dumps({"groq/x": entry | {"output_cost_per_token": 1e-300}}))
    code, err = _invoke(["catalog", "import-prices", "--litellm", path, "--model", "x"])
    assert (code, err) == (
        2,
        f"polyfleet: {path}: groq/x: not a LiteLLM price entry (Input should be greater than 0)\n",
    )


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_source_note_beside_a_price_list_that_is_not_a_file_is_passed_over(tmp_path, kind):
    """The importer reads SOURCE.md beside the list for its date: a directory there was an
    IsADirectoryError traceback, a named pipe a hang; the list is now imported undated."""
    import os

    path = tmp_path / "data.json"
    path.write_text((DATA / "genai-prices/data.json").read_text())
    note = tmp_path / "SOURCE.md"
    note.mkdir() if kind == "directory" else os.mkfifo(note)
    code, err = _invoke(["catalog", "import-prices", "--genai", path, "--format", "json"])
    assert code == 0, err
