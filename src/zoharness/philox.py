"""Counter-based Gaussian noise (Philox4x32-10 + Box–Muller), generated inside the weight pass.

z[i] of a tensor is a pure function of (tensor seed, i) (the convention is spelled out in
kernels/philox_gauss.c), so a pass `θ += c·z` needs no z buffer, any range of a tensor can be drawn on
its own (threads split tensors into chunks), and the values are the same on every machine and device.

Two implementations of the same numbers:
  * the C kernel (kernels/philox_gauss.c), compiled on first use with the system's C compiler and
    cached per source, compiler and CPU; CPU float32 only. ~3x cheaper than torch's normal_ per value
    and it never writes z to memory (bench/noise_generators.py, bench/mezo_step.py).
  * `reference`, the same integer and float32 operations as torch ops (any device, any dtype of the
    weight): the kernel's test oracle, and the path for CUDA, non-float32 weights, or a machine
    without a C compiler (slow there: ZOHARNESS_PHILOX_KERNEL=0 forces it, to check).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("kernels") / "philox_gauss.c"
CFLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-shared", "-fPIC")
KERNEL_ENV = "ZOHARNESS_PHILOX_KERNEL"  # "0": never build or use the kernel
CACHE_ENV = "ZOHARNESS_KERNEL_CACHE"  # where built kernels go (default ~/.cache/zoharness/kernels)
CONVENTION = (
    "Philox4x32-10 (Salmon et al. 2011) keyed by the tensor seed (lo32, hi32), counter (lo32(i//4), "
    "hi32(i//4), 0, 0) for element i; Box–Muller on word pairs (0,1) and (2,3): u=((a>>8)+1)·2^-24, "
    "r=sqrt(-2 ln u), φ=((c>>30)+((c>>6)&0xFFFFFF)·2^-24)·π/2, (r cos φ, r sin φ); ln/sin/cos by the "
    "fixed float32 polynomials of zoharness/kernels/philox_gauss.c, no FMA contraction"
)
# Chunk of elements the reference draws at once (bounds its int64 temporaries to ~100 MB).
REFERENCE_CHUNK = 1 << 21

_M0, _M1, _W0, _W1 = 0xD2511F53, 0xCD9E8D57, 0x9E3779B9, 0xBB67AE85
_U32 = 0xFFFFFFFF
_f = float.fromhex  # the kernel's float32 constants, bit for bit (exactly representable)
_LOG_POLY = (_f("0x1.c71c72p-4"), _f("0x1.24924ap-3"), _f("0x1.99999ap-3"), _f("0x1.555556p-2"), 1.0)
_LN2 = _f("0x1.62e430p-1")
_HALF_PI_2M24 = _f("0x1.921fb6p-24")
_SIN_POLY = (
    _f("-0x1.ae6456p-26"),
    _f("0x1.71de3ap-19"),
    _f("-0x1.a01a02p-13"),
    _f("0x1.111112p-7"),
    _f("-0x1.555556p-3"),
)
_COS_POLY = (
    _f("0x1.1eed8ep-29"),
    _f("-0x1.27e4fcp-22"),
    _f("0x1.a01a02p-16"),
    _f("-0x1.6c16c2p-10"),
    _f("0x1.555556p-5"),
    -0.5,
    1.0,
)


# --- the reference: torch ops, the kernel's exact arithmetic ---------------------------------------


def _mul_hi_lo(c: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi32, lo32) of c·m for c < 2^32 in int64, split in 16-bit halves so nothing overflows."""
    t = (c & 0xFFFF) * m  # < 2^48
    u = (c >> 16) * m  # < 2^48
    s = t + ((u & 0xFFFF) << 16)  # < 2^49
    return (u >> 16) + (s >> 32), s & _U32


def philox4x32_10(c0, c1, c2, c3, k0: int, k1: int) -> list[torch.Tensor]:
    """Philox4x32-10 of counters (c0..c3: int64 tensors of 32-bit words) under key (k0, k1)."""
    for r in range(10):
        hi0, lo0 = _mul_hi_lo(c0, _M0)
        hi1, lo1 = _mul_hi_lo(c2, _M1)
        ka, kb = (k0 + r * _W0) & _U32, (k1 + r * _W1) & _U32
        c0, c1, c2, c3 = hi1 ^ c1 ^ ka, lo1, hi0 ^ c3 ^ kb, lo0
    return [c0, c1, c2, c3]


def _philox(blocks: torch.Tensor, seed: int) -> list[torch.Tensor]:
    zero = torch.zeros_like(blocks)
    return philox4x32_10(blocks & _U32, blocks >> 32, zero, zero, seed & _U32, (seed >> 32) & _U32)


