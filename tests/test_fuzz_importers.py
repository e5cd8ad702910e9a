"""Catalog importers on price lists and configs of another shape (session-8 fuzz): one line
naming the file and the entry, exit 2 (were TypeError/AttributeError/ValueError tracebacks)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from polyfleet.cli import main

DATA = Path(__file__).parent / "data"


def _invoke(args: list[str]) -> tuple[int, str]:
    """Exit code and stderr of ``polyfleet ARGS`` (exceptions propagate: a traceback fails)."""
    try:
        runner = CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        runner = CliRunner()
    result = runner.invoke(main, [str(a) for a in args], catch_exceptions=False)
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
