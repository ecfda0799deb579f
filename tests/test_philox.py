"""The counter-based Gaussian (zoharness.philox): the C kernel equals its torch-op reference bit for bit,
z[i] depends on (seed, i) only, the values are standard normal, the convention is pinned, and a machine
without a C compiler gets the same numbers from the fallback."""

import ctypes
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
from scipy import stats

from zoharness import philox

SEEDS = [0, 1, 2**32 - 1, 2**63 + 987654321, 2**64 - 1]
# (start, n): tile-aligned, unaligned heads and tails, one value, and blocks across 2^32 (counter high word)
RANGES = [(0, 1000), (3, 129), (61, 7), (12345, 1), (4 * 2**32 - 130, 517)]


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("start,n", RANGES)
def test_kernel_equals_the_torch_reference_bit_for_bit(seed, start, n):
    got = philox.fill(torch.empty(n), seed, start)
    assert torch.equal(_bits(got), _bits(philox.reference(start, n, seed)))


# The kernel's SIMD paths, widest first: each is built with the flags that switch the wider ones off.
SIMD_PATHS = {"avx512": (), "avx2": ("-mno-avx512f",), "portable": ("-mno-avx512f", "-mno-avx2")}


def _cpu_has(flag: str) -> bool:
    return f" {flag}" in philox._cpu_tag()


@pytest.mark.parametrize("path", list(SIMD_PATHS))
def test_every_simd_path_gives_the_reference_bits(path, tmp_path):
    """Replays on another machine depend on this: the AVX-512, AVX2 and portable builds draw the same
    integers and floats. A path needs a C compiler and, for the vector ones, a CPU that runs it."""
    if not philox.kernel_available():
        pytest.skip("no C compiler: the reference path is the only one")
    if path != "portable" and not _cpu_has({"avx512": "avx512f", "avx2": "avx2"}[path]):
        pytest.skip(f"this CPU has no {path}")
    lib = ctypes.CDLL(str(philox._build(tmp_path, SIMD_PATHS[path])))
    lib.zo_philox_gauss_axpy.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64]
    lib.zo_philox_gauss_axpy.argtypes += [ctypes.c_float]
    for seed in SEEDS[1:4]:
        for start, n in RANGES + [(17, 70_001)]:
            x = torch.zeros(n)
            lib.zo_philox_gauss_axpy(x.data_ptr(), start, n, seed, 1.0)
            assert torch.equal(_bits(x), _bits(philox.reference(start, n, seed) + 0.0)), (path, seed, start)


def test_a_value_depends_on_its_index_only_not_on_the_chunking():
    whole = philox.fill(torch.empty(10_000), 42)
    for lo, hi in [(0, 1), (1, 64), (64, 65), (65, 4097), (4097, 10_000)]:
        assert torch.equal(_bits(philox.fill(torch.empty(hi - lo), 42, lo)), _bits(whole[lo:hi]))


def test_fused_axpy_adds_the_float32_product_and_equals_the_reference():
    x = torch.randn(10_001, generator=torch.Generator().manual_seed(0))
    expected = x + philox.reference(5, x.numel(), 99) * -0.37  # product rounded to float32, then the sum
    philox.axpy_(x, 99, -0.37, start=5)
    assert torch.equal(_bits(x), _bits(expected))


@pytest.mark.parametrize("start,n", RANGES + [(17, 70_001)])
def test_the_two_seed_pass_equals_two_axpy_passes_bit_for_bit(start, n):
    """A ZO step's deferred update fused with the next perturbation (zoharness.zo) changes no bit."""
    x = torch.randn(n, generator=torch.Generator().manual_seed(n))
    two = philox.axpy_(philox.axpy_(x.clone(), SEEDS[3], 1e-3 - 2.5e-5, start), SEEDS[1], 1e-3, start)
    one = philox.axpy2_(x.clone(), SEEDS[3], 1e-3 - 2.5e-5, SEEDS[1], 1e-3, start)
    assert torch.equal(_bits(one), _bits(two))


@pytest.mark.parametrize("two_seeds", [False, True])
@pytest.mark.parametrize("threads", [1, 3])
def test_a_many_range_sweep_on_threads_equals_one_call_per_range(two_seeds, threads):
    """philox.sweep (one C call per thread, ranges taken from a shared counter) leaves every range as its
    own axpy_/axpy2_ call leaves it, whichever thread takes it."""
    if not philox.kernel_available():
        pytest.skip("no C compiler: sweep is None and the caller uses axpy_ per range")
    g = torch.Generator().manual_seed(7)
    tensors = [torch.randn(shape, generator=g) for shape in [(300, 7), (5,), (1,), (64, 64), (1001,)]]
    ranges = [
        (0, 0, 1050),
        (3, 0, 4000),
        (3, 4000, 4096),
        (4, 0, 1001),
        (0, 1050, 2100),
        (1, 0, 5),
        (2, 0, 1),
    ]
    seeds_a, seeds_b = SEEDS, [s ^ 0x5555 for s in SEEDS]
    expected = [t.clone() for t in tensors]
    for i, lo, hi in ranges:
        x = expected[i].view(-1)[lo:hi]
        if two_seeds:
            philox.axpy2_(x, seeds_a[i], 0.25, seeds_b[i], -1e-3, start=lo)
        else:
            philox.axpy_(x, seeds_a[i], 0.25, start=lo)
    run = philox.sweep(tensors, ranges, seeds_a, 0.25, seeds_b if two_seeds else None, -1e-3)
    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    for got, want in zip(tensors, expected, strict=True):
        assert torch.equal(_bits(got), _bits(want))


