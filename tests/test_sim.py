"""Crossbar numerics: encoding round trip, exactness vs integer matmul, noise statistics, faults."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from xbarllm.mapping.encoding import base, digits
from xbarllm.sim import SimConfig, drop_stale_numba_caches, int8, kernel, numba_cache_dir, xbar_matmul
from xbarllm.sim.crossbar import adc_lsb
from xbarllm.sim.encoding import cell_energy, decode, encode, n_digits
from xbarllm.sim.faults import misread_probability, stored_weights
from xbarllm.sim.int8 import _int8_path
from xbarllm.sim.onecolumn import _column_pair
from xbarllm.sim.rng import log_cos_sin, normal_draws


@pytest.mark.parametrize("s", range(1, 9))
def test_every_int8_value_round_trips(s):
    x = torch.arange(-128, 128)
    d = encode(x.float(), s, n_digits(s, 128))
    assert torch.equal(decode(d, s), x)
    assert d.abs().max() <= 2**s - 1


def test_digit_counts_match_the_cost_model():
    # The simulator's symmetric INT8 needs exactly the digits the mapping charges cycles for.
    assert [n_digits(s, 127) for s in range(1, 8)] == [digits(s, 8) for s in range(1, 8)] == [6, 3, 3, 2, 2, 2, 1]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 4), st.integers(1, 300), st.integers(1, 9), st.integers(0, 2**31 - 1))
def test_roundtrip_any_range(s, bits_extra, max_abs, n, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-max_abs * bits_extra, max_abs * bits_extra + 1, (n,), generator=g)
    assert torch.equal(decode(encode(x.float(), s, n_digits(s, max_abs * bits_extra)), s), x)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 7), st.integers(1, 3), st.integers(1, 17), st.integers(1, 300), st.integers(1, 19),
       st.sampled_from([8, 16, 64, 128]), st.sampled_from([8, 11, 12]), st.sampled_from([1, 2, 3, 8]),
       st.integers(0, 2**31 - 1))
def test_noise_free_crossbar_equals_integer_matmul(s, G, M, K, N, rows, act_bits, copies, seed):
    g = torch.Generator().manual_seed(seed)
    top = 2 ** (act_bits - 1) - 1
    x = torch.randint(-top, top + 1, (G, M, K), generator=g).float()
    w = torch.randint(-127, 128, (G, K, N), generator=g).float()
    copies = min(copies, rows // s)
    wide = SimConfig(encoding_s=s, rows=rows, act_bits=act_bits, adc_bits=24, adc_policy="worst_case", copies=copies)
    assert adc_lsb(wide, rows // (s * copies), 127 * copies, n_digits(s, 127)).eq(1).all()
    out = xbar_matmul(x, w, wide)
    assert torch.equal(out, x.double() @ w.double())
    assert torch.equal(xbar_matmul(x, w, wide.model_copy(update={"adc_bits": None})), out)


def test_narrow_adc_is_not_exact_and_saturates():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-127, 128, (1, 32, 256), generator=g).float()
    w = torch.randint(-127, 128, (1, 256, 16), generator=g).float()
    ref = x.double() @ w.double()
    err8 = (xbar_matmul(x, w, SimConfig(adc_bits=8, adc_policy="worst_case")) - ref).norm() / ref.norm()
    err4 = (xbar_matmul(x, w, SimConfig(adc_bits=4, adc_policy="worst_case")) - ref).norm() / ref.norm()
    clipped = xbar_matmul(x, w, SimConfig(adc_bits=12, adc_policy="worst_case", adc_fullscale=0.01))
    assert 0 < err8 < err4 and (clipped - ref).abs().max() > 0


_U64, _GAMMA = 2**64 - 1, 0x9E3779B97F4A7C15


def _splitmix(z):
    z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9 & _U64
    z = (z ^ z >> 27) * 0x94D049BB133111EB & _U64
    return z ^ z >> 31


def _tie_coins(row, column_set, n_columns):
    """Per column n, whether a '+' and a '-' sum of this row (integers x_k) exactly on an ADC threshold round up:
    bits 63 and 62 of SplitMix64 hash n + 1 of (column set, Σ_k x_k·c_k mod 2^64, c_k = hash(k + 1) | 1)."""
    h = sum(int(v) % 2**64 * (_splitmix((k + 1) * _GAMMA & _U64) | 1) for k, v in enumerate(row.tolist())) & _U64
    ties = _splitmix(_splitmix(h) ^ column_set * _GAMMA & _U64)
    coins = [_splitmix(ties + (n + 1) * _GAMMA & _U64) for n in range(n_columns)]
    return [(c >> 63, c >> 62 & 1) for c in coins]


def _adc_by_definition(x, w, cfg, fullscale=None, over=None):
    """Per tile, digit and output: '+' and '-' column sums of matching / opposite sign products, each
    clamped and rounded by the ADC (or, over range under `reconvert`, rounded with the step × the
    smallest power of two covering the sum, at most the worst-case step), a sum exactly halfway between
    two codes up or down as `_tie_coins` says; then Σ_p B^p Σ_tile (q+ - q-); appends the count of
    over-range sums to `over`. Loops, no shared code with the kernel."""
    s, kt = cfg.encoding_s, cfg.rows // cfg.encoding_s
    D = n_digits(s, 127)
    G, M, N, T = x.shape[0], x.shape[1], w.shape[-1], -(-x.shape[-1] // kt)
    codes = 2**cfg.adc_bits - 1
    worst = float(adc_lsb(cfg.model_copy(update={"adc_fullscale": 1.0}), kt, int(w.abs().max()), D)[0])
    lsb = adc_lsb(cfg, kt, int(w.abs().max()), D, fullscale).double().expand(T, D)
    out = torch.zeros(G, M, N, dtype=torch.float64)
    dig = encode(x, s, D).double()
    n_over = 0
    for p in range(D):
        for t in range(T):
            d, wt = dig[p, ..., t * kt:(t + 1) * kt], w[:, t * kt:(t + 1) * kt].double()
            prod = d.unsqueeze(-1) * wt.unsqueeze(1)  # (G, M, kt, N)
            plus, minus = prod.clamp(min=0).sum(2), (-prod).clamp(min=0).sum(2)
            step, top = float(lsb[t, p]), float(lsb[t, p]) * codes
            for g in range(G):
                for m in range(M):
                    coins = _tie_coins(x[g, m], (g * T + t) * D + p, N)
                    for n in range(N):
                        q = []
                        for z, up in zip((float(plus[g, m, n]), float(minus[g, m, n])), coins[n], strict=True):
                            unit = step
                            if cfg.adc_overrange == "reconvert" and z > top:
                                while unit * codes < z:
                                    unit *= 2
                                unit = unit if unit * codes < worst * codes else worst
                            u = min(z, unit * codes) / unit
                            q.append((math.floor(u) + up if u % 1 == 0.5 else round(u)) * unit)
                            n_over += z > top
                        out[g, m, n] += base(s) ** p * (q[0] - q[1])
    if over is not None:
        over.append(n_over)
    return out


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 2), st.integers(1, 9), st.integers(1, 200), st.integers(1, 9),
       st.sampled_from([1, 2]), st.sampled_from([0.0, 0.05]), st.integers(0, 2**31 - 1))
def test_calibration_records_the_largest_column_sum_per_tile_and_digit(s, G, M, K, N, copies, rtn, seed):
    # Both kernel paths (one group with 64+-element tiles: int8 GEMMs; otherwise per row) record the peaks,
    # before any noise, in units of the copies' summed weights.
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-127, 128, (G, M, K), generator=g).float()
    w = torch.randint(-127, 128, (G, K, N), generator=g).float()
    cfg = SimConfig(encoding_s=s, adc_bits=None, copies=copies, rtn=rtn)
    kt, D = cfg.rows // (s * copies), n_digits(s, 127)
    seen = []
    xbar_matmul(x, w, cfg, observed=seen)
    dig, wr = encode(x, s, D).double(), copies * w.double()
    for t in range(-(-K // kt)):
        for p in range(D):
            prod = dig[p, ..., t * kt:(t + 1) * kt].unsqueeze(-1) * wr[:, t * kt:(t + 1) * kt].unsqueeze(1)
            peak = max(prod.clamp(min=0).sum(-2).max(), (-prod).clamp(min=0).sum(-2).max())
            assert seen[0][t][p] == peak.item()


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 9), st.integers(1, 200), st.integers(1, 9), st.sampled_from([3, 5, 8]),
       st.floats(0.02, 1.0), st.integers(0, 2**31 - 1))
@example(3, 9, 150, 1, 8, 0.05, 0)  # one column (`onecolumn`), with ties
def test_narrow_adc_equals_the_definition(s, M, K, N, bits, fullscale, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-127, 128, (1, M, K), generator=g).float()
    w = torch.randint(-127, 128, (1, K, N), generator=g).float()
    cfg = SimConfig(encoding_s=s, adc_bits=bits, adc_policy="worst_case", adc_fullscale=fullscale)
    stats, over = {}, []
    assert torch.equal(xbar_matmul(x, w, cfg, stats=stats), _adc_by_definition(x, w, cfg, over=over))
    assert stats["over_range"] == over[0]  # clipped sums are counted


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 4), st.integers(1, 9), st.integers(1, 200), st.integers(1, 9), st.sampled_from([3, 8]),
       st.floats(0.5, 5e4), st.integers(0, 2**31 - 1))
def test_over_range_sums_are_converted_again_on_a_wider_range(s, M, K, N, bits, peak, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-127, 128, (1, M, K), generator=g).float()
    w = torch.randint(-127, 128, (1, K, N), generator=g).float()
    cfg = SimConfig(encoding_s=s, adc_bits=bits, adc_overrange="reconvert")
    D, T = n_digits(s, 127), -(-K // (cfg.rows // s))
    fullscale = (torch.rand(T, D, generator=g) * peak).tolist()  # calibrated ranges, most sums above them
    stats, over = {}, []
    out = xbar_matmul(x, w, cfg, fullscale=fullscale, stats=stats)
    assert torch.equal(out, _adc_by_definition(x, w, cfg, fullscale, over))
    assert stats == {"conversions": 2 * M * T * D * N, "over_range": over[0]}
    clip, clip_stats = cfg.model_copy(update={"adc_overrange": "clip"}), {}
    clipped = xbar_matmul(x, w, clip, fullscale=fullscale, stats=clip_stats)
    assert torch.equal(clipped, _adc_by_definition(x, w, clip, fullscale)) and clip_stats == stats


@pytest.mark.parametrize("copies", [1, 4])
def test_rtn_amplitude_matches_the_setting(copies):
    # One digit per activation (S=7): the error is RTN over Σ (χ w)² exactly; `copies` independent copies of
    # each element's resistors add their currents, so the relative error falls by √copies.
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 2, (1, 4000, 8), generator=g).float()  # digits 0/1: one unit resistor each
    w = torch.full((1, 8, 1), 5.0)
    cfg = SimConfig(encoding_s=7, rows=128, adc_bits=None, rtn=0.05, act_bits=8, copies=copies)
    out = xbar_matmul(x, w, cfg, torch.Generator().manual_seed(2), x_max=1)
    ref = x.double() @ w.double()
    on = ref.squeeze() > 0
    rel = ((out - ref).squeeze()[on] / torch.sqrt(x.sum(-1).squeeze()[on].double() * 25))
    assert rel.std().item() == pytest.approx(0.05 / math.sqrt(copies), rel=0.05)
    assert abs(rel.mean().item()) < 0.005


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 3), st.integers(1, 9), st.integers(1, 300), st.integers(1, 9), st.sampled_from([2, 3, 8]),
       st.sampled_from([4, 8]), st.sampled_from(["clip", "reconvert"]), st.integers(0, 2**31 - 1))
def test_copies_are_a_weight_copies_times_larger_in_a_copies_times_shorter_tile(s, M, K, N, copies, bits, over,
                                                                               seed):
    # r copies of an element's rows carry the current of weight r·w in r times the rows; the ADC sees those
    # sums. So a chip with copies r computes what a copies-1 chip with rows // r and weights r·w does, / r.
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(-127, 128, (1, M, K), generator=g).float()
    w = torch.randint(-127, 128, (1, K, N), generator=g).float()
    cfg = SimConfig(encoding_s=s, adc_bits=bits, adc_policy="worst_case", adc_overrange=over, adc_fullscale=0.3)
    one = cfg.model_copy(update={"rows": cfg.rows // copies})
    assert torch.equal(xbar_matmul(x, w, cfg.model_copy(update={"copies": copies})),
                       xbar_matmul(x, w * copies, one) / copies)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 20), st.integers(1, 300), st.integers(2, 40), st.sampled_from([0.0, 0.05]),
       st.sampled_from([None, 3, 8]), st.sampled_from(["clip", "reconvert"]), st.sampled_from([1, 2, 8]),
       st.sampled_from([8, 11]), st.sampled_from([1, 5000, 1 << 22]), st.integers(0, 2**31 - 1))
def test_int8_gemm_path_equals_the_per_row_kernel_bit_for_bit(s, M, K, N, rtn, bits, over, copies, act_bits, chunk,
                                                               seed):
    # One group takes the int8 GEMM path (tiles of 64 elements here); group 0 of two identical groups takes the
    # per-row kernel, and both draw group 0's noise from the same streams. Zero-heavy activations exercise the
    # skipped digit slices; small GEMM chunks (`chunk` bytes: down to one row) the chunked operand layout.
    g = torch.Generator().manual_seed(seed)
    top = 2 ** (act_bits - 1) - 1
    x = torch.randint(-top, top + 1, (1, M, K), generator=g).float() * (torch.rand(1, M, K, generator=g) < 0.7)
    w = torch.randint(-127, 128, (1, K, N), generator=g).float()
    cfg = SimConfig(encoding_s=s, rows=64 * s * copies, adc_bits=bits, adc_policy="worst_case", adc_fullscale=0.1,
                    adc_overrange=over, rtn=rtn, copies=copies, act_bits=act_bits)
    one, two = {}, {}
    calls = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kernel, "_int8_path", lambda *a: calls.append(1) or _int8_path(*a))
        mp.setattr(int8, "_CHUNK_BYTES", chunk)
        a = xbar_matmul(x, w, cfg, torch.Generator().manual_seed(seed), stats=one)
        b = xbar_matmul(x.expand(2, M, K), w.expand(2, K, N), cfg, torch.Generator().manual_seed(seed), stats=two)
    assert calls == [1]
    assert torch.equal(a[0], b[0])
    if rtn == 0:  # without noise the groups differ only where ties meet other coins
        assert two["over_range"] == 2 * one["over_range"] and (bits is not None or torch.equal(b[1], b[0]))


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 6), st.integers(1, 300), st.sampled_from([0.0, 0.05]),
       st.sampled_from([None, 8]), st.sampled_from(["clip", "reconvert"]), st.sampled_from([1, 2, 5, 8]),
       st.sampled_from([8, 11]), st.integers(0, 2**31 - 1))
def test_one_column_kernel_equals_the_general_loop_bit_for_bit(s, G, M, K, rtn, bits, over, copies, act_bits, seed):
    # One-column products (norm statistics, row sums) take `onecolumn._one_column`; column 0 of a two-column
    # product (second column -w: same ADC range, column 0's draws and tie coins unchanged) takes the general loop.
    g = torch.Generator().manual_seed(seed)
    top = 2 ** (act_bits - 1) - 1
    x = torch.randint(-top, top + 1, (G, M, K), generator=g).float() * (torch.rand(G, M, K, generator=g) < 0.7)
    w = torch.randint(-127, 128, (G, K, 1), generator=g).float()
    cfg = SimConfig(encoding_s=s, rows=64 * s * copies, adc_bits=bits, adc_policy="worst_case", adc_fullscale=0.1,
                    adc_overrange=over, rtn=rtn, copies=copies, act_bits=act_bits)
    a = xbar_matmul(x, w, cfg, torch.Generator().manual_seed(seed))
    b = xbar_matmul(x, torch.cat([w, -w], -1), cfg, torch.Generator().manual_seed(seed))
    assert torch.equal(a[..., 0], b[..., 0])


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 3), st.integers(1, 70), st.sampled_from([1, 5, 8]), st.booleans(), st.integers(0, 2**31 - 1))
@example(2, 24, 5, True, 0)  # 24 terms of 5·635² (odd): float32 sums pass 2^24 and round
def test_column_pair_sums_as_float32_in_order(s, K, copies, saturate, seed):
    # The one-column loop sums exact integers; it must give what adding the terms in float32 in order of k gives
    # (the general loop), also where that rounds.
    rng = np.random.default_rng(seed)
    half = base(s) // 2
    d = np.full(K, half) * rng.choice([-1, 1], K) if saturate else rng.integers(-half, half + 1, K)
    w = np.full(K, 127 * copies) if saturate else rng.integers(-127, 128, K) * copies
    energy = cell_energy(s)
    ref = [np.float32(0)] * 4
    for v, c in zip(d, w.astype(np.float32), strict=True):
        if v == 0:
            continue
        f, e = np.float32(abs(v)), energy[abs(v)]
        p, q = (max(c, 0), max(-c, 0)) if v > 0 else (max(-c, 0), max(c, 0))
        ref = [ref[0] + f * p, ref[1] + f * q, ref[2] + e * p * p, ref[3] + e * q * q]
    chi = tuple(int(energy[1 << j]) for j in range(s))
    got = _column_pair(d.astype(np.int64), w.astype(np.int64), chi, 0, K, True)
    assert [np.float32(v) for v in got[:4]] == ref and got[4] == np.count_nonzero(d)


def test_noise_draws_are_standard_normal():
    # Kolmogorov-Smirnov distance to Φ, and the tail masses; the pairs' members are uncorrelated.
    pairs = normal_draws(12345, 200_000).reshape(-1, 2).astype(np.float64)
    assert abs(np.corrcoef(pairs.T)[0, 1]) < 5 / math.sqrt(len(pairs))
    x = np.sort(pairs.ravel())
    cdf = 0.5 * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    n = len(x)
    ks = max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))
    assert ks < 1.63 / math.sqrt(n)  # 1 % critical value
    for z in (1.0, 2.0, 3.0, 3.5):
        expect = math.erfc(z / math.sqrt(2))
        assert np.mean(np.abs(x) > z) == pytest.approx(expect, rel=5 * math.sqrt(1 / (n * expect)))
    assert abs(x.mean()) < 5 / math.sqrt(n) and x.std() == pytest.approx(1, abs=5 / math.sqrt(2 * n))


def test_box_muller_functions_match_libm():
    # ln u over u's whole range (every binade the kernel's u can reach) and cos/sin 2πt over [0, 1].
    rng = np.random.default_rng(0)
    u = np.concatenate([rng.random(1_000_000), 2.0 ** -rng.uniform(0, 33, 1_000_000), [2.0**-33, 0.5, 1.0]])
    t = np.concatenate([rng.random(1_000_000), np.linspace(0, 1, 100_001)])
    n = max(len(u), len(t))
    u, t = np.resize(u, n).astype(np.float32), np.resize(t, n).astype(np.float32)
    ln, c, s = log_cos_sin(u, t).astype(np.float64)
    ref = np.log(u.astype(np.float64))
    assert np.max(np.abs(ln - ref) / np.maximum(np.abs(ref), 1)) < 1.5e-7  # float32's half ulp is 6e-8
    angle = 2 * np.pi * t.astype(np.float64)
    assert np.max(np.abs(c - np.cos(angle))) < 2e-7 and np.max(np.abs(s - np.sin(angle))) < 2e-7


def test_same_seed_same_numbers():
    x = torch.randint(-127, 128, (1, 20, 100), generator=torch.Generator().manual_seed(3)).float()
    w = torch.randint(-127, 128, (1, 100, 7), generator=torch.Generator().manual_seed(4)).float()
    cfg = SimConfig(rtn=0.05)
    a = xbar_matmul(x, w, cfg, torch.Generator().manual_seed(9))
    b = xbar_matmul(x, w, cfg, torch.Generator().manual_seed(9))
    c = xbar_matmul(x, w, cfg, torch.Generator().manual_seed(10))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_noise_free_sums_on_a_threshold_round_either_way():
    # Without noise, a sum exactly halfway between two ADC codes rounds up or down as the smallest noise would
    # make it: by a coin, not to even. Column 0 holds the same sum 7·9 = 63 = 31.5 steps of 2 in every row (the
    # other elements meet zero weights there); it rounds up in about half of the rows, and equal rows round
    # alike. The product's key comes from the generator: the same seed gives the same coins, another seed others.
    g = torch.Generator().manual_seed(3)
    rest = torch.stack(torch.meshgrid(torch.arange(1, 21), torch.arange(1, 26), indexing="ij"), -1).reshape(-1, 2)
    x = torch.cat([torch.full((500, 1), 7), rest], 1).repeat(2, 1).float().unsqueeze(0)  # every row twice
    w = torch.cat([torch.tensor([[9, 0, 0]]).T, torch.randint(1, 8, (3, 4), generator=g)], 1).float().unsqueeze(0)
    cfg = SimConfig(encoding_s=7, adc_bits=8)
    out = xbar_matmul(x, w, cfg, fullscale=[[2.0 * 255]])  # a step of 2 unit products
    up = (out[0, :500, 0] - 63).unique(return_counts=True)
    assert up[0].tolist() == [-1, 1] and 0.4 < up[1][1] / 500 < 0.6
    assert torch.equal(out[0, :500], out[0, 500:])
    seeded = [xbar_matmul(x, w, cfg, torch.Generator().manual_seed(i), fullscale=[[2.0 * 255]]) for i in (0, 0, 1)]
    assert torch.equal(seeded[0], seeded[1]) and not torch.equal(seeded[0], seeded[2])


def test_column_duplication_does_not_change_numerics():
    # d_c only runs activations in parallel: splitting M into groups gives the same numbers.
    x = torch.randint(-127, 128, (1, 64, 200), generator=torch.Generator().manual_seed(5)).float()
    w = torch.randint(-127, 128, (1, 200, 9), generator=torch.Generator().manual_seed(6)).float()
    cfg = SimConfig(adc_bits=8, adc_policy="worst_case")
    whole = xbar_matmul(x, w, cfg)
    parts = torch.cat([xbar_matmul(x[:, i:i + 8], w, cfg) for i in range(0, 64, 8)], dim=1)
    assert torch.equal(whole, parts)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from([1, 2, 4, 8]), st.floats(0, 0.2), st.floats(0, 0.05), st.integers(0, 1000))
def test_storage_faults(bits, misread, stuck, seed):
    w = torch.randint(-127, 128, (64, 32), generator=torch.Generator().manual_seed(seed)).float()
    g = torch.Generator().manual_seed(seed)
    read = stored_weights(w, 8, bits, misread, stuck, g)
    assert read.shape == w.shape and read.abs().max() <= 128 and torch.equal(read, read.round())
    if misread == 0 and stuck == 0:
        assert torch.equal(read, w)
    assert torch.equal(read, stored_weights(w, 8, bits, misread, stuck, torch.Generator().manual_seed(seed)))


def test_fewer_levels_per_cell_misread_less_at_equal_noise():
    p = {b: misread_probability(0.05, b) for b in (1, 2, 3)}
    assert p[1] < p[2] < p[3] and misread_probability(0.0, 2) == 0.0
    # 2 levels: half gap 0.5 = 10 σ at σ = 0.05; 4 levels: 0.1667 = 3.33 σ
    assert p[2] == pytest.approx(math.erfc(3.3333 / math.sqrt(2)), rel=1e-3)


def test_base_of_encoding():
    assert [base(s) for s in (1, 2, 3)] == [3, 7, 15]


def test_per_tile_adc_reference_beats_per_site_when_one_tile_holds_the_outliers():
    """Large weights in one K-tile set a shared full scale; per-tile references keep the other tiles fine."""
    g = torch.Generator().manual_seed(0)
    x = torch.randint(-3, 4, (1, 32, 256), generator=g).float()
    w = torch.randint(-4, 5, (1, 256, 16), generator=g).float()
    w[:, :64] = torch.randint(-127, 128, (1, 64, 16), generator=g).float()  # tile 0 (64 rows at S=2)
    seen: list = []
    xbar_matmul(x, w, SimConfig(adc_bits=None), observed=seen)
    peak = torch.tensor(seen).amax(0)  # (tiles, digits)
    small = x.clone()
    small[..., :64] = 0  # only the small tiles contribute
    exact = small.double() @ w.double()
    errs = {}
    for name, fs in (("site", peak.amax(0).tolist()), ("tile", peak.tolist())):
        out = xbar_matmul(small, w, SimConfig(adc_bits=8), fullscale=fs)
        errs[name] = float((out - exact).abs().mean())
    assert errs["tile"] < 0.5 * errs["site"], errs


def test_activation_smoothing_reduces_int8_error_on_outlier_channels():
    """A few large input channels ruin per-token INT8 scales; smoothing moves their range into the weights."""
    from torch import nn

    from xbarllm.sim.modules import install

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 96, generator=g)
    x[:, :3] *= 60  # outlier channels, as in LLM activations
    errs = {}
    for alpha in (None, 0.5):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(96, 32))
        ref = model(x).detach()
        chip = install(model, SimConfig(mode="int8", smooth_alpha=alpha, stages="linear"))
        chip.calibrate(lambda m=model: m(x))
        errs[alpha] = float((model(x).detach() - ref).pow(2).mean() / ref.pow(2).mean())
    assert errs[0.5] < 0.5 * errs[None], errs


def test_overflowed_rows_come_out_nan_instead_of_stopping_the_run():
    from xbarllm.sim.modules import Products

    chip = Products(SimConfig(adc_bits=None))
    x = torch.randn(1, 4, 16)
    x[0, 1, 3] = float("inf")
    out = chip.product(x, torch.randn(1, 16, 5), "site")
    assert out[0, 1].isnan().all() and torch.isfinite(out[0, [0, 2, 3]]).all()


@pytest.mark.parametrize("scale, overflows", [(1.0, 0), (40.0, 1)])
def test_attention_counts_calls_whose_exp_overflows(scale, overflows):
    from xbarllm.sim.modules import Products, xbar_attention

    module = torch.nn.Module()
    module.xbar_chip = Products(SimConfig(mode="fp32"))
    q, k, v = torch.randn(3, 1, 2, 5, 8, generator=torch.Generator().manual_seed(0))
    q[0, 0, 1] = scale  # scores up to 40² · 8 / √8 > 88, where float32 EXP overflows
    k[0, 0, 2] = scale
    xbar_attention(module, q, k, v, None)
    assert (module.xbar_chip.exp_calls, module.xbar_chip.exp_overflows) == (1, overflows)


@pytest.mark.parametrize("act_bits", [8, 6])
def test_norm_statistics_from_a_row_quantised_once_match_quantising_each_operand(act_bits):
    # XbarNorm quantises a row once (Y = Xᵀ's integers at equal bit widths) and takes a quantised ones column
    # expanded over tokens; that must give, draw for draw, what quantising every operand of both products gives.
    from xbarllm.sim.modules import Products, XbarNorm

    u = torch.randn(5, 7, 96, generator=torch.Generator().manual_seed(3)) * 3
    cfg = SimConfig(rtn=0.05, act_bits=act_bits, adc_policy="worst_case")
    outs = []
    for once in (True, False):
        chip = Products(cfg)
        if not once:
            chip.rows, chip.ones = (lambda x: x), (lambda groups, k: torch.ones(groups, k, 1))
        with torch.no_grad():
            outs.append(XbarNorm(torch.nn.LayerNorm(96), chip, rms=False)(u))
    assert torch.equal(outs[0], outs[1])


@given(st.floats(-33, 30), st.integers(4, 16), st.integers(0, 2**31))  # scales stay float32-normal (> 1.2e-38)
@settings(max_examples=60, deadline=None)
def test_quantize_keeps_full_resolution_at_any_magnitude(log10_peak, bits, seed):
    # A row of EXP values near 1e-16 (a token whose only visible score is very negative, without max
    # subtraction) must keep its ±(2^(bits-1)-1) levels, not quantise to zeros (stop 25: 0/0 in softmax).
    from xbarllm.sim.quant import quantize

    x = torch.randn(3, 9, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).float()
    x = x / x.abs().amax(-1, keepdim=True) * 10.0**log10_peak
    x[2] = 0.0
    q, scale = quantize(x, bits, dim=-1)
    top = 2 ** (bits - 1) - 1
    assert (q[:2].abs().amax(-1) == top).all() and (q[2] == 0).all() and torch.isfinite(scale).all()
    # within half a step, plus float32's rounding of x / scale and q · scale (2^-24 of up to `top` steps each)
    assert ((q * scale - x)[:2].abs() <= (0.5 + top * 2.0**-22) * scale[:2]).all()


@given(st.lists(st.integers(1, 7), min_size=1, max_size=3), st.integers(0, 2), st.integers(2, 16), st.floats(-44, 38),
       st.sampled_from([None, 0.0, float("inf"), float("-inf"), float("nan")]),
       st.sampled_from(["", "T", "::2", ":-1"]), st.integers(0, 2**31))
@settings(max_examples=200, deadline=None)
def test_quantize_kernel_equals_the_torch_operations(shape, dim, bits, log10_peak, special, layout, seed):
    # float32 takes a numba kernel; it must give the torch operations' integers and scales (NaN where they are
    # NaN), along any axis, on transposed or strided input, at any magnitude (subnormal scales too), with inf/NaN
    # slices.
    from xbarllm.sim.quant import _quantize_torch, quantize

    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 10.0**log10_peak).float()
    if special is not None:
        x.view(-1)[int(torch.randint(0, x.numel(), (1,), generator=g))] = special
    x = {"": x, "T": x.transpose(0, -1), "::2": x[..., ::2], ":-1": x[..., :max(1, x.shape[-1] - 1)]}[layout]
    dim = dim % x.dim()
    (q, scale), (ref_q, ref_scale) = quantize(x, bits, dim), _quantize_torch(x, bits, dim)
    assert q.shape == ref_q.shape and scale.shape == ref_scale.shape
    assert torch.equal(q, ref_q) and torch.equal(scale.isnan(), ref_scale.isnan())
    assert torch.equal(scale.nan_to_num(-1.0), ref_scale.nan_to_num(-1.0))
    if special is None:  # an input that requires grad keeps a differentiable scale, with the same values
        q_grad, scale_grad = quantize(x.detach().requires_grad_(), bits, dim)
        assert scale_grad.requires_grad and torch.equal(q_grad, q) and torch.equal(scale_grad.detach(), scale)


def test_softmax_of_one_very_negative_score_is_one():
    # The paper's softmax (no max subtraction) of a row with a single visible score of -36: EXP gives 2e-16,
    # the row sum divides it out again; the result must be 1, not NaN.
    from xbarllm.sim.modules import Products

    e = torch.zeros(1, 2, 8)
    e[0, :, 0] = math.exp(-36.0)
    e[0, 1, 1] = math.exp(-37.0)
    v = torch.randn(1, 8, 4, generator=torch.Generator().manual_seed(0))
    for mode in ("int8", "xbar", "xbar_stat"):
        for adc_bits in (None, 8):  # ideal ADC: exact up to 8-bit operands; 8-bit ADC: finite
            chip = Products(SimConfig(mode=mode, adc_bits=adc_bits))
            out = chip.product(e, v, "sv") / chip.product(e, torch.ones(1, 8, 1), "rowsum")
            assert torch.isfinite(out).all(), (mode, adc_bits)
            if adc_bits is None:
                assert torch.allclose(out[0, 0], v[0, 0], rtol=0.01, atol=0.01), (mode, out[0, 0], v[0, 0])


def test_quantile_calibration_sets_a_smaller_full_scale_than_the_peak():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(-3, 4, (1, 64, 128), generator=g).float()
    w = torch.randint(-127, 128, (1, 128, 32), generator=g).float()
    peak, q99 = [], []
    xbar_matmul(x, w, SimConfig(adc_bits=None), observed=peak)
    xbar_matmul(x, w, SimConfig(adc_bits=None, adc_clip_quantile=0.99), observed=q99)
    peak, q99 = torch.tensor(peak[0]), torch.tensor(q99[0])
    assert peak.shape == q99.shape and (q99 <= peak).all() and (q99 < peak).any()


def test_analog_mode_adds_the_rtn_model_error_to_exact_products():
    """Analog control: no quantisation; the error of each output is Gaussian with std rtn·sqrt(Σ x²w²)."""
    from pydantic import ValidationError
    from torch import nn

    from xbarllm.sim.modules import install

    x = torch.randn(2000, 64, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16))
    ref = model(x).detach()
    scale = torch.sqrt((x * x) @ (model[0].weight.detach() ** 2).t())
    install(model, SimConfig(mode="analog", rtn=0.0, stages="linear"))
    assert torch.equal(model(x).detach(), ref)
    model[0].chip.cfg = SimConfig(mode="analog", rtn=0.05)
    rel = ((model(x).detach() - ref) / scale).flatten()
    assert rel.std().item() == pytest.approx(0.05, rel=0.03) and abs(rel.mean().item()) < 0.002
    model[0].chip.cfg = SimConfig(mode="analog", rtn=0.05, copies=4)  # four resistor copies: half the error
    rel = ((model(x).detach() - ref) / scale).flatten()
    assert rel.std().item() == pytest.approx(0.025, rel=0.03)
    with pytest.raises(ValidationError, match="stuck_rate"):
        SimConfig(mode="analog", stuck_rate=1e-3)
    with pytest.raises(ValidationError, match="copies: 40 copies of 2 rows do not fit in 64 rows"):
        SimConfig(encoding_s=2, rows=64, copies=40)


def test_products_keep_the_callers_thread_count():
    # Launching numba's OpenMP pool (the first parallel product in a process) resets the process's OpenMP
    # thread count to every core; a caller who asked torch for one thread must still get one, in a new process.
    code = ("import torch, numba\ntorch.set_num_threads(1)\nfrom xbarllm.sim import SimConfig, xbar_matmul\n"
            "for g in (2, 1):\n    xbar_matmul(torch.ones(g, 4, 8), torch.ones(g, 8, 3), SimConfig())\n"
            "print(torch.get_num_threads(), numba.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "1"]


def test_kernel_rejects_an_energy_table_that_is_not_a_sum_over_resistors():
    x, w = np.ones((2, 1, 8), np.float32), np.ones((2, 8, 1), np.float32)
    lsb = np.ones((1, 2), np.float32)
    with pytest.raises(ValueError, match="energy"):
        kernel.crossbar(x, w, np.array([0, 1, 4, 6], np.float32), 2, 2, 64, 0.05, 0, lsb, lsb)


@pytest.mark.parametrize("user_dir", [False, True])
def test_numba_caches_are_found_where_numba_writes_them(tmp_path, monkeypatch, user_dir):
    # A cached function compiled for real, by default beside its source and with NUMBA_CACHE_DIR set under it:
    # the guard finds its files and drops them when the sources change.
    import importlib.util

    import numba

    monkeypatch.setattr(numba.config, "CACHE_DIR", str(tmp_path / "user") if user_dir else "")
    package = tmp_path / "pkg"
    package.mkdir()
    source = package / "m.py"
    source.write_text("from numba import njit\n\n@njit(cache=True)\ndef f(x):\n    return x + 1\n")
    assert drop_stale_numba_caches(package)  # no digest yet: stamps it
    spec = importlib.util.spec_from_file_location("xbarllm_cache_probe", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.f(1) == 2
    written = [f for f in tmp_path.rglob("*") if f.suffix in (".nbi", ".nbc")]
    assert written and {f.parent for f in written} == {numba_cache_dir(package)}
    assert numba_cache_dir(package).parent == (tmp_path / "user" if user_dir else package)
    assert not drop_stale_numba_caches(package) and all(f.exists() for f in written)
    source.write_text(source.read_text() + "\ny = 1\n")
    assert drop_stale_numba_caches(package) and not any(f.exists() for f in written)


def test_numba_caches_are_dropped_when_any_numba_module_of_the_package_changes(tmp_path, monkeypatch):
    import numba

    monkeypatch.setattr(numba.config, "CACHE_DIR", "")  # numba's default: __pycache__ beside the sources
    (tmp_path / "a.py").write_text("from numba import njit\n")
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    files = [cache / "a.f-1.py311.nbi", cache / "a.f-1.py311.1.nbc"]

    def cached():
        for f in files:
            f.write_bytes(b"")

    cached()
    assert drop_stale_numba_caches(tmp_path) and not any(f.exists() for f in files)  # no digest yet
    cached()
    assert not drop_stale_numba_caches(tmp_path) and all(f.exists() for f in files)  # sources unchanged
    (tmp_path / "b.py").write_text("y = 2  # numba\n")  # a module that does not import numba: nothing to recompile
    assert not drop_stale_numba_caches(tmp_path) and all(f.exists() for f in files)
    (tmp_path / "c.py").write_text("import numba\n")  # another numba module of the package changes
    assert drop_stale_numba_caches(tmp_path) and not any(f.exists() for f in files)


@pytest.mark.parametrize("preset", [None, "+avx2"])
def test_numba_targets_512_bit_vectors_on_avx512_hosts_unless_told_otherwise(preset):
    # Importing xbarllm.sim in a fresh process sets numba's target features (before its first function); a
    # NUMBA_CPU_FEATURES of the user's own is kept.
    import os

    import llvmlite.binding as ll

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CPU_FEATURES"}
    if preset:
        env["NUMBA_CPU_FEATURES"] = preset
    probe = ("import xbarllm.sim.rng\nfrom numba.core import registry\n"
             "print(registry.cpu_target.target_context.codegen()._tm_features)")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    features = out.stdout.strip()
    if preset:
        assert features == preset
    else:
        wide = bool(ll.get_host_cpu_features().get("avx512f"))
        assert features.endswith(",-prefer-256-bit") == wide
