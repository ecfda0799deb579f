"""RapidIn's caching stage: every training example's gradient sketched once, stored in one file.

The file is safetensors: one float16 tensor `k<K>` of shape [n, K] per K (row i is example i, in the
order of the header's example_ids), and the JSON header as the single metadata entry META_KEY. Why:
  * float16, as RapidIn stores its RapidGrads: half the disk of float32. A sketch entry is a sum of
    normalised gradient entries (each tensor's part has norm 1), far inside float16's range; a value that
    does overflow is refused, not stored as inf. Scoring upcasts to float32 (retrieve.scores).
  * safetensors, not .npz: an .npz is a zip whose entries carry the time they were written, so two
    builds of one cache would differ; safetensors bytes are a function of the tensors and metadata. Only
    with a single metadata entry, though: safetensors writes its metadata map in hash order, which
    changes between calls, so the whole header is one JSON string (io.dumps: sorted keys).
  * one file written once (io.atomic_open: a temporary file in the same folder, fsynced, renamed): a
    killed or failed build leaves the old cache or none, never a partial one that load_cache would accept.

Memory: gradients are sketched `block` at a time (a [block, dim] float32 buffer is the only place more
than one gradient lives; by default as many rows as fit in BUFFER_BYTES, at most 64); the float16
sketches, estimate_bytes' n·ΣK·2 bytes, stay in memory until the single write.

The header: the sketch's header (RapidGrad.header: seed, Ks, λ, dim, ...), n, the dtype, and what the
caller adds in header_extra: at least `example_ids` (n distinct strings, the rows' identities); what
defines the gradients too (gradients.parameter_header's names/shapes/dim, the model and run). load_cache
compares it with the header the run would write and refuses any difference, naming key and values.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterable
from pathlib import Path

import torch

from zoharness.influence.rapidgrad import RapidGrad, check_same_sketch
from zoharness.io import DataError, atomic_open, dumps, read_safetensors_json

CACHE_FORMAT = 1
META_KEY = "zoharness.influence_cache"
DTYPE = torch.float16
# Keys build_cache writes itself; header_extra may not set them.
RESERVED = ("cache_format", "dtype", "n", "sketch")
# Bytes of header besides header_extra's JSON: the sketch header, the tensor table, alignment padding.
HEADER_ALLOWANCE = 4096
# The default gradient buffer's size: sketching a block costs the same per row whatever its size, so a small
# buffer loses nothing (64 rows of a 13.3M-parameter gradient would be 3.4 GB).
BUFFER_BYTES = 256 * 2**20


def tensor_name(k: int) -> str:
    return f"k{k}"


def estimate_bytes(n: int, ks: Iterable[int], header_extra: dict | None = None) -> int:
    """An upper bound on the cache file's size: the float16 sketches (exactly n·ΣK·2 bytes) plus the header.

    Without header_extra, the header's share is HEADER_ALLOWANCE only: add the example ids' length."""
    extra = len(dumps(header_extra).encode("utf-8")) if header_extra is not None else 0
    # x2: the header is JSON inside a JSON string, so every quote in it gains an escaping backslash.
    return 2 * n * sum(set(ks)) + 8 + HEADER_ALLOWANCE + 2 * extra


def _check_extra(header_extra: dict, n: int, sketch: RapidGrad) -> None:
    if not isinstance(header_extra, dict):
        raise ValueError(f"build_cache: header_extra must be a dict, got {type(header_extra).__name__}")
    clash = sorted(set(header_extra) & set(RESERVED))
    if clash:
        raise ValueError(f"build_cache: header_extra may not set {clash}; build_cache writes them")
    ids = header_extra.get("example_ids")
    if not isinstance(ids, list | tuple) or not all(isinstance(i, str) for i in ids):
        raise ValueError("build_cache: header_extra['example_ids'] must be a list of strings (the rows' ids)")
    if len(ids) != n:
        raise ValueError(f"build_cache: header_extra['example_ids'] has {len(ids)} ids for n={n} examples")
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"build_cache: header_extra['example_ids'] repeats ids, e.g. {repeated}")
    params = header_extra.get("parameters")
    if isinstance(params, dict) and "dim" in params and params["dim"] != sketch.dim:
        raise ValueError(
            f"build_cache: header_extra['parameters'] has dim {params['dim']}, the sketch has dim {sketch.dim}"
        )


def build_cache(
    grad_iter: Iterable[torch.Tensor],
    n: int,
    sketch: RapidGrad,
    out_path: str | Path,
    header_extra: dict,
    block: int | None = None,
) -> dict:
    """Sketch the n gradients `grad_iter` yields (1-D, length sketch.dim, example i first) into the cache
    file `out_path`; return its header. Nothing is written unless all n arrive: an exception from the
    iterator, or a count other than n, leaves out_path as it was."""
    if not isinstance(sketch, RapidGrad):
        raise ValueError(f"build_cache: sketch must be a RapidGrad, got {type(sketch).__name__}")
    if block is None:  # sketch.dim >= 1 (RapidGrad checks it)
        block = max(1, min(64, BUFFER_BYTES // (4 * sketch.dim)))
    for name, value in (("n", n), ("block", block)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"build_cache: {name} must be an integer >= 1, got {value!r}")
    _check_extra(header_extra, n, sketch)
    header = {
        "cache_format": CACHE_FORMAT,
        "dtype": "float16",
        "n": n,
        "sketch": sketch.header(),
        **header_extra,
    }
    try:  # before the gradients, not after: a header that cannot be written must not cost a pass
        header_json = dumps(header)
    except (TypeError, ValueError) as e:
        raise ValueError(f"build_cache: header_extra is not JSON-serialisable ({e})") from None
    out = {k: torch.empty((n, k), dtype=DTYPE) for k in sketch.ks}
    buf: torch.Tensor | None = None
    filled = done = 0

    def flush() -> None:
        nonlocal filled, done
        for k, s in sketch.sketch_batch(buf[:filled]).items():
            half = s.to(DTYPE)
            if not bool(torch.isfinite(half).all()):
                raise OverflowError(
                    f"build_cache: the K={k} sketch of examples {done}..{done + filled - 1} is not finite in "
                    f"float16 (largest |entry| {float(s.abs().max()):.4g}); are the gradients normalised?"
                )
            out[k][done : done + filled] = half.cpu()
        done, filled = done + filled, 0

    for i, grad in enumerate(grad_iter):
        if i >= n:
            raise ValueError(f"build_cache: the gradients run past n={n} examples")
        if not isinstance(grad, torch.Tensor) or grad.shape != (sketch.dim,) or not grad.is_floating_point():
            got = (tuple(grad.shape), grad.dtype) if isinstance(grad, torch.Tensor) else type(grad).__name__
            raise ValueError(
                f"build_cache: gradient {i} must be a float vector of length {sketch.dim}, got {got}"
            )
        if buf is None:
            buf = torch.empty((min(block, n), sketch.dim), dtype=torch.float32, device=grad.device)
        buf[filled] = grad
        filled += 1
        if filled == buf.shape[0]:
            flush()
    if filled:
        flush()
    if done != n:
        raise ValueError(f"build_cache: expected {n} gradients, got {done}; nothing was written")
    from safetensors.torch import save

    data = save({tensor_name(k): t for k, t in out.items()}, metadata={META_KEY: header_json})
    with atomic_open(out_path, "wb") as f:
        f.write(data)
    return json.loads(header_json)  # as load_cache will return it (lists, not tuples)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:150] + f"... ({len(text)} characters)"


def _describe(key: str, have, want) -> list[str]:
    """One line per differing leaf: a dict is compared key by key (so a 1000-name parameter list does
    not hide that only `dim` differs), a list of equal length names its first differing index."""
    if isinstance(have, dict) and isinstance(want, dict):
        lines = []
        for sub in sorted(set(have) | set(want)):
            if sub not in have or sub not in want:
                shown = ["missing" if sub not in d else _short(d[sub]) for d in (have, want)]
                lines.append(f"header {key}.{sub} is {shown[0]}, but the run asks for {shown[1]}")
            elif have[sub] != want[sub]:
                lines.extend(_describe(f"{key}.{sub}", have[sub], want[sub]))
        return lines
    where = ""
    if isinstance(have, list) and isinstance(want, list) and len(have) == len(want):
        first = next(i for i, (a, b) in enumerate(zip(have, want, strict=True)) if a != b)
        where = f" (first difference at index {first}: {have[first]!r} vs {want[first]!r})"
    return [f"header {key} is {_short(have)}, but the run asks for {_short(want)}{where}"]


def read_header(path: str | Path) -> dict:
    """The cache's JSON header, unchecked (for inspection; load_cache checks it)."""
    path = Path(path)
    header = read_safetensors_json(path, META_KEY, "an influence cache written by build_cache")
    if header.get("cache_format") != CACHE_FORMAT:
        raise DataError(
            f"{path}: header cache_format is {header.get('cache_format')!r}, this harness reads "
            f"{CACHE_FORMAT}; rebuild the cache"
        )
    return header


