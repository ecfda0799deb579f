"""MeZO checked against the algorithm's math: restore bound, gradient estimate, replay, seeding."""

import copy

import pytest
import torch

from tests.helpers import count_fused_passes
from zoharness import scoring
from zoharness.tasks import get_task
from zoharness.zo import NOISE_GENERATORS, ZOSGD, SeededNoise, step_seed, tensor_seeds, trainable_parameters

GENERATORS = sorted(NOISE_GENERATORS)  # every test of the step runs with each noise generator


def _batch(tok, split, n=4):
    from tests.conftest import DATA
    from zoharness.data import load_split

    task = get_task("sst2")
    examples = load_split(split, DATA).train[:n]
    return scoring.collate([scoring.encode(tok, task.prompt(e), 128) for e in examples], tok.pad_token_id)


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("generator", GENERATORS)
def test_perturb_then_restore_is_within_fp32_rounding(tiny, generator):
    model, _ = tiny
    before = _params(model)
    eps = 1e-3
    noise = NOISE_GENERATORS[generator](trainable_parameters(model), cache=False, threads=2)
    noise.axpy(7, eps)
    noise.axpy(7, -2 * eps)
    noise.axpy(7, eps)
    for name, p in model.named_parameters():
        z = noise.noise(7, noise.names.index(name))
        # Three roundings of values bounded by |θ| + 2ε|z|: each at most half an ulp (2^-24 relative).
        bound = 3 * 2.0**-24 * (before[name].abs() + 2 * eps * z.abs()).max().item()
        err = (p.detach() - before[name]).abs().max().item()
        assert err <= bound, f"{name}: restore error {err} > bound {bound}"
        assert err < 1e-6


def test_same_seed_same_noise_and_tensors_are_independent(tiny):
    model, _ = tiny
    noise = SeededNoise(trainable_parameters(model))
    assert torch.equal(noise.noise(123, 0), noise.noise(123, 0))
    assert not torch.equal(noise.noise(123, 0), noise.noise(124, 0))
    seeds = tensor_seeds(123, len(noise.tensors))
    assert len(set(seeds)) == len(seeds)
    # The documented convention reproduces z without the class.
    g = torch.Generator().manual_seed(seeds[3])
    expect = torch.empty(noise.tensors[3].shape, dtype=torch.float32).normal_(0, 1, generator=g)
    assert torch.equal(noise.noise(123, 3), expect)
    assert step_seed(0, 5) == step_seed(0, 5) != step_seed(1, 5)


def test_projected_gradient_matches_directional_derivative(model_refs, small_split):
    """(L(θ+εz) - L(θ-εz)) / 2ε -> ∇L·z as ε -> 0: the estimator MeZO relies on.

    OPT's ReLUs make the loss piecewise smooth, so the difference picks up O(ε) kink errors (measured:
    6% at ε=1e-3, 3e-6 at ε=1e-6); in float64 a tiny ε keeps both those and rounding (~1e-16/ε) small."""
    from zoharness import models

    # OPT runs in float64 end to end (Llama's RMSNorm and rotary embedding compute in float32).
    model, tok = models.load(model_refs["opt"], dtype="float64")
    batch = _batch(tok, small_split)
    named = trainable_parameters(model)
    loss = scoring.loss(model, batch)
    grads = torch.autograd.grad(loss, [p for _, p in named])
    zo = ZOSGD(model, named, lr=0.0, eps=1e-7, run_seed=0, cache=False, threads=1)
    seed = step_seed(0, 0)
    directional = sum((g * zo.noise.noise(seed, i).double()).sum() for i, g in enumerate(grads)).item()
    out = zo.step(batch, 0)
    assert out["zo_seed"] == seed
    assert out["projected_grad"] == pytest.approx(directional, rel=1e-5)


@pytest.mark.parametrize("generator", GENERATORS)
def test_step_moves_weights_by_minus_lr_g_z(tiny, small_split, generator):
    model, tok = tiny
    before = _params(model)
    zo = _zosgd(model, run_seed=3, cache=False, threads=2, generator=generator)
    out = zo.step(_batch(tok, small_split), 0)
    assert out["forward_passes"] == 2
    assert out["projected_grad"] == pytest.approx((out["loss_plus"] - out["loss_minus"]) / 2e-3)
    for i, (name, p) in enumerate(trainable_parameters(model)):
        expected = before[name] - 1e-2 * out["projected_grad"] * zo.noise.noise(out["zo_seed"], i)
        torch.testing.assert_close(p.detach(), expected, atol=1e-6, rtol=0)


def _zosgd(model, **kw):
    return ZOSGD(model, trainable_parameters(model), **{"lr": 1e-2, "eps": 1e-3, "run_seed": 11, **kw})


def _train(model, tok, split, steps, **kw):
    zo = _zosgd(model, **kw)
    batch = _batch(tok, split)
    return [zo.step(batch, t) for t in range(steps)]