def _horner(x2: torch.Tensor, coeffs) -> torch.Tensor:
    p = torch.full_like(x2, coeffs[0])
    for c in coeffs[1:]:
        p = p * x2 + c  # two roundings, as in the kernel (no FMA)
    return p


def _box_muller(a: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    u = ((a >> 8) + 1).to(torch.float32) * 2.0**-24
    bits = u.view(torch.int32).to(torch.int64)
    mant = bits & 0x7FFFFF
    big = (mant > 0x3504F3).to(torch.int64)
    e = ((bits >> 23) - 127 + big).to(torch.float32)
    m = (mant | (0x3F800000 - (big << 23))).to(torch.int32).view(torch.float32)
    s = (m - 1.0) / (m + 1.0)
    p = _horner(s * s, _LOG_POLY)
    ln = e * _LN2 + (s + s) * p
    # sqrt in float64, then rounded: the correctly rounded float32 sqrt the kernel's sqrtf gives (torch's
    # float32 sqrt on CPU is within an ulp but not always correctly rounded)
    r = torch.sqrt((ln * -2.0).double()).float()
    q = c >> 30
    x = ((c >> 6) & 0xFFFFFF).to(torch.float32) * _HALF_PI_2M24
    x2 = x * x
    sn = _horner(x2, _SIN_POLY) * x2 * x + x
    cs = _horner(x2, _COS_POLY)
    odd = (q & 1).bool()
    cos, sin = torch.where(odd, sn, cs), torch.where(odd, cs, sn)
    cos = torch.where(((q ^ (q >> 1)) & 1).bool(), -cos, cos)  # negation flips the sign bit, as the kernel
    sin = torch.where((q >> 1).bool(), -sin, sin)
    return r * cos, r * sin


def reference(start: int, n: int, seed: int, device="cpu") -> torch.Tensor:
    """z[start : start + n] of the tensor with this seed, float32, by torch ops (bit-equal to the kernel)."""
    out = torch.empty(n, dtype=torch.float32, device=device)
    for lo in range(start, start + n, REFERENCE_CHUNK):
        hi = min(lo + REFERENCE_CHUNK, start + n)
        blocks = torch.arange(lo // 4, (hi + 3) // 4, dtype=torch.int64, device=device)
        x = _philox(blocks, seed)
        z01, z23 = _box_muller(x[0], x[1]), _box_muller(x[2], x[3])
        values = torch.stack([z01[0], z01[1], z23[0], z23[1]], dim=1).reshape(-1)
        out[lo - start : hi - start] = values[lo - 4 * (lo // 4) :][: hi - lo]
    return out


# --- the kernel ---------------------------------------------------------------------------------------

_lock = threading.Lock()
_library: ctypes.CDLL | None = None
_library_tried = False


def _cpu_tag() -> str:
    """What -march=native depends on: a kernel built on one CPU may not run on another (shared homes)."""
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    except OSError:
        pass
    return f"{platform.machine()} {flags}"


def _build(cache_dir: Path, extra_flags: tuple[str, ...] = (), source_path: Path = SOURCE) -> Path:
    """The kernel's shared library for this source, compiler and CPU (extra_flags, e.g. -mno-avx512f,
    build a narrower SIMD path: the tests compare every path the CPU can run; source_path, another
    version of the kernel: bench/philox_pass.py times an earlier commit's beside this one)."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        raise RuntimeError("no C compiler (cc, gcc or clang) on PATH")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    source = source_path.read_bytes()
    key = hashlib.sha256(
        b"\0".join([source, " ".join(CFLAGS + extra_flags).encode(), version.encode(), _cpu_tag().encode()])
    )
    target = cache_dir / f"philox_gauss-{key.hexdigest()[:16]}.so"
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".so.tmp")
    os.close(fd)
    try:
        subprocess.run(
            [compiler, *CFLAGS, *extra_flags, str(source_path), "-o", tmp],
            capture_output=True,
            text=True,
            check=True,
        )
        os.replace(tmp, target)  # atomic: concurrent jobs build the same bytes; the last rename wins
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"{compiler} failed on {source_path}: {e.stderr.strip()[-2000:]}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _load() -> ctypes.CDLL | None:
    global _library, _library_tried
    with _lock:
        if _library_tried:
            return _library
        _library_tried = True
        if os.environ.get(KERNEL_ENV, "1") == "0":
            return None
        cache_dir = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "zoharness" / "kernels")
        try:
            lib = ctypes.CDLL(str(_build(cache_dir)))
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            warnings.warn(
                f"zoharness.philox: the C kernel is unavailable ({e}); drawing noise with torch ops "
                "instead (the same values, several times slower)",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        u64, f32, ptr = ctypes.c_uint64, ctypes.c_float, ctypes.c_void_p
        lib.zo_philox_gauss_fill.argtypes = [ptr, u64, u64, u64]
        lib.zo_philox_gauss_axpy.argtypes = [ptr, u64, u64, u64, f32]
        lib.zo_philox_gauss_axpy2.argtypes = [ptr, u64, u64, u64, f32, u64, f32]
        lib.zo_philox_gauss_fill.restype = lib.zo_philox_gauss_axpy.restype = None
        lib.zo_philox_gauss_axpy2.restype = None
        u64s = ctypes.POINTER(u64)
        lib.zo_philox_gauss_sweep.argtypes = [
            u64,
            ctypes.POINTER(ptr),
            u64s,
            u64s,
            u64s,
            f32,
            u64s,
            f32,
            u64s,
        ]
        lib.zo_philox_gauss_sweep.restype = None
        _library = lib
        return lib


def kernel_available() -> bool:
    return _load() is not None


def _kernel_for(t: torch.Tensor) -> ctypes.CDLL | None:
    if t.device.type != "cpu" or t.dtype != torch.float32 or not t.is_contiguous():
        return None
    return _load()


def fill(out: torch.Tensor, seed: int, start: int = 0) -> torch.Tensor:
    """out (float32) = z[start : start + out.numel()] of the tensor with this seed."""
    lib = _kernel_for(out)
    if lib is None:
        out.copy_(reference(start, out.numel(), seed, out.device).view(out.shape))
    else:
        lib.zo_philox_gauss_fill(out.data_ptr(), start, out.numel(), seed)
    return out


def axpy_(x: torch.Tensor, seed: int, coeff: float, start: int = 0) -> torch.Tensor:
    """x += coeff·z[start : start + x.numel()] in place; the product is rounded to float32 first, then
    cast to x's dtype and added (for float32 x: exactly the kernel's two roundings)."""
    lib = _kernel_for(x)
    if lib is None:
        flat = x.view(-1)
        for lo in range(0, flat.numel(), REFERENCE_CHUNK):
            hi = min(lo + REFERENCE_CHUNK, flat.numel())
            z = reference(start + lo, hi - lo, seed, x.device) * coeff
            flat[lo:hi] += z.to(x.dtype)
    else:
        lib.zo_philox_gauss_axpy(x.data_ptr(), start, x.numel(), seed, coeff)
    return x


def axpy2_(
    x: torch.Tensor, seed1: int, coeff1: float, seed2: int, coeff2: float, start: int = 0
) -> torch.Tensor:
    """`axpy_(x, seed1, coeff1, start)` then `axpy_(x, seed2, coeff2, start)`, the same bits, in one sweep over
    x with the kernel (its memory traffic once instead of twice); the two calls elsewhere."""
    lib = _kernel_for(x)
    if lib is None:
        return axpy_(axpy_(x, seed1, coeff1, start), seed2, coeff2, start)
    lib.zo_philox_gauss_axpy2(x.data_ptr(), start, x.numel(), seed1, coeff1, seed2, coeff2)
    return x


def sweep(tensors, ranges, seeds1, coeff1: float, seeds2=None, coeff2: float = 0.0):
    """A pass over many ranges of many tensors for the kernel to run on any number of threads at once, or
    None when it can't (no kernel, or a tensor that is not CPU float32 contiguous: then use axpy_/axpy2_).

    ranges: (i, lo, hi) triples, elements lo..hi of tensors[i] flattened, in the order the threads should
    take them (largest first balances best). The returned function does axpy_(range, seeds1[i], coeff1,
    start=lo), or axpy2_ with seeds2[i] and coeff2 when seeds2 is given, for ranges it takes from a counter
    the calls share; call it once from each thread and wait for all. One C call per thread replaces one
    Python call per range (with 2 threads over 278 ranges those cost about 5 ms a pass). The values are
    axpy_'s: which thread does a range changes nothing.
    """
    if _load() is None or any(_kernel_for(t) is None for t in tensors):
        return None
    lib, n = _library, len(ranges)
    u64s = ctypes.c_uint64 * n
    ptrs = (ctypes.c_void_p * n)(*[tensors[i].data_ptr() + 4 * lo for i, lo, _ in ranges])
    starts = u64s(*[lo for _, lo, _ in ranges])
    counts = u64s(*[hi - lo for _, lo, hi in ranges])
    first = u64s(*[seeds1[i] for i, _, _ in ranges])
    second = u64s(*[seeds2[i] for i, _, _ in ranges]) if seeds2 is not None else None
    following = ctypes.c_uint64(0)

    def run() -> None:
        lib.zo_philox_gauss_sweep(
            n, ptrs, starts, counts, first, coeff1, second, coeff2, ctypes.byref(following)
        )

    return run
