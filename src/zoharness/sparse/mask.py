"""Which weights a sparse ZO run may move: top-k selection over sensitivity scores, stats, storage.

Eligible parameters: the weight matrix of every torch.nn.Linear in the model except the output head
(`model.get_output_embeddings()`, tied to the input embedding in SmolLM2/Llama-2-chat-style models).
Embeddings, norms, biases and the head stay frozen in the run's dtype; only eligible matrices are
quantized and only their masked entries are trained.

A mask file (safetensors) holds, per eligible matrix, the sorted flat (row-major) indices of its
selected entries as int32, plus the shapes it was built for in its metadata; loading it onto a model
with other names or shapes is refused, naming both shapes.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import torch

from zoharness.io import DataError, write_json_atomic
from zoharness.sparse import SELECTIONS, check_density

MASK_FORMAT = 2


class MaskMismatchError(ValueError):
    pass


def check_selection(selection: str) -> str:
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    return selection


def eligible_linears(model) -> list[tuple[str, torch.nn.Module]]:
    """(module name, module) of every nn.Linear except the output head, in named_modules() order."""
    head = model.get_output_embeddings()
    return [
        (name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and m is not head
    ]


def eligible_shapes(model) -> dict[str, list[int]]:
    """Parameter name -> shape of every eligible weight (what a mask is built for)."""
    return {f"{name}.weight": list(m.weight.shape) for name, m in eligible_linears(model)}


def _k(density: float, n: int) -> int:
    return min(n, max(1, round(density * n)))


def top_k_flat(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Sorted indices of the k largest entries of a 1-D tensor. Ties at the threshold go to the lowest
    indices, so the selection is deterministic (torch.topk's choice among ties is not specified)."""
    if k >= scores.numel():
        return torch.arange(scores.numel())
    threshold = torch.topk(scores, k, sorted=False).values.min()
    above = (scores > threshold).nonzero().flatten()
    ties = (scores == threshold).nonzero().flatten()[: k - above.numel()]
    return torch.cat([above, ties]).sort().values


def select(
    scores: dict[str, torch.Tensor], density: float, selection: str = "global"
) -> dict[str, torch.Tensor]:
    """Parameter name -> sorted flat int64 indices of the selected entries.

    global:     the k = round(density · N) largest scores over all N eligible entries together, so
                sensitive matrices get more entries (SensZOQ's rule);
    per_matrix: round(density · n_i) entries of each matrix (at least one).
    """
    density, selection = check_density(density), check_selection(selection)
    if selection == "per_matrix":
        return {n: top_k_flat(s.flatten().float(), _k(density, s.numel())) for n, s in scores.items()}
    flat = torch.cat([s.flatten().float() for s in scores.values()])
    chosen = top_k_flat(flat, _k(density, flat.numel()))
    out, start = {}, 0
    for name, s in scores.items():
        lo, hi = torch.searchsorted(chosen, torch.tensor([start, start + s.numel()]))
        out[name] = chosen[lo:hi] - start
        start += s.numel()
    return out


def random_scores(shapes: dict[str, list[int]], seed: int) -> dict[str, torch.Tensor]:
    """I.i.d. uniform scores: their top-k is a uniformly random subset of exactly k entries."""
    g = torch.Generator().manual_seed(seed)
    return {n: torch.rand(math.prod(shape), generator=g) for n, shape in shapes.items()}


_LAYER = re.compile(r"\.(\d+)\.")


def stats(
    indices: dict[str, torch.Tensor],
    shapes: dict[str, list[int]],
    scores: dict[str, torch.Tensor] | None,
) -> dict:
    """Density, squared-gradient coverage (share of the total score mass the mask holds; None for a
    random mask) and counts per matrix, per layer index and per matrix kind (q_proj, fc1, ...)."""
    total = sum(math.prod(s) for s in shapes.values())
    k = sum(int(i.numel()) for i in indices.values())
    per_matrix, per_layer, per_kind = {}, {}, {}
    for name, idx in indices.items():
        n = math.prod(shapes[name])
        per_matrix[name] = {"selected": int(idx.numel()), "numel": n, "fraction": idx.numel() / n}
        layer = _LAYER.search(name)
        key = layer.group(1) if layer else "other"
        kind = name.removesuffix(".weight").rsplit(".", 1)[-1]
        for table, bucket in ((per_layer, key), (per_kind, kind)):
            row = table.setdefault(bucket, {"selected": 0, "numel": 0})
            row["selected"] += int(idx.numel())
            row["numel"] += n
    coverage = None
    if scores is not None:
        mass = sum(float(s.double().sum()) for s in scores.values())
        held = sum(float(scores[n].flatten()[i].double().sum()) for n, i in indices.items())
        coverage = held / mass if mass > 0 else None
    return {
        "eligible_parameters": total,
        "selected": k,
        "density": k / total,
        "score_mass_coverage": coverage,
        "per_matrix": per_matrix,
        "per_layer": per_layer,
        "per_kind": per_kind,
    }


def save(
    path: str | Path, indices: dict[str, torch.Tensor], shapes: dict[str, list[int]], meta: dict
) -> None:
    """Atomic write of the indices (int32) with the shapes and `meta` in the safetensors metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: idx.to(torch.int32).contiguous() for name, idx in indices.items()}
    # One metadata key holding sorted JSON: safetensors does not keep the order of several keys,
    # and the file should be byte-reproducible.
    header = {"format": MASK_FORMAT, "shapes": shapes, "meta": meta}
    metadata = {"zoharness_mask": json.dumps(header, sort_keys=True)}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    tmp.replace(path)


def load(path: str | Path, model=None) -> tuple[dict[str, torch.Tensor], dict]:
    """Indices (int64) and metadata; with a model, refuse a mask built for other names or shapes."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: mask file not found; build it with `zoharness mask`")
    with safe_open(str(path), framework="pt") as f:
        header = json.loads((f.metadata() or {}).get("zoharness_mask", "{}"))
        if header.get("format") != MASK_FORMAT:
            raise DataError(
                f"{path}: not a mask file of format {MASK_FORMAT}; rebuild it with `zoharness mask`"
            )
        indices = {name: f.get_tensor(name).long() for name in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    shapes = header["shapes"]
    meta = {"shapes": shapes, **header["meta"]}
    if model is not None:
        check_fits(path, shapes, eligible_shapes(model))
    return indices, meta


def check_fits(path, mask_shapes: dict, model_shapes: dict) -> None:
    for name, shape in model_shapes.items():
        if name not in mask_shapes:
            raise MaskMismatchError(
                f"{path}: mask has no entry for this model's {name} {shape}; it was built for another model"
            )
        if list(mask_shapes[name]) != list(shape):
            raise MaskMismatchError(
                f"{path}: mask was built for {name} of shape {mask_shapes[name]}, this model's is {shape}"
            )
    extra = sorted(set(mask_shapes) - set(model_shapes))
    if extra:
        raise MaskMismatchError(
            f"{path}: mask names matrices this model does not have, e.g. {extra[0]} {mask_shapes[extra[0]]}"
        )


def write_stats(path: str | Path, stats_: dict) -> None:
    write_json_atomic(path, stats_)
