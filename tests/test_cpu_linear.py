"""zoharness.cpu_linear: oneDNN's fp32 linear against F.linear (values, gradients, determinism, routing)."""

import pytest
import torch
from torch import nn

from zoharness import cpu_linear

pytestmark = pytest.mark.skipif(not cpu_linear.available(), reason="this torch build has no oneDNN")

# oneDNN sums in another order than MKL: the same fp32 result up to rounding. Over K = 1536 products of
# unit-variance terms the outputs are ~40 in size; 1e-5 relative of the largest output is ~100 ulps of it.
RTOL = 1e-5


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool((a - b).abs().max() <= RTOL * b.abs().max())


@pytest.mark.parametrize(
    "shape",
    [(1, 576), (7, 576), (210, 576), (2, 105, 576), (3, 4, 5, 576)],
    ids=["one-row", "seven-rows", "packed-batch", "3d", "4d"],
)
@pytest.mark.parametrize("with_bias", [False, True])
def test_forward_matches_f_linear(shape, with_bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    w = torch.randn(1536, 576, generator=g)
    b = torch.randn(1536, generator=g) if with_bias else None
    out = cpu_linear.linear(x, w, b)
    assert out.shape == (*shape[:-1], 1536) and out.dtype == torch.float32
    assert close(out, nn.functional.linear(x, w, b))


def test_non_contiguous_operands():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(576, 64, generator=g).t()  # a transposed view
    w = torch.randn(576, 300, generator=g).t()
    assert not x.is_contiguous() and not w.is_contiguous()
    assert close(cpu_linear.linear(x, w), nn.functional.linear(x, w))


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_other_dtypes_go_to_f_linear_unchanged(dtype):
    g = torch.Generator().manual_seed(2)
    x, w = torch.randn(5, 64, generator=g).to(dtype), torch.randn(32, 64, generator=g).to(dtype)
    assert torch.equal(cpu_linear.linear(x, w), nn.functional.linear(x, w))


def test_empty_input():
    w = torch.randn(8, 4)
    assert cpu_linear.linear(torch.empty(0, 4), w).shape == (0, 8)


def test_bit_identical_across_calls_and_thread_counts():
    g = torch.Generator().manual_seed(3)
    x, w = torch.randn(211, 576, generator=g), torch.randn(1536, 576, generator=g)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = cpu_linear.linear(x, w)
        again = cpu_linear.linear(x, w)
        torch.set_num_threads(2)
        two = cpu_linear.linear(x, w)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, again) and torch.equal(one, two)


@pytest.mark.parametrize("with_bias", [False, True])
def test_gradients_match_f_linear(with_bias):
    g = torch.Generator().manual_seed(4)
    x0, w0 = torch.randn(3, 70, 96, generator=g), torch.randn(160, 96, generator=g)
    b0 = torch.randn(160, generator=g) if with_bias else None
    upstream = torch.randn(3, 70, 160, generator=g)
    grads = {}
    for name, fn in (("onednn", cpu_linear.linear), ("aten", nn.functional.linear)):
        x, w = x0.clone().requires_grad_(), w0.clone().requires_grad_()
        b = None if b0 is None else b0.clone().requires_grad_()
        (fn(x, w, b) * upstream).sum().backward()
        grads[name] = [x.grad, w.grad] + ([b.grad] if with_bias else [])
    for ours, theirs in zip(grads["onednn"], grads["aten"], strict=True):
        assert ours is not None and close(ours, theirs)


def test_only_the_weight_needs_a_gradient():
    """A frozen input (the first layer's embeddings under no grad) and a trainable weight: FT's case."""
    g = torch.Generator().manual_seed(5)
    x = torch.randn(9, 32, generator=g)
    w = torch.randn(16, 32, generator=g, requires_grad=True)
    cpu_linear.linear(x, w).square().sum().backward()
    expected = torch.autograd.grad(nn.functional.linear(x, w).square().sum(), w)[0]
    assert close(w.grad, expected)


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Sequential(nn.Linear(32, 8, bias=False)))


