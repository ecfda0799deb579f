"""RapidGrad, RapidIn's gradient sketch (Lin et al., ACL 2024, arXiv 2405.11724), seeded and recorded.

The map takes a vector u of length `dim` to K numbers, for each requested K:
  1. zero-pad u to `padded_dim` (every K divides it);
  2. shuffle it with 2λ random permutations, alternately of the r rows of its r×c view and of the r
     columns of its c×r view (r·c = padded_dim);
  3. multiply slot p by a random sign s_p ∈ {−1, +1};
  4. sum each contiguous block of B = padded_dim/K slots into one of K bins.

The math. Let π be the composed shuffle (input i lands in slot π(i)), bin(i) = π(i) // B and
σ_i = s_π(i). Then (S u)_b = Σ_{bin(i)=b} σ_i u_i is linear in u, and

    <S u, S v> = Σ_i u_i v_i + Σ_{i≠j, bin(i)=bin(j)} σ_i σ_j u_i v_j.

The signs are independent with mean zero and σ_i² = 1, so E_s[<S u, S v>] = <u, v> for every π:
unbiased, with no scale factor. Var_s = Σ_{i<j, same bin} (u_i v_j + u_j v_i)²; when π scatters pairs
like a uniform permutation (P(same bin) = (B−1)/(padded_dim−1) ≈ 1/K) its mean over π is
(B−1)/(padded_dim−1)·(‖u‖²‖v‖² + <u,v>² − 2Σ_i u_i² v_i²) ≈ (‖u‖²‖v‖² + <u,v>²)/K: it shrinks as K
grows. With normalise=True each sketch is divided by its L2 norm, as OPORP (the sketch RapidGrad
builds on) does; <S u, S v> then estimates the cosine of u and v (slightly biased), not <u, v>.

Why two views, r×c for rows and c×r for columns. Permuting the rows and then the columns of one fixed
r×c view gives maps that commute: 2λ rounds would collapse into one row and one column permutation,
and the c neighbours of a row (a stretch of one weight matrix) would share a bin far more often than
1/K. The reference avoids that by drawing a new factorisation of the length for every round; we keep
one deterministic pair of views instead. A row round moves f // c (the high part of the flat index f),
a column round moves f % r (the low part); because r ≥ 4c the two parts overlap (r·r ≥ 4·padded_dim),
so each round mixes what the previous one moved, and after λ rounds neighbours share a bin at the
uniform rate (tests/test_rapidgrad.py checks pairs i,i+1; i,i+c; i,i+r). The stored indices are
2λ·r ≈ 2λ·(2 to 4)·√padded_dim int64, e.g. ~15 MB for a 135M-parameter model, where one full
permutation of the padded length would be ~1 GB.

How it is computed. The shuffle above defines the map; computing it per vector costs 2λ passes of
random-access gathers over padded_dim floats (~2 s for a 13M-parameter gradient on 2 CPU cores). The
map only needs, for each input position i, its bin and its sign, so the first sketch computes those
once (`_plan`: the shuffle applied to the positions, then an int32 bin index per K and a sign per
input, ~(4·len(ks) + 1)·dim bytes) and every sketch after that is one sequential pass: the signed input
added into its bins (index_add_ in input order, accumulated in float64 so a bin summing 10^6 entries
keeps float32's digits). Same map, same numbers up to that rounding; ~12x faster on that gradient.

What we fix from the reference: the seed is an argument (there it was hard-coded), the randomness is
drawn fresh from that seed and recorded in `header()` (there a pickle keyed by D alone was reused across
seeds and K), and the sketch can be normalised.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

from zoharness.io import DataError

FORMAT = 2  # 2: bins summed by index_add_ in input order in float64 (1: block sums after the shuffle)
DRAW_ORDER = (
    "torch.Generator('cpu').manual_seed(seed); then 2*lam x randperm(r), used alternately on the r rows "
    "of the r x c view and the r columns of the c x r view; then randint(0, 2, [padded_dim], int8) as "
    "signs 2b-1"
)
# Padding stays under dim / PAD_FRACTION whenever the Ks allow it (see layout()).
PAD_FRACTION = 64
_MISSING = object()


def _int_arg(name: str, value, low: int) -> int:
    # bool is an int to Python, but RapidGrad(dim=True) is a bug, not a dimension of 1.
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"RapidGrad: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _largest_power_of_two_at_most(n: int) -> int:
    return 1 << max(0, n.bit_length() - 1)  # 1 for n <= 1


def layout(dim: int, ks: Sequence[int]) -> tuple[int, int, int]:
    """(padded_dim, r, c) for sketching a length-`dim` vector to every K in `ks`.

    c is the largest power of two with 4c² ≤ dim, so r = padded_dim/c ≥ 4c (why: module docstring).
    padded_dim is the smallest multiple of lcm(ks), of c and of an alignment A that is ≥ dim, where A is
    the largest power of two ≤ dim / (64 · odd part of lcm(ks)). Why A: when the Ks are powers of two
    no larger than A (RapidIn's 2^16..2^24 on any large model), padded_dim, and so the whole random map,
    depends on dim alone, so the K=2^16 sketch of a run asking for [2^16, 2^20] equals that of a run
    asking for [2^16]; the 64 keeps the padding under dim/64 whenever lcm(ks) ≤ dim/64.
    """
    c = 1
    while 4 * (2 * c) ** 2 <= dim:
        c *= 2
    lcm = math.lcm(*ks)
    odd = lcm // (lcm & -lcm)
    align = max(_largest_power_of_two_at_most(dim // (PAD_FRACTION * odd)), c)
    step = math.lcm(lcm, align)
    padded = -(-dim // step) * step
    return padded, padded // c, c


class RapidGrad:
    """The sketch for one (dim, ks, seed, lam, normalise): `sketch`, `sketch_batch`, `header`.

    dtype rule: the sketch is computed and returned in the input's dtype promoted to at least float32
    (float16/bfloat16/float32 in → float32 out; float64 in → float64 out, so a test oracle can be exact).
    The permutations and signs are drawn on the CPU (the same numbers on every machine for one torch
    version, recorded in the header) and copied once to the device of the first vector sketched there.
    """

    def __init__(self, dim: int, ks: int | Sequence[int], seed: int, lam: int = 20, normalise: bool = False):
        self.dim = _int_arg("dim", dim, 1)
        requested = [ks] if isinstance(ks, numbers.Integral) else list(ks)
        if not requested:
            raise ValueError(f"RapidGrad: ks must name at least one K, got {ks!r}")
        self.ks = tuple(sorted({_int_arg("K", k, 1) for k in requested}))
        for k in self.ks:
            if k > self.dim:
                # More bins than entries would only add bins that hold padding.
                raise ValueError(f"RapidGrad: K={k} is larger than dim={self.dim}; ask for K <= {self.dim}")
        self.seed = _int_arg("seed", seed, 0)
        if self.seed >= 2**64:
            raise ValueError(f"RapidGrad: seed must be < 2**64 (torch.Generator's range), got {seed!r}")
        self.lam = _int_arg("lam", lam, 0)
        if not isinstance(normalise, bool):
            raise ValueError(f"RapidGrad: normalise must be True or False, got {normalise!r}")
        self.normalise = normalise
        self.padded_dim, self.rows, self.cols = layout(self.dim, self.ks)
        if self.padded_dim > 2 * self.dim:
            raise ValueError(
                f"RapidGrad: ks {list(self.ks)} have least common multiple {math.lcm(*self.ks)}, so dim="
                f"{self.dim} would pad to {self.padded_dim}, more than twice its length; choose Ks with a "
                "small common multiple (powers of two)"
            )
        # The fixed draw order (DRAW_ORDER): changing it changes every sketch, so bump FORMAT with it.
        gen = torch.Generator(device="cpu")
        gen.manual_seed(self.seed)
        self._perms = [torch.randperm(self.rows, generator=gen) for _ in range(2 * self.lam)]
        self._signs = torch.randint(0, 2, (self.padded_dim,), generator=gen, dtype=torch.int8).mul_(2).sub_(1)
        # (device, {K: int32 bin of each input position}, float32 sign of each input position), built
        # by the first sketch (module docstring, "How it is computed").
        self._plan_on: tuple[torch.device, dict[int, torch.Tensor], torch.Tensor] | None = None

    def header(self) -> dict:
        """Everything that defines the map; store it beside cached sketches and compare with
        check_same_sketch before reusing them. `torch` is there because randperm/randint's algorithms
        belong to the torch release."""
        return {
            "sketch": "rapidgrad",
            "format": FORMAT,
            "seed": self.seed,
            "ks": list(self.ks),
            "lam": self.lam,
            "dim": self.dim,
            "padded_dim": self.padded_dim,
            "reshape": [self.rows, self.cols],
            "normalise": self.normalise,
            "draw_order": DRAW_ORDER,
            "torch": torch.__version__.split("+")[0],
        }

    def _plan(self, device: torch.device) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
        """({K: bin of each input position}, sign of each input position) on `device`: the shuffle
        followed once, on the CPU, then kept."""
        if self._plan_on is None or self._plan_on[0] != device:
            pos = self.positions()[: self.dim]  # padding is zero: its bins and signs never matter
            signs = self._signs[pos].to(torch.float32)
            bins = {
                k: torch.div(pos, self.padded_dim // k, rounding_mode="floor").to(torch.int32)
                for k in self.ks
            }
            del pos
            self._plan_on = (device, {k: b.to(device) for k, b in bins.items()}, signs.to(device))
        return self._plan_on[1], self._plan_on[2]

    def _shuffle(self, x: torch.Tensor, perms: list[torch.Tensor]) -> torch.Tensor:
        """x [n, padded_dim] after the 2λ rounds: slot p of the result holds x[:, src[p]]."""
        n, r, c = x.shape[0], self.rows, self.cols
        for t, perm in enumerate(perms):
            # Even rounds: the r rows of the r×c view; odd rounds: the r columns of the c×r view.
            shape, axis = ((n, r, c), 1) if t % 2 == 0 else ((n, c, r), 2)
            # The reshape is a view: index_select's result is contiguous.
            x = x.view(shape).index_select(axis, perm).reshape(n, self.padded_dim)
        return x

    def sketch_batch(self, mat: torch.Tensor) -> dict[int, torch.Tensor]:
        """{K: [n, K]} for each row of mat [n, dim], all rows at once (equal to `sketch` per row)."""
        if not isinstance(mat, torch.Tensor) or mat.ndim != 2 or mat.shape[1] != self.dim:
            got = tuple(mat.shape) if isinstance(mat, torch.Tensor) else type(mat).__name__
            raise ValueError(f"RapidGrad.sketch_batch: expected a tensor of shape (n, {self.dim}), got {got}")
        return self._sketch(mat)

    def sketch(self, vec: torch.Tensor) -> dict[int, torch.Tensor]:
        """{K: [K]} for a vector of shape (dim,)."""
        if not isinstance(vec, torch.Tensor) or vec.shape != (self.dim,):
            got = tuple(vec.shape) if isinstance(vec, torch.Tensor) else type(vec).__name__
            raise ValueError(f"RapidGrad.sketch: expected a vector of shape ({self.dim},), got {got}")
        return {k: s[0] for k, s in self._sketch(vec.unsqueeze(0)).items()}

    def _sketch(self, mat: torch.Tensor) -> dict[int, torch.Tensor]:
        if not mat.is_floating_point():
            raise ValueError(f"RapidGrad: expected a floating-point tensor, got dtype {mat.dtype}")
        bins, signs = self._plan(mat.device)
        dtype = torch.promote_types(mat.dtype, torch.float32)
        # float64 accumulation on devices that have it (not MPS); the result is cast back to `dtype`.
        acc = torch.float32 if mat.device.type == "mps" else torch.float64
        signs = signs.to(acc)
        sums = {k: [] for k in self.ks}
        # Row by row: 1-D index_add_ is ~25x faster than along dim 1 of a matrix on CPU (torch 2.13), and
        # only one row is ever held in float64 (a block of 64 rows of a 13M-entry gradient would be 7 GB).
        for row in mat:
            signed = row.to(acc) * signs
            for k in self.ks:
                sums[k].append(signed.new_zeros(k).index_add_(0, bins[k], signed))
        out = {}
        for k in self.ks:
            s = torch.stack(sums[k]).to(dtype)
            if self.normalise:
                norm = torch.linalg.vector_norm(s, dim=1, keepdim=True)
                s = s / torch.where(norm > 0, norm, torch.ones_like(norm))  # a zero sketch stays zero
            out[k] = s
        return out

    def positions(self) -> torch.Tensor:
        """LongTensor [padded_dim]: the slot each input position lands in after the shuffle.

        For tests and inspection only: it holds padded_dim int64s (~1 GB for a 135M-parameter model),
        exactly what sketching avoids."""
        src = self._shuffle(torch.arange(self.padded_dim).unsqueeze(0), self._perms)[0]
        pos = torch.empty_like(src)
        pos[src] = torch.arange(self.padded_dim)
        return pos

    def signs(self) -> torch.Tensor:
        """Int8 [padded_dim] of ±1, indexed by slot (after the shuffle): a copy, for tests."""
        return self._signs.clone()


def _plain(value):
    # Headers come back from JSON (lists) or npz (numpy scalars and arrays); compare them as plain
    # Python values so [64, 2048] equals array([64, 2048]) instead of raising on truth-testing.
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def check_same_sketch(cached: dict, wanted: dict, where: str) -> None:
    """Raise DataError unless the header `cached` (read from `where`) equals `wanted` key for key.

    A sketch built with another seed, K, λ, dim or draw order is a different map: its inner products with
    this run's sketches are meaningless, so such a cache is refused, never reused."""
    if not isinstance(cached, dict):
        raise DataError(f"{where}: the sketch header is a {type(cached).__name__}, expected a dict")
    differ = []
    for key in sorted(set(cached) | set(wanted), key=str):
        have, want = cached.get(key, _MISSING), wanted.get(key, _MISSING)
        if _plain(have) != _plain(want):
            shown = ["missing" if v is _MISSING else repr(_plain(v)) for v in (have, want)]
            differ.append(f"header {key} is {shown[0]}, but the run asks for {shown[1]}")
    if differ:
        raise DataError(f"{where}: " + "; ".join(differ) + " (a cache of another sketch; rebuild it)")


def flatten_normalised(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Float32 concatenation of each tensor flattened and divided by its own L2 norm, in the given order.

    RapidIn normalises every parameter tensor's gradient before sketching, so one large layer (e.g. the
    embeddings) does not dominate the inner products. A zero tensor stays zeros (no 0/0 NaN)."""
    if len(tensors) == 0:
        raise ValueError("flatten_normalised: got no tensors")
    parts = []
    for i, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor) or not t.is_floating_point():
            what = t.dtype if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"flatten_normalised: tensor {i} must be a floating-point tensor, got {what}")
        flat = t.reshape(-1).to(torch.float32)
        norm = torch.linalg.vector_norm(flat)
        # torch.where, not `if norm > 0`: no host sync per tensor on a GPU.
        parts.append(flat / torch.where(norm > 0, norm, torch.ones_like(norm)))
    return torch.cat(parts)
