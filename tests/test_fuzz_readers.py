"""Input readers the session-8 mutation fuzz broke: each a one-line error naming the file, exit 2.

Every case runs in-process in milliseconds (no plan is solved).
"""

from __future__ import annotations

import os

import pytest

from conftest import run_cli


def _invoke(args: list[str]) -> tuple[int, str]:
    """Exit code and stderr of ``polyfleet ARGS`` (exceptions propagate: a traceback fails)."""
    result = run_cli(*args)
    return result.exit_code, result.stderr


@pytest.fixture
def small_reads(monkeypatch):
    """Inputs capped at 1 MiB and a 0.05 s wait for a pipe: the same rules, in milliseconds."""
    import polyfleet.yamlio as yamlio

    monkeypatch.setattr(yamlio, "MAX_BYTES", 2**20)
    monkeypatch.setattr(yamlio, "READ_WAIT_S", 0.05)


@pytest.mark.parametrize(
    ("name", "args", "line"),
    [
        ("plan.json", ["export", "skypilot", "{src}", "--workload", "ft"], ""),
        ("m.jsonl", ["perf", "calibrate", "{src}", "--out", "{dir}/cal.yaml"], ":1"),
        ("config.json", ["catalog", "import-hf-config", "{src}"], ""),
        ("data.json", ["catalog", "import-prices", "--genai", "{src}"], ""),
        ("prices.json", ["catalog", "import-prices", "--litellm", "{src}"], ""),
    ],
)
def test_json_nested_past_the_parser_is_one_line(tmp_path, name, args, line):
    """Was a RecursionError traceback from json.loads (a 100,000-deep array)."""
    src = tmp_path / name
    src.write_text("[" * 100_000 + "\n")
    code, err = _invoke([a.format(src=src, dir=tmp_path) for a in args])
    assert code == 2
    assert err.startswith(f"polyfleet: {src}{line}: nested too deeply for JSON (at most about ")
    assert err.count("\n") == 1
    assert not (tmp_path / "cal.yaml").exists()


@pytest.mark.parametrize("source", ["/dev/zero", "fifo"])
def test_perf_calibrate_refuses_an_endless_device_or_a_silent_pipe(tmp_path, small_reads, source):
    """Was a hang (a named pipe nobody writes to) or a MemoryError (/dev/zero)."""
    if source == "fifo":
        source = str(tmp_path / "fifo.csv")
        os.mkfifo(source)
    code, err = _invoke(["perf", "calibrate", source, "--out", tmp_path / "cal.yaml"])
    assert code == 2
    why = "more than 1 MiB (an endless device?)" if source == "/dev/zero" else "no data for 0.05 s"
    assert err.startswith(f"polyfleet: {source}: cannot read measurements: {why}") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("extra-offers.csv", ["catalog", "cheapest", "H100:8", "--catalog", "{src}"]),
        ("m.csv", ["perf", "calibrate", "{src}", "--out", "{dir}/cal.yaml"]),
    ],
)
def test_a_csv_cell_past_the_field_limit_names_its_line(tmp_path, name, args):
    """A catalog CSV cell over csv's 131,072 characters was a csv.Error traceback (plan with
    the file in catalog:, catalog cheapest --catalog); perf calibrate named line 1, not 2."""
    src = tmp_path / name
    header = "model,weight_dtype,accelerator,tensor_parallel,input_tokens,output_tokens"
    src.write_text(f"{header},output_tokens_per_s_whole_tp_group\n" + "x" * 200_000 + "\n")
    code, err = _invoke([a.format(src=src, dir=tmp_path) for a in args])
    assert (code, err) == (2, f"polyfleet: {src}:2: malformed CSV: field larger than field limit (131072)\n")


