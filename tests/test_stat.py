"""The crossbar's error in distribution (mode xbar_stat) against the bit-level path."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from xbarllm.sim import SimConfig, xbar_matmul
from xbarllm.sim.modules import Products
from xbarllm.sim.stat import stat_matmul


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 9), st.integers(1, 1500), st.integers(1, 9),
       st.sampled_from([4, 8, 10, 14, 16]), st.sampled_from([None, 24]), st.integers(0, 2**31 - 1))
def test_noise_free_with_a_fine_adc_is_the_integer_product(G, M, K, N, act_bits, adc_bits, seed):
    # An ideal ADC, or one whose step is a unit product (24 bits), adds nothing: the exact product, on the int8,
    # float32 and float64 paths.
    g = torch.Generator().manual_seed(seed)
    top = 2 ** (act_bits - 1) - 1
    x = torch.randint(-top, top + 1, (G, M, K), generator=g).float()
    w = torch.randint(-127, 128, (G, K, N), generator=g).float()
    cfg = SimConfig(mode="xbar_stat", act_bits=act_bits, adc_bits=adc_bits, adc_policy="worst_case",
                    stat_max_adc_share=1.0)  # the model itself, not the bit level it hands rounding-only products
    assert torch.equal(stat_matmul(x, w, cfg, g).double(), (x.double() @ w.double()).float().double())


def test_activations_beyond_act_bits_that_the_digits_hold():
    # 8-bit activations have 3 base-7 digits, which hold up to ±171: such values index the digit tables safely.
    g = torch.Generator().manual_seed(5)
    x = torch.randint(-171, 172, (1, 30, 200), generator=g).float()
    w = torch.randint(-127, 128, (1, 200, 20), generator=g).float()
    cfg = SimConfig(mode="xbar_stat", adc_bits=24, adc_policy="worst_case", stat_max_adc_share=1.0)
    assert torch.equal(stat_matmul(x, w, cfg, g).double(), x.double() @ w.double())
    noisy = stat_matmul(x, w, cfg.model_copy(update={"rtn": 0.05}), g)
    assert torch.isfinite(noisy).all() and not torch.equal(noisy.double(), x.double() @ w.double())


def _operands(G, M, K, N, seed, sparse=False, top=127):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(G, M, K, generator=g) * top / 4).round().clamp(-top, top)  # activations: mostly small
    if sparse:  # a few non-zero elements per tile: many '+' or '-' columns stay empty and convert to 0
        x *= torch.rand(G, M, K, generator=g) < 0.03
    w = torch.randint(-127, 128, (G, K, N), generator=g).float()
    return x, w


@pytest.mark.parametrize(("rtn", "adc", "copies", "G", "sparse", "act_bits"), [
    (0.05, "calibrated", 1, 1, False, 8), (0.25, "calibrated", 1, 1, False, 8), (0.0, "calibrated", 1, 1, False, 8),
    (0.0, "worst_case", 1, 1, False, 8), (0.05, "worst_case", 2, 1, False, 8), (0.05, "calibrated", 1, 64, False, 8),
    (0.05, "calibrated", 1, 1, True, 8), (0.0, "calibrated", 1, 1, True, 8), (0.05, "calibrated", 1, 1, False, 11)])
def test_error_variance_matches_the_bit_level_path(rtn, adc, copies, G, sparse, act_bits):
    x, w = _operands(G, 256 // G, 300, 128, 0, sparse, 2 ** (act_bits - 1) - 1)
    cfg = SimConfig(rtn=rtn, adc_policy=adc, copies=copies, act_bits=act_bits)
    fullscale = None
    if adc == "calibrated":  # the largest column sums of these operands: nothing clips
        seen = []
        xbar_matmul(x, w, cfg.model_copy(update={"adc_bits": None, "rtn": 0.0}), observed=seen)
        fullscale = seen[0]
    exact = x.double() @ w.double()
    bit = xbar_matmul(x, w, cfg, torch.Generator().manual_seed(1), fullscale=fullscale) - exact
    stat_cfg = cfg.model_copy(update={"mode": "xbar_stat", "stat_max_adc_share": 1.0})  # never the bit level
    stat = stat_matmul(x, w, stat_cfg, torch.Generator().manual_seed(1), fullscale=fullscale).double() - exact
    ratio = (stat**2).mean() / (bit**2).mean()
    assert ratio == pytest.approx(1, abs=0.06), float(ratio)
    assert abs(stat.mean()) < 0.05 * stat.std()


def test_same_seed_same_numbers_on_any_thread_count():
    x, w = _operands(1, 40, 200, 30, 3)
    cfg = SimConfig(mode="xbar_stat", rtn=0.05)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        a = stat_matmul(x, w, cfg, torch.Generator().manual_seed(9))
        torch.set_num_threads(2)
        b = stat_matmul(x, w, cfg, torch.Generator().manual_seed(9))
    finally:
        torch.set_num_threads(threads)
    c = stat_matmul(x, w, cfg, torch.Generator().manual_seed(10))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_one_column_products_stay_bit_level_in_a_model():
    x, w = _operands(5, 1, 300, 1, 4)  # a norm statistic: one token, one column
    cfg = SimConfig(mode="xbar_stat", rtn=0.05, adc_policy="worst_case")
    bit = xbar_matmul(x, w, cfg.model_copy(update={"mode": "xbar"}), torch.Generator().manual_seed(0))
    assert torch.equal(Products(cfg).matmul(x, w, "norm.meansq"), bit.float())


def test_clipping_configurations_are_refused():
    for field, value in (("adc_clip_quantile", 0.99), ("adc_fullscale", 0.5)):
        with pytest.raises(ValidationError, match=f"xbar_stat does not model clipping; {field} must be 1"):
            SimConfig(mode="xbar_stat", **{field: value})


def test_products_whose_error_is_mostly_rounding_run_at_the_bit_level():
    # Rounding is a deterministic function of the column sums; where it carries more than stat_max_adc_share of
    # the modelled error variance, stat_matmul hands the product to the bit level (same generator, same numbers).
    x, w = _operands(1, 64, 300, 40, 6)
    for cfg, handed_over in ((SimConfig(), True),  # noise-free: all rounding
                             (SimConfig(rtn=0.05, adc_bits=4, adc_policy="worst_case"), True),  # coarse steps
                             (SimConfig(rtn=0.05, adc_bits=4, adc_policy="worst_case", stat_max_adc_share=1), False),
                             (SimConfig(rtn=0.25, adc_bits=8, adc_policy="worst_case"), False)):  # RTN dominates
        stats, bit_stats = {}, {}
        stat = stat_matmul(x, w, cfg.model_copy(update={"mode": "xbar_stat"}), torch.Generator().manual_seed(2),
                           stats=stats)
        bit = xbar_matmul(x, w, cfg, torch.Generator().manual_seed(2), stats=bit_stats).float()
        assert torch.equal(stat, bit) == handed_over, cfg
        assert ("over_range_unknown" not in stats) == handed_over and stats["conversions"] == bit_stats["conversions"]