@pytest.mark.parametrize("generator", GENERATORS)
@pytest.mark.parametrize("cache,threads", [(True, 2), (False, 1)])
def test_cache_and_threads_do_not_change_a_single_bit(tiny, small_split, cache, threads, generator):
    model, tok = tiny
    ref_model = copy.deepcopy(model)
    ref = _train(ref_model, tok, small_split, 4, cache=False, threads=2, generator=generator)
    got = _train(model, tok, small_split, 4, cache=cache, threads=threads, generator=generator)
    assert [r["projected_grad"] for r in got] == [r["projected_grad"] for r in ref]
    for (n, a), (_, b) in zip(model.named_parameters(), ref_model.named_parameters(), strict=True):
        assert torch.equal(a, b), n


@pytest.mark.parametrize("generator", GENERATORS)
def test_replay_rebuilds_weights_bit_for_bit(tiny, small_split, generator):
    model, tok = tiny
    base = copy.deepcopy(model)
    records = _train(model, tok, small_split, 5, cache=True, threads=2, generator=generator)
    zo = _zosgd(base, cache=False, threads=1, generator=generator)
    for r in records:
        zo.replay(r)
    for (n, a), (_, b) in zip(model.named_parameters(), base.named_parameters(), strict=True):
        assert torch.equal(a, b), n


def test_trajectory_header_documents_the_convention(tiny):
    model, _ = tiny
    header = ZOSGD(
        model, trainable_parameters(model), lr=1e-3, eps=1e-3, run_seed=0, cache=False, threads=1
    ).trajectory_header()
    noise = header["zo"]["noise"]
    assert {"step_seed", "tensor_seed", "generator", "draw", "parameter_order", "tensors"} <= set(noise)
    assert [t[0] for t in noise["tensors"]] == [n for n, _ in trainable_parameters(model)]


# The seams: a variant overrides one piece (distribution, estimate, update) and keeps the rest.


def _engine(method, model, **params):
    from zoharness.methods import get_method

    m = get_method(method)
    return m.build(model, m.Params(**{"lr": 1e-2, "eps": 1e-3, **params}), 11)


def test_rademacher_noise_is_signs_with_mean_zero_and_unit_variance(tiny):
    model, _ = tiny
    zo = _engine("mezo_rademacher", model)
    z = torch.cat([zo.noise.noise(123, i).flatten() for i in range(len(zo.noise.tensors))])
    assert set(z.unique().tolist()) == {-1.0, 1.0}
    # n draws of ±1: the mean has std 1/sqrt(n); 5 sigma bound.
    assert abs(z.mean().item()) < 5 / z.numel() ** 0.5
    assert z.square().mean().item() == 1.0
    header = zo.trajectory_header()["zo"]
    assert (
        header["noise"]["distribution"].startswith("Rademacher") and "random_(0, 2" in header["noise"]["draw"]
    )
    # The documented draw reproduces z without the class.
    seeds = tensor_seeds(123, len(zo.noise.tensors))
    g = torch.Generator().manual_seed(seeds[2])
    expect = torch.empty(zo.noise.tensors[2].shape).random_(0, 2, generator=g).mul_(2).sub_(1)
    assert torch.equal(zo.noise.noise(123, 2), expect)


@pytest.mark.parametrize("method", ["mezo", "mezo_rademacher", "zo_sgd_momentum"])
def test_variants_do_not_change_a_bit_with_cache_or_threads(tiny, small_split, method):
    model, tok = tiny
    batch = _batch(tok, small_split)
    runs = []
    for cache, threads in (("none", 2), ("step", 1)):
        m = copy.deepcopy(model)
        zo = _engine(method, m, z_cache=cache, noise_threads=threads)
        runs.append(([zo.step(batch, t)["projected_grad"] for t in range(3)], m))
    assert runs[0][0] == runs[1][0]
    for (n, a), (_, b) in zip(runs[0][1].named_parameters(), runs[1][1].named_parameters(), strict=True):
        assert torch.equal(a, b), n


def test_momentum_update_is_heavy_ball_on_the_projected_gradient(tiny, small_split):
    """θ_2 = θ_0 - lr·(m_1 + m_2), m_1 = g_1 z_1, m_2 = β g_1 z_1 + g_2 z_2 (fp32 rounding apart)."""
    model, tok = tiny
    before = _params(model)
    zo = _engine("zo_sgd_momentum", model, momentum=0.5)
    batch = _batch(tok, small_split)
    out = [zo.step(batch, t) for t in range(2)]
    (g1, s1), (g2, s2) = [(r["projected_grad"], r["zo_seed"]) for r in out]
    for i, (name, p) in enumerate(trainable_parameters(model)):
        z1, z2 = zo.noise.noise(s1, i), zo.noise.noise(s2, i)
        m1, m2 = g1 * z1, 0.5 * g1 * z1 + g2 * z2
        torch.testing.assert_close(p.detach(), before[name] - 1e-2 * (m1 + m2), atol=1e-6, rtol=0)
        torch.testing.assert_close(zo.m[i], m2, atol=1e-6, rtol=1e-6)
    n = sum(t.numel() for t in zo.noise.tensors)
    assert zo.extra_metrics()["zo_optimizer_state_bytes"] == 4 * n  # one float32 copy: its memory cost
    header = zo.trajectory_header()["zo"]
    assert "β=0.5" in header["update"] and header["estimator"] == ZOSGD.ESTIMATOR


