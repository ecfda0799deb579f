"""fp32 linear layers on the CPU through oneDNN rather than MKL's sgemm.

Why: PyTorch's x86 CPU wheels send an fp32 `F.linear` to MKL, and MKL runs its AVX2 kernels on AMD CPUs even
where the CPU has AVX-512. oneDNN, bundled in the same wheel (`torch.ops.mkldnn`), dispatches on the CPU's own
features. For SmolLM2-135M's shapes (210 rows against its four weight shapes) on one core of an AMD EPYC Zen 5,
oneDNN ran the GEMMs at 146-167 GFLOPS against MKL's 75-88, the forward 1.72x and forward + backward 1.76x faster
(`python bench/cpu_linear.py`, bench/out/cpu_linear.json; `tests/test_cpu_linear.py` checks the values). Linear
layers are 84% of a forward on the CPU, so every forward pass, ZO step, FT step and evaluation gains.

What stays the same: IEEE fp32 throughout (no bf16 or tf32 reduction; oneDNN's fp32 matmul is only reduced
when `torch.backends.mkldnn`'s fp32 precision says so, which this module never sets), results independent of
the thread count, bit-identical from call to call, and the weight tensor is the module's own Parameter, read
at every call, so in-place updates (ZO's perturbations) are seen. What changes: the summation order, so
outputs differ from MKL's at rounding level (within 1e-5 relative in the tests): an engine version (zoharness.config).

`backend`: "onednn" routes every fp32 CPU call through oneDNN (any other dtype or device goes to F.linear as
before); "aten" is PyTorch's own path, the default of `zoharness.models.load`, so callers that do not ask
(the sensitivity pass behind the committed mask, tests, lm-eval) keep MKL's numbers.
"""

from __future__ import annotations

import os

import torch
from torch import nn

# oneDNN keeps one primitive (a JIT-compiled kernel and its buffers) per distinct input shape, up to 1024 by
# default; packed batches vary in length every step, so the cache grew a run's RSS by 300-800 MB (session 29's
# default suite). 16 holds the four weight shapes of the current batch and the last few at no measured cost in
# speed. Read by oneDNN when it creates its first primitive, hence here, before any; a user's setting wins.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")

BACKENDS = ("onednn", "aten")


def available() -> bool:
    """Whether this torch build has oneDNN's fp32 linear kernel."""
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _onednn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def _fits(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (
        x.device.type == "cpu"
        and weight.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.numel() > 0
    )


class _LinearFunction(torch.autograd.Function):
    """y = x Wᵀ + b with all three GEMMs (forward, grad_x, grad_W) in oneDNN; oneDNN's op has no autograd."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return _onednn(x, weight, bias)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        grad2d = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[0]:
            grad_x = _onednn(grad, weight.t(), None)  # g W: oneDNN reads the transposed view as it is
        if ctx.needs_input_grad[1]:
            grad_w = _onednn(grad2d.t(), x.reshape(-1, x.shape[-1]).t(), None)  # gᵀ x
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad2d.sum(0)
        return grad_x, grad_w, grad_b


def _carries_tangents(*tensors: torch.Tensor | None) -> bool:
    """Whether a tensor is inside a torch.func transform (jvp, vmap, grad) or is a forward-AD dual. oneDNN's op
    has no derivative formulas, and under torch.func.jvp it silently drops the tangent (the directional
    derivative comes out 0: the forward-gradient method then never moves), so such calls go to F.linear."""
    wrapped = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    for t in tensors:
        if t is None:
            continue
        if wrapped is not None and wrapped(t):
            return True
        if torch.autograd.forward_ad.unpack_dual(t).tangent is not None:
            return True
    return False


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """F.linear, through oneDNN where x and weight are fp32 on the CPU (F.linear otherwise, and under
    forward-mode AD or another torch.func transform)."""
    if not _fits(x, weight) or _carries_tangents(x, weight, bias):
        return nn.functional.linear(x, weight, bias)
    if torch.is_grad_enabled() and (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    ):
        return _LinearFunction.apply(x, weight, bias)
    return _onednn(x, weight, bias)


class OneDNNLinear(nn.Linear):
    """An nn.Linear whose forward is `linear` above; the same parameters, state dict and isinstance."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def use(model: nn.Module, backend: str) -> int:
    """Route `model`'s nn.Linear layers through `backend`; the number of layers routed through oneDNN.
    Swaps each layer's class in place (parameters untouched), so wrappers that look for nn.Linear (peft,
    sparse_zo_int4's layer replacement) still find them."""
    if backend not in BACKENDS:
        raise ValueError(f"cpu_linear must be one of {BACKENDS}, got {backend!r}")
    if backend == "onednn" and not available():
        raise RuntimeError(
            "cpu_linear: onednn needs a torch build with oneDNN (torch.backends.mkldnn); this one has none: "
            "set cpu_linear: aten"
        )
    routed = 0
    for module in model.modules():
        if backend == "onednn" and type(module) is nn.Linear:
            module.__class__ = OneDNNLinear
        elif backend == "aten" and type(module) is OneDNNLinear:
            module.__class__ = nn.Linear
        routed += type(module) is OneDNNLinear
    return routed


def backend_of(model: nn.Module) -> str:
    """ "onednn" when any of `model`'s linear layers goes through oneDNN, else "aten"."""
    return "onednn" if any(type(m) is OneDNNLinear for m in model.modules()) else "aten"


def linear_backend(run_cfg: dict) -> str:
    """A run config's backend; configs written before engine 3 have no `cpu_linear` and ran PyTorch's."""
    return run_cfg.get("cpu_linear", "aten")