def test_use_routes_every_linear_and_keeps_the_parameters():
    model = tiny_model()
    keys = list(model.state_dict())
    x = torch.randn(4, 16)
    before = model(x)
    assert cpu_linear.use(model, "onednn") == 2
    assert cpu_linear.backend_of(model) == "onednn"
    assert all(
        isinstance(m, nn.Linear) for m in (model[0], model[2][0])
    )  # peft and sparse_zo still find them
    assert list(model.state_dict()) == keys
    assert close(model(x), before)
    assert cpu_linear.use(model, "aten") == 0
    assert cpu_linear.backend_of(model) == "aten" and type(model[0]) is nn.Linear
    assert torch.equal(model(x), before)


def test_in_place_weight_changes_are_seen():
    """ZO perturbs the weights in place between forwards: each call must read the Parameter as it is."""
    model = tiny_model()
    cpu_linear.use(model, "onednn")
    x = torch.randn(4, 16)
    with torch.no_grad():
        first = model(x)
        model[0].weight.mul_(2.0)
        second = model(x)
        expected = nn.functional.linear(
            torch.relu(nn.functional.linear(x, model[0].weight, model[0].bias)), model[2][0].weight
        )
    assert not torch.equal(first, second)
    assert close(second, expected)


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="cpu_linear must be one of"):
        cpu_linear.use(tiny_model(), "mkl")


def test_forward_mode_derivatives_are_f_linears():
    """oneDNN's op has no forward-mode formula and dropped the tangent under torch.func.jvp (the forward
    gradient came out exactly 0); `linear` hands such calls to F.linear."""
    g = torch.Generator().manual_seed(3)
    x, w, b = (torch.randn(*s, generator=g) for s in [(7, 16), (5, 16), (5,)])
    tx, tw, tb = (torch.randn(*s, generator=g) for s in [(7, 16), (5, 16), (5,)])

    def ours(x, w, b):
        return cpu_linear.linear(x, w, b).square().sum()

    def theirs(x, w, b):
        return nn.functional.linear(x, w, b).square().sum()

    got = torch.func.jvp(ours, (x, w, b), (tx, tw, tb))
    want = torch.func.jvp(theirs, (x, w, b), (tx, tw, tb))
    assert want[1].abs() > 0 and close(got[1], want[1]) and close(got[0], want[0])
    along_w = torch.func.jvp(lambda w: theirs(x, w, b), (w,), (tw,))[1]
    with torch.autograd.forward_ad.dual_level():  # the classic forward-AD API too
        dual = torch.autograd.forward_ad.make_dual(w, tw)
        tangent = torch.autograd.forward_ad.unpack_dual(ours(x, dual, b)).tangent
    assert tangent is not None and close(tangent, along_w)


def test_run_configs_before_engine_3_ran_pytorchs_path():
    assert cpu_linear.linear_backend({}) == "aten"
    assert cpu_linear.linear_backend({"cpu_linear": "onednn"}) == "onednn"


@pytest.mark.parametrize("arch", ["llama", "opt", "roberta"])
def test_models_load_routes_the_linear_layers(model_refs, arch):
    from zoharness import models

    theirs, _ = models.load(model_refs[arch])
    ours, _ = models.load(model_refs[arch], cpu_linear="onednn")
    assert cpu_linear.backend_of(theirs) == "aten"
    n_linear = sum(isinstance(m, nn.Linear) for m in ours.modules())
    assert n_linear > 0 and sum(type(m) is cpu_linear.OneDNNLinear for m in ours.modules()) == n_linear
    ids = torch.arange(3, 40).reshape(1, -1) % ours.config.vocab_size
    with torch.no_grad():
        assert close(ours(input_ids=ids).logits, theirs(input_ids=ids).logits)


def test_sparse_delta_layer_keeps_the_backend(model_refs):
    from zoharness import models
    from zoharness.sparse.layers import SparseDeltaLinear

    model, _ = models.load(model_refs["llama"], cpu_linear="onednn")
    linear = next(m for m in model.modules() if isinstance(m, nn.Linear))
    layer = SparseDeltaLinear(linear, torch.tensor([0, 5, 9]), base="dense")
    assert layer._linear is cpu_linear.linear
    x = torch.randn(4, linear.in_features)
    assert close(layer(x), nn.functional.linear(x, linear.weight, linear.bias))
