"""RapidGrad (zoharness.influence.rapidgrad): a seeded linear map whose shuffle is a bijection that
scatters neighbours like a uniform permutation, whose inner products are unbiased with variance
shrinking in K, and whose header refuses a cache built for another map."""

import math

import pytest
import torch

from zoharness.influence.rapidgrad import RapidGrad, check_same_sketch, flatten_normalised, layout
from zoharness.io import DataError

EPS32 = torch.finfo(torch.float32).eps


def _randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _oracle(rg: RapidGrad, u: torch.Tensor, k: int) -> torch.Tensor:
    """The documented map written as a scatter: input i adds s[π(i)]·u_i to bin π(i) // B."""
    pos = rg.positions()[: rg.dim]
    signed = rg.signs()[pos].to(u.dtype) * u
    return torch.zeros(k, dtype=u.dtype).index_add_(0, pos // (rg.padded_dim // k), signed)


@pytest.mark.parametrize("dim,ks", [(4000, (8, 32, 1000)), (1000, (4, 10, 100)), (4096, (64,))])
def test_sketch_is_permute_sign_and_bin_sum(dim, ks):
    rg = RapidGrad(dim, ks, seed=7)
    u = _randn(dim, dtype=torch.float64)
    got = rg.sketch(u)
    assert sorted(got) == sorted(ks)
    for k in ks:
        assert got[k].dtype == torch.float64 and got[k].shape == (k,)
        torch.testing.assert_close(got[k], _oracle(rg, u, k), rtol=0, atol=1e-12)


def test_sketch_is_linear_for_several_k():
    rg = RapidGrad(4000, (8, 32, 1000), seed=1)
    u, v = _randn(4000, seed=1), _randn(4000, seed=2)
    a, b = 0.75, -2.5
    su, sv, mixed = rg.sketch(u), rg.sketch(v), rg.sketch(a * u + b * v)
    for k in rg.ks:
        # Float32 tolerance: a bin sums B = padded_dim/K terms, so each side carries at most ~B·eps32 of
        # the bin's absolute sum (recursive-summation bound), plus the rounding of a·u + b·v itself.
        bin_size = rg.padded_dim // k
        scale = (a * u.abs().max() + abs(b) * v.abs().max()).item() * bin_size
        torch.testing.assert_close(mixed[k], a * su[k] + b * sv[k], rtol=0, atol=4 * bin_size * EPS32 * scale)


def test_positions_are_a_permutation_and_one_hot_lands_in_one_bin_with_a_sign():
    rg = RapidGrad(1000, (4, 10, 100), seed=3)
    pos = rg.positions()
    assert torch.equal(torch.sort(pos).values, torch.arange(rg.padded_dim))
    for i in (0, 1, 499, 999):
        e = torch.zeros(1000)
        e[i] = 1.0
        sketches = rg.sketch(e)
        values = set()
        for k, s in sketches.items():
            nonzero = torch.nonzero(s).flatten().tolist()
            assert nonzero == [pos[i].item() // (rg.padded_dim // k)]
            values.add(s[nonzero[0]].item())
        assert len(values) == 1 and values <= {1.0, -1.0}  # one signed slot, seen by every K


def test_shuffle_scatters_neighbours_like_a_uniform_permutation():
    # One fixed r×c view permuted by rows then columns would keep a row's c neighbours together (they
    # would share a bin ~K times too often); the alternating views must mix them.
    rg = RapidGrad(2**16, 64, seed=11)
    bins = rg.positions() // (rg.padded_dim // 64)
    uniform = (rg.padded_dim // 64 - 1) / (rg.padded_dim - 1)
    for gap in (1, 7, rg.cols, rg.rows):
        rate = (bins[:-gap] == bins[gap:]).double().mean().item()
        # ~65k pairs at rate ~1/64 give a standard error of ~3% of the rate; 25% is a wide margin.
        assert abs(rate / uniform - 1) < 0.25, (gap, rate, uniform)


def test_lam_zero_is_signs_only_and_the_layout_keeps_indices_small():
    signs_only = RapidGrad(4096, 64, seed=0, lam=0)
    assert torch.equal(signs_only.positions(), torch.arange(4096))
    signs = signs_only.signs()
    assert signs.dtype == torch.int8 and set(signs.tolist()) == {-1, 1}
    assert abs(signs.double().mean().item()) < 5 / math.sqrt(4096)  # fair coins: 5 standard errors
    for dim in (1000, 4096, 135_000_000):
        padded, r, c = layout(dim, [2**6])
        assert r * c == padded and dim <= padded < dim + max(dim // 64, 64)
        assert r >= 4 * c  # makes the two views overlap (module docstring)
        assert r <= 4 * math.sqrt(padded) + 16  # 2λ·r stored indices, not padded_dim


def test_several_k_at_once_equal_one_k_at_a_time_and_are_nested():
    u = _randn(4000, seed=5)
    both = RapidGrad(4000, (8, 32), seed=9)
    assert both.padded_dim == RapidGrad(4000, 8, seed=9).padded_dim  # powers of two: dim alone decides
    together = both.sketch(u)
    for k in (8, 32):
        assert torch.equal(together[k], RapidGrad(4000, k, seed=9).sketch(u)[k])
    # Same slots, coarser bins: each K=8 bin is the sum of 4 consecutive K=32 bins.
    torch.testing.assert_close(together[8], together[32].view(8, 4).sum(1), rtol=1e-6, atol=1e-5)


def test_same_arguments_give_identical_sketches_and_another_seed_differs():
    u = _randn(4096, seed=2)
    a, b = RapidGrad(4096, (64, 512), seed=42), RapidGrad(4096, (64, 512), seed=42)
    other = RapidGrad(4096, (64, 512), seed=43)
    sa, sb, so = a.sketch(u), b.sketch(u), other.sketch(u)
    for k in (64, 512):
        assert torch.equal(sa[k], sb[k])
        assert not torch.equal(sa[k], so[k])
    assert torch.equal(a.positions(), b.positions()) and not torch.equal(a.positions(), other.positions())


def test_inner_products_are_unbiased_with_the_predicted_variance():
    dim, k, seeds = 4096, 64, 200
    # An offset, as gradients often have: with Σu·Σv large, signs that were not ±1 at random would add a
    # bias of ~(B−1)/(D−1)·Σu·Σv, ~100 standard errors here.
    u = _randn(dim, seed=1, dtype=torch.float64) + 0.5
    v = 0.6 * u + _randn(dim, seed=2, dtype=torch.float64)
    exact = torch.dot(u, v).item()
    est = torch.tensor(
        [torch.dot(*(RapidGrad(dim, k, seed=s).sketch(w)[k] for w in (u, v))).item() for s in range(seeds)],
        dtype=torch.float64,
    )
    # For a uniformly scattering shuffle Var = (B−1)/(D−1)·(‖u‖²‖v‖² + <u,v>² − 2Σu²v²) (module docstring).
    bin_size = dim // k
    var = (bin_size - 1) / (dim - 1) * (u.dot(u) * v.dot(v) + exact**2 - 2 * (u * u * v * v).sum()).item()
    standard_error = math.sqrt(var / seeds)
    assert abs(est.mean().item() - exact) < 5 * standard_error
    # The sample variance of 200 draws is within ±~10% (1 sd) of the true one; 0.65..1.5 is ~4 sd.
    assert 0.65 < est.var().item() / var < 1.5


def test_inner_product_error_shrinks_as_k_grows():
    u = _randn(4096, seed=3, dtype=torch.float64)
    v = 0.5 * u + _randn(4096, seed=4, dtype=torch.float64)
    u, v = u / u.norm(), v / v.norm()
    exact = torch.dot(u, v).item()
    errors = {64: 0.0, 2048: 0.0}
    for seed in range(20):
        rg = RapidGrad(4096, (64, 2048), seed=seed)
        su, sv = rg.sketch(u), rg.sketch(v)
        for k in errors:
            errors[k] += abs(torch.dot(su[k], sv[k]).item() - exact) / abs(exact) / 20
    # The error's sd scales as 1/√K: ~5.7x smaller at 2048 than at 64; ask for 2.5x.
    assert errors[2048] < errors[64] / 2.5, errors


def test_normalise_gives_unit_sketches_and_zero_stays_zero():
    rg = RapidGrad(4096, (64, 512), seed=0, normalise=True)
    for k, s in rg.sketch(_randn(4096, seed=8)).items():
        assert abs(s.norm().item() - 1) < 1e-5, k
    for s in rg.sketch(torch.zeros(4096)).values():
        assert torch.equal(s, torch.zeros_like(s))
    zero_rows = rg.sketch_batch(torch.zeros(2, 4096))
    assert all(not s.isnan().any() and not s.any() for s in zero_rows.values())


def test_sketch_batch_equals_sketch_per_row():
    rg = RapidGrad(1000, (4, 10, 100), seed=4, normalise=True)
    mat = _randn(5, 1000, seed=6)
    mat[2] = 0.0
    batch = rg.sketch_batch(mat)
    for k in rg.ks:
        assert batch[k].shape == (5, k) and batch[k].dtype == torch.float32
        torch.testing.assert_close(batch[k], torch.stack([rg.sketch(row)[k] for row in mat]), rtol=0, atol=0)


def test_low_precision_input_is_sketched_in_float32():
    rg = RapidGrad(1000, 10, seed=0)
    u = _randn(1000, seed=1).to(torch.bfloat16)
    got = rg.sketch(u)[10]
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, rg.sketch(u.float())[10], rtol=0, atol=0)


def test_header_records_the_map():
    h = RapidGrad(4000, (32, 8), seed=5, lam=3).header()
    assert h["sketch"] == "rapidgrad" and h["format"] == 2 and h["seed"] == 5 and h["lam"] == 3
    assert h["ks"] == [8, 32] and h["dim"] == 4000 and h["padded_dim"] == 4000 and h["reshape"] == [250, 16]
    assert h["normalise"] is False and "randperm" in h["draw_order"] and h["torch"]


@pytest.mark.parametrize(
    "key,cached_arg,wanted_arg,shown",
    [
        ("seed", {"seed": 1}, {"seed": 2}, "header seed is 1, but the run asks for 2"),
        ("ks", {"ks": (8, 32)}, {"ks": 8}, "header ks is [8, 32], but the run asks for [8]"),
        ("lam", {"lam": 20}, {"lam": 5}, "header lam is 20, but the run asks for 5"),
        ("dim", {"dim": 4000}, {"dim": 4096}, "header dim is 4000, but the run asks for 4096"),
    ],
)
def test_check_same_sketch_refuses_another_map(key, cached_arg, wanted_arg, shown):
    base = {"dim": 4000, "ks": (8, 32), "seed": 0}
    cached = RapidGrad(**{**base, **cached_arg}).header()
    wanted = RapidGrad(**{**base, **wanted_arg}).header()
    with pytest.raises(DataError) as err:
        check_same_sketch(cached, wanted, "cache.npz")
    assert str(err.value).startswith("cache.npz: ") and shown in str(err.value)


def test_check_same_sketch_passes_equal_headers_and_reports_missing_keys():
    header = RapidGrad(4000, (8, 32), seed=0).header()
    check_same_sketch(dict(header), header, "cache.npz")  # no error
    old = {k: v for k, v in header.items() if k != "draw_order"}
    with pytest.raises(DataError, match="header draw_order is missing"):
        check_same_sketch(old, header, "old.npz")
    with pytest.raises(DataError, match="bad.json: the sketch header is a list"):
        check_same_sketch([], header, "bad.json")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"dim": 0, "ks": 1}, "dim must be an integer >= 1, got 0"),
        ({"dim": 100, "ks": 0}, "K must be an integer >= 1, got 0"),
        ({"dim": 100, "ks": (10, 128)}, "K=128 is larger than dim=100"),
        ({"dim": 100, "ks": []}, "ks must name at least one K"),
        ({"dim": 100, "ks": 10, "lam": -1}, "lam must be an integer >= 0, got -1"),
        ({"dim": 100, "ks": 10, "seed": -3}, "seed must be an integer >= 0, got -3"),
        ({"dim": 100, "ks": 10, "seed": True}, "seed must be an integer >= 0, got True"),
        ({"dim": 20, "ks": (13, 11)}, "least common multiple 143"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, match):
    kwargs.setdefault("seed", 0)
    with pytest.raises(ValueError, match=match):
        RapidGrad(**kwargs)


def test_wrong_input_shape_or_dtype_names_both_shapes():
    rg = RapidGrad(100, 10, seed=0)
    with pytest.raises(ValueError, match=r"expected a vector of shape \(100,\), got \(99,\)"):
        rg.sketch(torch.zeros(99))
    with pytest.raises(ValueError, match=r"expected a vector of shape \(100,\), got \(1, 100\)"):
        rg.sketch(torch.zeros(1, 100))
    with pytest.raises(ValueError, match=r"shape \(n, 100\), got \(100,\)"):
        rg.sketch_batch(torch.zeros(100))
    with pytest.raises(ValueError, match="floating-point tensor, got dtype torch.int64"):
        rg.sketch(torch.zeros(100, dtype=torch.int64))


def test_flatten_normalised_gives_each_tensor_unit_norm_and_keeps_zeros():
    tensors = [
        _randn(3, 4, seed=1) * 50,
        torch.zeros(5),
        _randn(7, seed=2, dtype=torch.float64),
        torch.ones(2),
    ]
    flat = flatten_normalised(tensors)
    assert flat.dtype == torch.float32 and flat.shape == (12 + 5 + 7 + 2,)
    pieces = torch.split(flat, [12, 5, 7, 2])
    for piece in (pieces[0], pieces[2], pieces[3]):
        assert abs(piece.norm().item() - 1) < 1e-6
    assert torch.equal(pieces[1], torch.zeros(5)) and not flat.isnan().any()
    torch.testing.assert_close(pieces[0], (tensors[0] / tensors[0].norm()).flatten())  # order and values
    with pytest.raises(ValueError, match="no tensors"):
        flatten_normalised([])
    with pytest.raises(ValueError, match="tensor 1 must be a floating-point tensor, got torch.int64"):
        flatten_normalised([torch.ones(2), torch.ones(2, dtype=torch.int64)])