def test_a_sweep_over_a_tensor_the_kernel_cannot_take_is_left_to_the_caller():
    assert (
        philox.sweep([torch.zeros(4), torch.zeros(4, dtype=torch.float64)], [(0, 0, 4)], [1, 2], 1.0) is None
    )
    assert philox.sweep([torch.zeros(4, 2).t()], [(0, 0, 8)], [1], 1.0) is None


@pytest.mark.parametrize("path", list(SIMD_PATHS))
def test_every_simd_path_of_the_two_seed_pass_gives_the_two_passes_bits(path, tmp_path):
    if not philox.kernel_available():
        pytest.skip("no C compiler: the reference path is the only one")
    if path != "portable" and not _cpu_has({"avx512": "avx512f", "avx2": "avx2"}[path]):
        pytest.skip(f"this CPU has no {path}")
    lib = ctypes.CDLL(str(philox._build(tmp_path, SIMD_PATHS[path])))
    u64, f32 = ctypes.c_uint64, ctypes.c_float
    lib.zo_philox_gauss_axpy2.argtypes = [ctypes.c_void_p, u64, u64, u64, f32, u64, f32]
    for start, n in RANGES:
        x = torch.randn(n, generator=torch.Generator().manual_seed(1))
        expected = x + philox.reference(start, n, SEEDS[2]) * 0.75
        expected = expected + philox.reference(start, n, SEEDS[4]) * -0.125
        lib.zo_philox_gauss_axpy2(x.data_ptr(), start, n, SEEDS[2], 0.75, SEEDS[4], -0.125)
        assert torch.equal(_bits(x), _bits(expected)), (path, start)


# Random123's known-answer vectors for philox4x32, 10 rounds (kat_vectors: counter, key -> output).
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF, 0xFFFFFFFF), (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_philox_matches_random123_known_answers(counter, key, expected):
    words = [torch.tensor([c], dtype=torch.int64) for c in counter]
    assert [int(w) for w in philox.philox4x32_10(*words, *key)] == list(expected)


def test_pinned_values():
    """The convention never changes silently: replays of logged runs depend on these exact bits."""
    got = [v.hex() for v in philox.reference(0, 8, 2**63 + 987654321).tolist()]
    assert got == PINNED


PINNED = [
    "0x1.1be13c0000000p+0",
    "0x1.5be9660000000p-3",
    "-0x1.6da2940000000p-1",
    "-0x1.b96aca0000000p+0",
    "-0x1.0e31c80000000p+1",
    "-0x1.48fd8c0000000p-2",
    "-0x1.135e6a0000000p-4",
    "-0x1.c9f8f40000000p-2",
]


def test_values_are_standard_normal_and_uncorrelated():
    """1M draws: mean, variance, kurtosis within ~5 standard errors; a KS test against N(0, 1) that a
    correct generator fails with probability 1e-4; the four lanes of a Philox block uncorrelated."""
    n = 1 << 20
    z = philox.fill(torch.empty(n), 2024).double().numpy()
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs((z**4).mean() - 3) < 5 * np.sqrt(96 / n)
    assert stats.kstest(z, "norm").pvalue > 1e-4
    lanes = z.reshape(-1, 4)
    corr = np.corrcoef(lanes.T)[np.triu_indices(4, 1)]
    assert np.abs(corr).max() < 5 / np.sqrt(n // 4)
    assert np.isfinite(z).all() and np.abs(z).max() < 6.0  # u >= 2^-24 bounds |z| by sqrt(2·24·ln 2) = 5.77


def test_other_dtypes_take_the_reference_path_with_float32_products():
    x = torch.zeros(300, dtype=torch.bfloat16)
    philox.axpy_(x, 7, 0.5)
    assert torch.equal(x, (philox.reference(0, 300, 7) * 0.5).to(torch.bfloat16))


def test_without_the_kernel_the_same_numbers_come_from_torch_ops(tmp_path):
    """ZOHARNESS_PHILOX_KERNEL=0 (what a machine without a C compiler gets, with a warning) gives the
    kernel's bits."""
    code = (
        "import torch, sys; from zoharness import philox; assert not philox.kernel_available(); "
        "x = torch.ones(777); philox.axpy_(x, 5, 0.25, start=3); "
        "sys.stdout.write(x.view(torch.int32).numpy().tobytes().hex())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**__import__("os").environ, philox.KERNEL_ENV: "0"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    x = torch.ones(777)
    philox.axpy_(x, 5, 0.25, start=3)
    assert out == x.view(torch.int32).numpy().tobytes().hex()


def test_a_broken_compiler_falls_back_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv(philox.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(philox, "_library", None)
    monkeypatch.setattr(philox, "_library_tried", False)
    with pytest.warns(RuntimeWarning, match="C kernel is unavailable"):
        assert not philox.kernel_available()
    assert not list((tmp_path / "cache").glob("*.tmp"))  # nothing half-written
