"""Precision columns: one dense paper-peak basis, blank = not supported, GiB converted to GB."""

from __future__ import annotations

import pytest

from polyfleet.catalog.io import load_bundled
from polyfleet.catalog.models import Accelerator


@pytest.fixture(scope="module")
def accs():
    return load_bundled().accelerators


def test_fp4_uses_its_own_column_on_blackwell_and_cdna4(accs):
    # HGX B200: 144 PF FP4 with sparsity per 8 GPUs -> 144/8/2 = 9 PF dense per GPU
    assert accs["nvidia-b200"].peak_tflops("fp4") == 9000
    assert accs["nvidia-gb200"].peak_tflops("fp4") == 10000
    assert accs["amd-mi355x"].peak_tflops("fp4") == 10100
    # Trainium3: MXFP4 at the MXFP8 rate, no gain
    assert accs["aws-trainium3"].peak_tflops("fp4") == accs["aws-trainium3"].fp8_tflops == 2517


def test_fp4_on_a_chip_without_fp4_runs_at_the_next_wider_rate(accs):
    h100 = accs["nvidia-h100-sxm"]
    assert h100.fp4_tflops is None
    assert h100.peak_tflops("fp4") == 1979  # its FP8 rate
    a100 = accs["nvidia-a100-80gb"]
    assert a100.peak_tflops("fp4") == a100.peak_tflops("fp8") == 312  # no FP8 either: BF16


def test_blank_bf16_is_not_supported_never_the_fp8_figure(accs):
    maia = accs["microsoft-maia-200"]
    assert maia.bf16_tflops is None and maia.fp8_tflops == 5072
    assert maia.peak_tflops("bf16") is None
    assert maia.peak_tflops("fp8") == 5072


def test_int8_uses_int8_tops_then_bf16_not_fp8():
    chip = Accelerator(
        id="x", vendor="v", bf16_tflops=100, fp8_tflops=200, hbm_gb=1, hbm_tbps=1, stack="cuda"
    )
    assert chip.peak_tflops("int8") == 100
    assert chip.model_copy(update={"int8_tops": 400}).peak_tflops("int8") == 400


def test_gaudi3_on_the_paper_peak_basis(accs):
    # the white paper's 1835, not the 1677 shipping-clock derate (that lives in perf defaults)
    assert accs["intel-gaudi3"].bf16_tflops == accs["intel-gaudi3"].fp8_tflops == 1835


@pytest.mark.parametrize(
    ("acc_id", "gib"),
    [("google-tpu-v5p", 95), ("google-tpu7x", 192), ("aws-trainium2", 96), ("aws-trainium3", 144)],
)
def test_gib_quotes_are_converted_to_gb(accs, acc_id, gib):
    assert accs[acc_id].hbm_gb == pytest.approx(gib * 2**30 / 1e9, abs=0.1)


def test_new_late_2026_chips_present(accs):
    for acc_id in (
        "nvidia-b300",
        "nvidia-gb300",
        "nvidia-gh200",
        "nvidia-rtx-pro-6000",
        "amd-mi350x",
        "nvidia-a10",
    ):
        acc = accs[acc_id]
        assert acc.source and acc.as_of, acc_id
    assert accs["nvidia-b300"].peak_tflops("fp4") == 13100
    assert accs["nvidia-rtx-pro-6000"].peak_tflops("bf16") is None  # no published dense rate


def test_every_rate_is_on_one_dense_basis(accs):
    # narrower formats are never slower than wider ones on the same chip
    for acc in accs.values():
        rates = [acc.bf16_tflops, acc.fp8_tflops, acc.fp6_tflops, acc.fp4_tflops]
        known = [r for r in rates if r]
        assert known == sorted(known), acc.id
