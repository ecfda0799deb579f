"""RapidIn's retrieval stage: influence scores as inner products, and the most helpful/harmful examples.

The influence of training example i on query j is <sketch(g_i), sketch(g_j)>, which estimates <g_i, g_j>
(RapidGrad is unbiased) for per-tensor-normalised gradients: a sum over parameter tensors of cosine
similarities. High: a training step on i moves the query's loss down (helpful); low, negative: up
(harmful). `exact_scores` computes the uncompressed inner products, the baseline a small model can afford.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch


def _matrix(name: str, value, k: int | None = None) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.ndim != 2 or not value.is_floating_point():
        got = (tuple(value.shape), value.dtype) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must be a 2-D floating-point tensor, got {got}")
    if k is not None and value.shape[1] != k:
        raise ValueError(
            f"{name} has {value.shape[1]} columns, the other side has {k}: sketches of another K"
        )
    return value


def scores(cache_sketches: torch.Tensor, query_sketches: torch.Tensor, block: int = 4096) -> torch.Tensor:
    """[q, n] float32 inner products of q query sketches [q, K] with n cached sketches [n, K].

    Streamed over `block` cached rows at a time, each upcast to float32 (float16 sums over a large K lose
    digits, and CPUs have no fast float16 matmul) on the queries' device: memory is block·K floats
    whatever n is, so a cache larger than the device's memory can be scored from the CPU."""
    queries = _matrix("scores: query_sketches", query_sketches)
    cache = _matrix("scores: cache_sketches", cache_sketches, queries.shape[1])
    if isinstance(block, bool) or not isinstance(block, numbers.Integral) or block < 1:
        raise ValueError(f"scores: block must be an integer >= 1, got {block!r}")
    dtype = torch.promote_types(queries.dtype, torch.float32)
    q = queries.to(dtype)
    out = torch.empty((q.shape[0], cache.shape[0]), dtype=dtype, device=q.device)
    for start in range(0, cache.shape[0], block):
        part = cache[start : start + block].to(device=q.device, dtype=dtype)
        out[:, start : start + part.shape[0]] = q @ part.T
    return out


def exact_scores(train_grads: torch.Tensor, query_grads: torch.Tensor) -> torch.Tensor:
    """[q, n] inner products of the uncompressed normalised gradients (train [n, D], queries [q, D]), in
    at least float32: the ground truth the sketches estimate, for models small enough to hold n·D floats."""
    queries = _matrix("exact_scores: query_grads", query_grads)
    train = _matrix("exact_scores: train_grads", train_grads, queries.shape[1])
    dtype = torch.promote_types(torch.promote_types(queries.dtype, train.dtype), torch.float32)
    return queries.to(dtype) @ train.to(device=queries.device, dtype=dtype).T


def top_k(score_matrix: torch.Tensor, ids: Sequence[str], k: int) -> list[dict[str, list[tuple[str, float]]]]:
    """Per query (row of score_matrix [q, n]): {"helpful": the k highest (id, score), highest first,
    "harmful": the k lowest, lowest first}. k larger than n gives all n. Ties keep the cache's order (a
    stable sort), so one score matrix always gives one answer."""
    if not isinstance(score_matrix, torch.Tensor) or score_matrix.ndim != 2:
        got = (
            tuple(score_matrix.shape)
            if isinstance(score_matrix, torch.Tensor)
            else type(score_matrix).__name__
        )
        raise ValueError(f"top_k: scores must be a [queries, examples] tensor, got {got}")
    if len(ids) != score_matrix.shape[1]:
        raise ValueError(f"top_k: {len(ids)} ids for {score_matrix.shape[1]} scored examples")
    if isinstance(k, bool) or not isinstance(k, numbers.Integral) or k < 1:
        raise ValueError(f"top_k: k must be an integer >= 1, got {k!r}")
    s = score_matrix.detach().to("cpu", torch.float64)
    if not bool(torch.isfinite(s).all()):
        raise ValueError("top_k: the scores hold NaN or inf; check the gradients and the cache")
    k = min(int(k), s.shape[1])
    down = torch.sort(s, dim=1, descending=True, stable=True).indices[:, :k].tolist()
    up = torch.sort(s, dim=1, descending=False, stable=True).indices[:, :k].tolist()
    rows = s.tolist()
    return [
        {
            "helpful": [(ids[i], row[i]) for i in hi],
            "harmful": [(ids[i], row[i]) for i in lo],
        }
        for row, hi, lo in zip(rows, down, up, strict=True)
    ]