def test_mezo_header_names_every_piece(tiny):
    model, _ = tiny
    zo = _engine("mezo", model)
    header = zo.trajectory_header()["zo"]
    assert header["noise"]["distribution"] == "standard normal"
    assert header["noise"]["draw"].startswith("Philox4x32-10")  # MeZO's default generator (version 2)
    assert header["estimator"].startswith("two-sided SPSA") and header["update"].startswith("SGD")
    assert zo.extra_metrics()["zo_optimizer_state_bytes"] == 0


def test_a_variant_with_its_own_distribution_refuses_the_philox_generator(tiny):
    from zoharness.methods import get_method

    with pytest.raises(ValueError, match="mezo_rademacher.noise must be 'torch', got 'philox'"):
        get_method("mezo_rademacher").Params(noise="philox")
    model, _ = tiny
    RademacherZO = type(_engine("mezo_rademacher", model))
    with pytest.raises(ValueError, match="draws 'Rademacher.*set noise: torch"):
        RademacherZO(
            model,
            trainable_parameters(model),
            lr=1.0,
            eps=1.0,
            run_seed=0,
            cache=False,
            threads=1,
            generator="philox",
        )


def _train_deferred(model, tok, split, steps, **kw):
    zo = _zosgd(model, **kw)
    zo.defer(True)
    batch = _batch(tok, split)
    records = [zo.step(batch, t) for t in range(steps)]
    return zo, records


@pytest.mark.parametrize("threads", [1, 2])
def test_a_deferred_update_fused_into_the_next_pass_changes_no_bit(tiny, small_split, threads, monkeypatch):
    """The training loop defers each step's update into the next step's first pass (philox.axpy2_): the
    losses, projected gradients and settled weights are those of the step that updates at once."""
    model, tok = tiny
    ref_model = copy.deepcopy(model)
    ref = _train(ref_model, tok, small_split, 4, cache=False, threads=2, generator="philox")
    fused_calls = count_fused_passes(monkeypatch)
    zo, got = _train_deferred(model, tok, small_split, 4, cache=False, threads=threads, generator="philox")
    assert fused_calls, "no pass fused two seeds"
    assert zo._pending is not None  # the last step's update waits for the next pass
    unsettled = _params(model)
    zo.settle()
    assert zo._pending is None
    assert any(not torch.equal(unsettled[n], p) for n, p in model.named_parameters())
    assert [r["loss_plus"] for r in got] == [r["loss_plus"] for r in ref]
    assert [r["projected_grad"] for r in got] == [r["projected_grad"] for r in ref]
    for (n, a), (_, b) in zip(model.named_parameters(), ref_model.named_parameters(), strict=True):
        assert torch.equal(a, b), n


@pytest.mark.parametrize(
    "kw", [{"generator": "torch"}, {"generator": "philox", "cache": True}, {"queries": 2}]
)
def test_only_plain_philox_zo_sgd_defers(tiny, small_split, kw):
    """The torch generator, the z cache and q > 1 update at once: their step leaves nothing pending."""
    model, tok = tiny
    zo, _ = _train_deferred(
        model, tok, small_split, 2, **{"cache": False, "threads": 1, "generator": "philox", **kw}
    )
    assert zo._pending is None


def test_a_variant_with_its_own_update_never_defers(tiny, small_split):
    from zoharness.zo import StatefulZO

    class Halved(StatefulZO):
        def apply(self, i, t, direction, scale, lr):
            t.add_(direction.to(t.dtype), alpha=-lr * scale / 2)

    model, tok = tiny
    zo = Halved(model, trainable_parameters(model), lr=1e-2, eps=1e-3, run_seed=1, cache=False, threads=1,
                generator="philox")  # fmt: skip
    zo.defer(True)
    zo.step(_batch(tok, small_split), 0)
    assert zo.noise.fuses  # the noise could fuse: the overridden update is what keeps it from deferring
    assert zo._pending is None and not zo._defers()


def test_replay_settles_first_and_defer_off_settles(tiny, small_split):
    model, tok = tiny
    base = copy.deepcopy(model)
    zo, records = _train_deferred(model, tok, small_split, 3, cache=False, threads=1, generator="philox")
    zo.defer(False)  # turning deferral off applies what is pending
    assert zo._pending is None
    replayer = _zosgd(base, cache=False, threads=2, generator="philox")
    for r in records:
        replayer.replay(r)
    for (n, a), (_, b) in zip(model.named_parameters(), base.named_parameters(), strict=True):
        assert torch.equal(a, b), n
