"""A linear layer whose weight is a frozen base plus a trainable sparse delta.

Forward, exactly:   W_eff = B + S(δ);   y = x W_effᵀ + b
  B     the frozen base in the compute dtype: bitsandbytes' dequantize_4bit of the layer's NF4/FP4
        codes (base "nf4"/"fp4"), or the unquantized weight itself (base "dense")
  S(δ)  the dense matrix that is zero except at the mask's flat positions, where it holds δ (float32,
        cast to the compute dtype); it is *added* (index_add_) into a fresh copy of B, never into the
        stored codes or weight, so the frozen base cannot change
  δ     initialised to W₀[idx] − B[idx] for a 4-bit base, so the sensitive entries start at their
        original (unquantized) values, SensZOQ's "keep the sensitive weights in 16 bit"; 0 for a dense base
W_eff exists for one layer at a time, as in bitsandbytes' own matmul_4bit for batches > 1, so the
transient cost is one matrix in the compute dtype whatever the mask's size.
"""

from __future__ import annotations

import torch
from torch import nn

from zoharness import cpu_linear
from zoharness.io import BackendUnavailableError
from zoharness.profiling import tensor_bytes
from zoharness.sparse import BASES
from zoharness.sparse.mask import eligible_linears


def _bitsandbytes(device: torch.device):
    """bitsandbytes' functional API, checked to quantize and dequantize on `device`; no fall-back."""
    try:
        import bitsandbytes.functional as bnbf
    except Exception as e:  # ImportError, or a broken native library
        raise BackendUnavailableError(
            f"sparse_zo_int4 with a 4-bit base needs bitsandbytes (pip install bitsandbytes==0.50.0): "
            f"{type(e).__name__}: {e}. There is no silent fall-back; use base: dense for the unquantized ablation."
        ) from None
    try:
        probe = torch.linspace(-1, 1, 128, device=device).reshape(2, 64)
        codes, state = bnbf.quantize_4bit(probe, blocksize=64, quant_type="nf4")
        bnbf.dequantize_4bit(codes, state)
    except Exception as e:
        raise BackendUnavailableError(
            f"bitsandbytes cannot run 4-bit quantization on device {device}: {type(e).__name__}: {e}"
        ) from None
    return bnbf


class SparseDeltaLinear(nn.Module):
    def __init__(self, linear: nn.Linear, index: torch.Tensor, base: str, blocksize: int = 64):
        super().__init__()
        if base not in BASES:
            raise ValueError(f"base must be one of {BASES}, got {base!r}")
        w = linear.weight.detach()
        self.in_features, self.out_features, self.base_kind = linear.in_features, linear.out_features, base
        self.compute_dtype = w.dtype
        # the replaced layer's CPU backend (zoharness.cpu_linear), kept for W_eff's matmul
        self._linear = cpu_linear.linear if type(linear) is cpu_linear.OneDNNLinear else nn.functional.linear
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach(), requires_grad=False)
        self.register_buffer("index", index.to(device=w.device, dtype=torch.long), persistent=False)
        if base == "dense":
            self.register_buffer("weight", w, persistent=False)
            delta = torch.zeros(index.numel(), dtype=torch.float32, device=w.device)
        else:
            self._bnbf = _bitsandbytes(w.device)
            codes, self.quant_state = self._bnbf.quantize_4bit(w, blocksize=blocksize, quant_type=base)
            self.register_buffer("codes", codes, persistent=False)
            delta = w.flatten()[self.index].float() - self.base_weight().flatten()[self.index].float()
        self.delta = nn.Parameter(delta, requires_grad=False)  # moved by ZO only

    def base_weight(self) -> torch.Tensor:
        """B, a fresh tensor in the compute dtype (dequantized 4-bit codes, or a copy of the weight)."""
        if self.base_kind == "dense":
            return self.weight.clone()
        return self._bnbf.dequantize_4bit(self.codes, self.quant_state).to(self.compute_dtype)

    def effective_weight(self) -> torch.Tensor:
        w = self.base_weight()
        w.view(-1).index_add_(0, self.index, self.delta.to(w.dtype))
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._linear(x, self.effective_weight().to(x.dtype), self.bias)

    def memory(self) -> dict[str, int]:
        base = (
            tensor_bytes([self.weight])
            if self.base_kind == "dense"
            else tensor_bytes([self.codes]) + _state_bytes(self.quant_state)
        )
        return {
            "base": base,
            "delta_values": tensor_bytes([self.delta]),
            # stored as int32 on disk; int64 in memory because index_add_ wants long indices
            "delta_indices": tensor_bytes([self.index]),
            "bias": tensor_bytes([self.bias]),
        }

    def extra_repr(self) -> str:
        return (
            f"in={self.in_features}, out={self.out_features}, base={self.base_kind}, k={self.index.numel()}"
        )


def _state_bytes(state) -> int:
    """Bytes of a bitsandbytes QuantState's tensors (absmax per block, the code book, nested stats)."""
    total = 0
    for value in vars(state).values():
        if isinstance(value, torch.Tensor):
            total += tensor_bytes([value])
        elif hasattr(value, "absmax"):
            total += _state_bytes(value)
    return total


def sparsify(
    model, indices: dict[str, torch.Tensor], base: str, blocksize: int = 64
) -> list[tuple[str, torch.Tensor]]:
    """Replace every eligible linear by a SparseDeltaLinear (in place); freeze everything else.

    Returns (name, δ) of the layers with at least one selected entry, in named_modules() order: the
    tensors ZO perturbs and updates.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    deltas = []
    for name, linear in eligible_linears(model):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        layer = SparseDeltaLinear(linear, indices[f"{name}.weight"], base, blocksize)
        setattr(parent, child, layer)
        if layer.delta.numel():
            deltas.append((f"{name}.delta", layer.delta))
    return deltas


def memory_by_component(model) -> dict[str, int]:
    """Resident bytes: the frozen base of the eligible matrices, the sparse values and indices, and
    everything else the model holds (embeddings, norms, head, biases) as `frozen_other`."""
    out = {"base": 0, "delta_values": 0, "delta_indices": 0, "frozen_other": 0}
    sparse_owned = set()
    for m in model.modules():
        if isinstance(m, SparseDeltaLinear):
            mem = m.memory()
            for k in ("base", "delta_values", "delta_indices"):
                out[k] += mem[k]
            out["frozen_other"] += mem["bias"]
            sparse_owned |= {id(t) for t in [*m.parameters(recurse=False), *m.buffers(recurse=False)]}
    others = [t for t in [*model.parameters(), *model.buffers()] if id(t) not in sparse_owned]
    out["frozen_other"] += tensor_bytes(others)
    return out