def load_cache(path: str | Path, wanted_header: dict) -> tuple[dict, dict[int, torch.Tensor]]:
    """(header, {K: float16 tensor [n, K]}) from a cache file, if its header matches `wanted_header`.

    wanted_header is the header this run would write: its "sketch" (required) is compared key for key by
    check_same_sketch, and every other key it names must be equal in the file (a key the file lacks
    counts as different). Keys the file has and wanted_header does not name are not checked, so name every
    key that defines the gradients (parameters, model, run, example_ids)."""
    path = Path(path)
    if not isinstance(wanted_header, dict) or "sketch" not in wanted_header:
        raise ValueError("load_cache: wanted_header must be a dict with the run's 'sketch' header")
    header = read_header(path)
    check_same_sketch(header.get("sketch"), wanted_header["sketch"], str(path))
    wanted = json.loads(dumps(wanted_header))  # tuples -> lists, as the file's JSON has them
    differ = []
    for key in sorted(k for k in wanted if k != "sketch"):
        if key not in header:
            differ.append(f"header {key} is missing, but the run asks for {_short(wanted[key])}")
        elif header[key] != wanted[key]:
            differ.extend(_describe(key, header[key], wanted[key]))
    if differ:
        raise DataError(f"{path}: " + "; ".join(differ) + " (a cache of other gradients; rebuild it)")
    n, ids = header.get("n"), header.get("example_ids")
    if not isinstance(ids, list) or len(ids) != n:
        raise DataError(f"{path}: header example_ids does not list n={n!r} ids")
    from safetensors import safe_open

    sketches = {}
    with safe_open(str(path), framework="pt") as f:
        for k in header["sketch"]["ks"]:
            name = tensor_name(k)
            if name not in f.keys():  # noqa: SIM118  (safe_open is not a dict)
                raise DataError(f"{path}: tensor {name!r} (the K={k} sketches) is missing")
            t = f.get_tensor(name)
            if t.dtype != DTYPE or tuple(t.shape) != (n, k):
                raise DataError(
                    f"{path}: tensor {name!r} is {t.dtype} {tuple(t.shape)}, expected float16 ({n}, {k})"
                )
            sketches[k] = t
    return header, sketches