def _plan_with_catalog(tmp_path, catalog: str) -> tuple[int, str]:
    """``polyfleet plan`` of a one-api-workload spec whose ``catalog:`` is ``catalog``."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"catalog: {catalog}\n"
        "workloads: [{name: x, kind: api, model: m, mtok_in_per_month: 1, mtok_out_per_month: 1}]\n"
    )
    return _invoke(["plan", spec])


def test_a_spec_catalog_csv_past_the_field_limit_is_one_line(tmp_path):
    (tmp_path / "extra-offers.csv").write_text("id,provider\n" + "x" * 200_000 + "\n")
    code, err = _plan_with_catalog(tmp_path, "[extra-offers.csv]")
    assert code == 2 and err.count("\n") == 1
    assert "extra-offers.csv:2: malformed CSV: field larger than field limit" in err


@pytest.mark.parametrize(
    ("rows", "says"),
    [
        ("5", ":1: offers: expected a list of rows, one mapping each, got 5"),
        ("true", ":1: offers: expected a list of rows, one mapping each, got True"),
        ("abc", ":1: offers: expected a list of rows, one mapping each, got 'abc'"),
        ("[7]", ":1: offers[0]: Input should be a valid dictionary"),
        ("\n  - {id: x}", ":2: offers[0].provider: Field required"),
    ],
)
def test_a_yaml_catalog_section_that_is_not_a_list_of_rows(tmp_path, rows, says):
    """``offers: 5`` was a TypeError traceback ('int' object is not iterable); ``offers: abc``
    was read letter by letter; a bad row named no row."""
    (tmp_path / "extra.yaml").write_text(f"offers: {rows}\n")
    code, err = _plan_with_catalog(tmp_path, "[bundled, extra.yaml]")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"polyfleet: {tmp_path / 'extra.yaml'}{says}"), err


def test_a_measurements_header_past_the_field_limit_is_one_line(tmp_path):
    """The header is read before the rows' csv.Error guard: it was a csv.Error traceback."""
    src = tmp_path / "m.csv"
    src.write_text("model," + "x" * 200_000 + "\n")
    code, err = _invoke(["perf", "calibrate", src, "--out", tmp_path / "cal.yaml"])
    assert (code, err) == (2, f"polyfleet: {src}:1: malformed CSV: field larger than field limit (131072)\n")


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_skypilot_vms_csv_that_is_not_a_file(tmp_path, small_reads, kind):
    """A vms.csv directory was an IsADirectoryError traceback; a FIFO one a hang."""
    vms = tmp_path / "aws" / "vms.csv"
    vms.parent.mkdir()
    if kind == "directory":
        vms.mkdir()
    else:
        os.mkfifo(vms)
    code, err = _invoke(["catalog", "import-skypilot", tmp_path])
    why = "a directory, not a file" if kind == "directory" else "no data for 0.05 s"
    assert code == 2
    assert err.startswith(f"polyfleet: {vms}: cannot read SkyPilot catalog CSV: {why}")
    assert err.count("\n") == 1


@pytest.mark.parametrize("entry", ["", "skypilot:", "skypilot: "])
def test_an_empty_catalog_entry_is_refused_not_read_as_the_current_folder(tmp_path, entry):
    """'skypilot:' imported every vms.csv under the current (or the spec's) folder; '' named
    the folder as a catalog file and '<spec>' as the culprit."""
    expected = f"expected bundled, skypilot:DIR or a catalog file, got {entry!r}"
    code, err = _invoke(["catalog", "cheapest", "H100:8", "--catalog", entry])
    assert (code, err) == (2, f"polyfleet: --catalog: {expected}\n")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"catalog: [bundled, {entry!r}]\n"
        "workloads: [{name: x, kind: api, model: m, mtok_in_per_month: 1, mtok_out_per_month: 1}]\n"
    )
    code, err = _invoke(["plan", spec])
    assert (code, err) == (2, f"polyfleet: {spec}:1: catalog[1]: {expected}\n")


def test_export_skypilot_refuses_a_plan_with_a_key_twice(tmp_path):
    """json.loads kept the last of two 'total_usd' keys silently; risk and report refuse them."""
    plan = tmp_path / "plan.json"
    plan.write_text('{"total_usd": 1, "total_usd": 2, "workloads": []}')
    code, err = _invoke(["export", "skypilot", plan, "--workload", "ft"])
    assert (code, err) == (2, f"polyfleet: {plan}: duplicate key 'total_usd': expected each key once\n")
