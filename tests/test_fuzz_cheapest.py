"""``catalog cheapest`` when the size is offered but ``--nodes`` is more than any offer has
(session-8 fuzz): the message said the size was not offered while listing it."""

from __future__ import annotations

from conftest import run_cli


def _invoke(args: list[str]) -> tuple[int, str]:
    """Exit code and stderr of ``polyfleet ARGS`` (exceptions propagate: a traceback fails)."""
    result = run_cli(*args)
    return result.exit_code, result.stderr


def test_more_nodes_than_any_offer_has_names_nodes_and_the_most_available():
    code, err = _invoke(["catalog", "cheapest", "H100:8", "--nodes", "100000"])
    assert (code, err.count("\n")) == (1, 1)
    says = "no on-demand offer of exactly 8 x H100 per instance has 100,000 instances available (at most "
    assert err.startswith(f"polyfleet: --nodes: {says}") and "sizes offered" not in err
    code, err = _invoke(["catalog", "cheapest", "H100:7"])
    assert code == 1 and "sizes offered: " in err  # a size nobody offers: as before
