"""``plan --backends`` with a file the plan cannot use (session-8 fuzz): exactly one line on
stderr, the spec's warnings left out (they came first: three lines for one bad input)."""

from __future__ import annotations

from conftest import run_cli


def _invoke(args: list[str]) -> tuple[int, str]:
    """Exit code and stderr of ``polyfleet ARGS`` (exceptions propagate: a traceback fails)."""
    result = run_cli(*args)
    return result.exit_code, result.stderr


def test_a_backends_file_without_the_planned_offer_is_one_line(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(  # a retired model: the plan warns about it
        "workloads:\n  - {name: office, kind: api, model: claude-sonnet-4.5,"
        " mtok_in_per_month: 10, mtok_out_per_month: 2}\n"
    )
    backends = tmp_path / "backends.yaml"
    backends.write_text("backends:\n  nobody-offer: {url: 'http://127.0.0.1:9/v1'}\n")
    routes = tmp_path / "routes.yaml"
    code, err = _invoke(["plan", spec, "--backends", backends, "--routes", routes])
    assert code == 2
    assert err.startswith(f"polyfleet: {backends}:1: backends: no entry for offer ")
    assert err.count("\n") == 1 and "warning" not in err
    assert not routes.exists()
