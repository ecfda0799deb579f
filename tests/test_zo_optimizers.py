"""ZO-Bench's optimizer family and the query budget q, checked against each rule's math: the forward
gradient against autograd, q-averaging against its formula, ZO-SGD-Cons's guarantee, sign and Adam's
first steps, FO-SGD against a hand step, and replay exactness at q > 1 for every ZO method."""

import copy
import dataclasses
import math

import pytest
import torch

from zoharness import generation, scoring
from zoharness.methods import get_method, resolve_params
from zoharness.tasks import get_task
from zoharness.zo import ZOSGD, direction_seeds, step_seed, trainable_parameters

ZO_METHODS = [
    "mezo",
    "mezo_rademacher",
    "zo_sgd_momentum",
    "zo_sgd_sign",
    "zo_adam",
    "zo_sgd_cons",
    "forward_grad",
]


def _batch(tok, split, n=4, start=0):
    from tests.conftest import DATA
    from zoharness.data import load_split

    task = get_task("sst2")
    examples = load_split(split, DATA).train[start : start + n]
    return scoring.collate([scoring.encode(tok, task.prompt(e), 128) for e in examples], tok.pad_token_id)


def _engine(method, model, **params):
    m = get_method(method)
    return m.build(model, m.Params(**{"lr": 1e-3, "eps": 1e-3, **params}), 11)


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _float64(model_refs, arch="opt"):
    """OPT runs in float64 end to end (Llama's RMSNorm computes in float32): exact-math checks use it."""
    from zoharness import models

    return models.load(model_refs[arch], dtype="float64")


def test_forward_gradient_equals_autograds_directional_derivative(model_refs, small_split):
    model, tok = _float64(model_refs)
    batch = _batch(tok, small_split)
    named = trainable_parameters(model)
    loss = scoring.loss(model, batch)
    grads = torch.autograd.grad(loss, [p for _, p in named])
    zo = _engine("forward_grad", model, lr=1e-2)
    seed = step_seed(11, 0)
    directional = sum((g * zo.noise.noise(seed, i).double()).sum() for i, g in enumerate(grads)).item()
    before = _params(model)
    out = zo.step(batch, 0)
    assert out["forward_passes"] == 1 and out["zo_seed"] == seed
    assert out["loss"] == pytest.approx(loss.item(), rel=1e-12)
    assert out["projected_grad"] == pytest.approx(directional, rel=1e-10)  # exact, not an estimate
    for i, (name, p) in enumerate(named):  # then MeZO's update along z (its increment rounded to fp32)
        expected = before[name] - 1e-2 * out["projected_grad"] * zo.noise.noise(seed, i).double()
        torch.testing.assert_close(p.detach(), expected, atol=1e-7, rtol=0)


def test_forward_gradient_through_onednn_linear_layers_is_autograds(model_refs, small_split):
    """The suites run fp32 models with their linear layers on oneDNN (engine 3). Under torch.func.jvp that op
    dropped the tangent, so every step's directional derivative was exactly 0 and the method never moved
    (the method-zoo suite's first run); the jvp must go through F.linear there."""
    from zoharness import cpu_linear, models

    model, tok = models.load(model_refs["llama"], cpu_linear="onednn")
    assert cpu_linear.backend_of(model) == "onednn"
    batch = _batch(tok, small_split)
    named = trainable_parameters(model)
    grads = torch.autograd.grad(scoring.loss(model, batch), [p for _, p in named])
    zo = _engine("forward_grad", model, lr=1e-2)
    seed = step_seed(11, 0)
    directional = sum((g * zo.noise.noise(seed, i)).double().sum() for i, g in enumerate(grads)).item()
    out = zo.step(batch, 0)
    assert abs(directional) > 1e-3
    assert out["projected_grad"] == pytest.approx(directional, rel=1e-3)


def test_forward_gradients_tangent_bytes_are_known_before_a_step(tiny):
    """metrics.json's fg_tangent_bytes (the memory figure's "jvp tangent") must not depend on the trainer having
    stepped: a run that reports its best checkpoint replays into a fresh one (the method-zoo suite's first run
    recorded 0)."""
    model, _ = tiny
    zo = _engine("forward_grad", model)
    expected = sum(p.numel() * p.element_size() for _, p in trainable_parameters(model))
    assert expected > 0 and zo.extra_metrics()["fg_tangent_bytes"] == expected


def test_queries_one_is_the_plain_step_and_direction_zero_is_its_estimate(tiny, small_split):
    model, tok = tiny
    batch = _batch(tok, small_split)
    assert direction_seeds(11, 4, 1) == [step_seed(11, 4)]
    assert direction_seeds(11, 4, 3)[0] == step_seed(11, 4) and len(set(direction_seeds(11, 4, 3))) == 3
    plain_model, q1_model, q3_model = model, copy.deepcopy(model), copy.deepcopy(model)
    plain = ZOSGD(
        plain_model,
        trainable_parameters(plain_model),
        lr=1e-2,
        eps=1e-3,
        run_seed=11,
        cache=False,
        threads=2,
        generator="philox",
    )
    q1 = _engine("mezo", q1_model, lr=1e-2, queries=1)
    q3 = _engine("mezo", q3_model, lr=1e-2, queries=3)
    a, b = plain.step(batch, 0), q1.step(batch, 0)
    c = q3.step(batch, 0)
    drop = ("phases_s",)
    assert {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}
    for (n, x), (_, y) in zip(plain_model.named_parameters(), q1_model.named_parameters(), strict=True):
        assert torch.equal(x, y), n
    # q = 3: direction 0 starts from the same θ, so its estimate is the plain one bit for bit
    assert c["projected_grads"][0] == a["projected_grad"] and c["zo_seeds"][0] == a["zo_seed"]
    assert c["forward_passes"] == 6 and len(c["projected_grads"]) == 3


def test_q_directions_average_to_the_mean_estimate(tiny, small_split):
    """θ_1 = θ_0 - lr·(1/q)·Σ g_j z_j, each g_j the two-sided difference along z_j."""
    model, tok = tiny
    batch = _batch(tok, small_split)
    before = _params(model)
    zo = _engine("mezo", model, lr=1e-2, queries=3)
    out = zo.step(batch, 0)
    for g, lp, lm in zip(out["projected_grads"], out["loss_pluses"], out["loss_minuses"], strict=True):
        assert g == pytest.approx((lp - lm) / 2e-3)
    for i, (name, p) in enumerate(trainable_parameters(model)):
        step = sum(
            g * zo.noise.noise(s, i) for g, s in zip(out["projected_grads"], out["zo_seeds"], strict=True)
        )
        torch.testing.assert_close(p.detach(), before[name] - 1e-2 * step / 3, atol=2e-6, rtol=0)


@pytest.mark.parametrize("method", ZO_METHODS)
def test_every_zo_method_replays_q_directions_bit_for_bit(method, tiny, small_split):
    model, tok = tiny
    base, before = copy.deepcopy(model), _params(model)
    zo = _engine(method, model, queries=2)
    records = [zo.step(_batch(tok, small_split, start=4 * t), t) for t in range(3)]
    extra = {"zo_sgd_cons": 3}.get(method, 0)
    per_query = 1 if method == "forward_grad" else 2
    assert all(r["forward_passes"] == 2 * per_query + extra for r in records)
    assert all(len(r["zo_seeds"]) == 2 and len(r["projected_grads"]) == 2 for r in records)
    replayer = _engine(method, base, queries=2)
    for r in records:
        replayer.replay(r)
    for (n, a), (_, b) in zip(model.named_parameters(), base.named_parameters(), strict=True):
        assert torch.equal(a, b), n
    assert any(not torch.equal(p, before[n]) for n, p in model.named_parameters())  # it trained


def test_zo_sgd_cons_never_ends_a_step_above_its_starting_batch_loss(model_refs, small_split):
    model, tok = _float64(model_refs)
    zo = _engine("zo_sgd_cons", model, lr=5.0)  # a step large enough that the SGD move often overshoots
    choices = []
    for t in range(6):
        batch = _batch(tok, small_split, start=4 * (t % 4))
        with torch.no_grad():
            start = scoring.loss(model, batch).item()
        out = zo.step(batch, t)
        with torch.no_grad():
            end = scoring.loss(model, batch).item()
        assert out["cons_losses"]["none"] == pytest.approx(start, rel=1e-12)
        assert end <= start + 1e-12, (t, out["cons_choice"], start, end)
        assert end == pytest.approx(out["cons_losses"][out["cons_choice"]], rel=1e-12)
        assert out["forward_passes"] == 5
        choices.append(out["cons_choice"])
    assert set(choices) - {"minus"}, choices  # the guard did something in these steps


def test_zo_sgd_sign_moves_every_weight_by_lr(tiny, small_split):
    model, tok = tiny
    before = _params(model)
    zo = _engine("zo_sgd_sign", model, lr=1e-3)
    out = zo.step(_batch(tok, small_split), 0)
    sign = math.copysign(1.0, out["projected_grad"])
    for i, (name, p) in enumerate(trainable_parameters(model)):
        expected = before[name] - 1e-3 * sign * zo.noise.noise(out["zo_seed"], i).sign()
        torch.testing.assert_close(p.detach(), expected, atol=1e-6, rtol=0)
    assert zo.extra_metrics()["zo_optimizer_state_bytes"] == 0


def test_zo_sgd_sign_projected_is_mezo_with_the_gradients_sign(tiny, small_split):
    """ZO-Bench's code reading: θ_1 = θ_0 - lr·sign(g)·z, and its replay is bit-exact at q = 2."""
    model, tok = tiny
    before, base = _params(model), copy.deepcopy(model)
    zo = _engine("zo_sgd_sign", model, lr=1e-3, sign="projected")
    out = zo.step(_batch(tok, small_split), 0)
    sign = math.copysign(1.0, out["projected_grad"])
    for i, (name, p) in enumerate(trainable_parameters(model)):
        expected = before[name] - 1e-3 * sign * zo.noise.noise(out["zo_seed"], i)
        torch.testing.assert_close(p.detach(), expected, atol=1e-6, rtol=0)
    assert "sign(g)" in zo.trajectory_header()["zo"]["update"]
    replayer = _engine("zo_sgd_sign", base, lr=1e-3, sign="projected")
    replayer.replay(out)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), base.parameters(), strict=True))


def test_zo_adam_first_step_is_lr_times_the_estimates_sign_and_holds_two_copies(tiny, small_split):
    """Bias-corrected Adam's first step: m̂ = ĝ, v̂ = ĝ², so θ_1 = θ_0 - lr·ĝ/(|ĝ| + eps)."""
    model, tok = tiny
    before = _params(model)
    zo = _engine("zo_adam", model, lr=1e-3)
    out = zo.step(_batch(tok, small_split), 0)
    for i, (name, p) in enumerate(trainable_parameters(model)):
        ghat = out["projected_grad"] * zo.noise.noise(out["zo_seed"], i)
        expected = before[name] - 1e-3 * ghat / (ghat.abs() + 1e-8)
        torch.testing.assert_close(p.detach(), expected, atol=2e-6, rtol=0)
    n = sum(t.numel() for t in zo.noise.tensors)
    assert zo.extra_metrics()["zo_optimizer_state_bytes"] == 2 * 4 * n  # m and v: its memory cost


def test_fo_sgd_step_is_minus_lr_times_the_gradient(model_refs, small_split):
    model, tok = _float64(model_refs)
    batch = _batch(tok, small_split)
    grads = torch.autograd.grad(scoring.loss(model, batch), list(model.parameters()))
    before = [p.detach().clone() for p in model.parameters()]
    m = get_method("fo_sgd")
    trainer = m.build(model, m.Params(lr=1e-2, batch_size=4, epochs=1), 0)
    trainer.step(batch, 0)
    for p, b, g in zip(model.parameters(), before, grads, strict=True):
        torch.testing.assert_close(p.detach(), b - 1e-2 * g, atol=1e-12, rtol=0)
    assert trainer.extra_metrics()["fo_optimizer_state_bytes"] == 0  # plain SGD keeps no state


@pytest.mark.parametrize("method", ["mezo", "zo_adam", "zo_sgd_cons", "forward_grad", "sparse_zo_int4"])
def test_a_query_budget_below_one_is_refused_naming_the_key(method):
    with pytest.raises(ValueError, match=rf"{method}\.queries must be >= 1, got 0"):
        resolve_params(method, {"queries": 0})


def test_the_accuracy_objective_is_minus_the_evaluators_accuracy(tiny, small_split):
    from tests.conftest import DATA
    from zoharness.data import load_split

    model, tok = tiny
    task = get_task("sst2")
    examples = load_split(small_split, DATA).train[:8]
    encoded = [scoring.encode(tok, task.prompt(e), 128) for e in examples]
    with torch.no_grad():
        value = scoring.negative_accuracy(model, scoring.collate(encoded, tok.pad_token_id))
    assert value.item() == -scoring.evaluate(model, encoded, tok.pad_token_id, batch_size=3)["accuracy"]


def test_zo_on_the_accuracy_objective_steps_and_replays(tiny, small_split):
    """MeZO Table 3: L is minus the batch accuracy, so L± are multiples of 1/batch and g is 0 unless a
    prediction flips between θ+εz and θ-εz."""
    model, tok = tiny
    base = copy.deepcopy(model)
    zo = _engine("mezo", model, objective="accuracy", eps=0.5, lr=0.1)
    records = [zo.step(_batch(tok, small_split, start=4 * t), t) for t in range(4)]
    for r in records:
        for side in ("loss_plus", "loss_minus"):
            assert -1 <= r[side] <= 0 and (4 * r[side]).is_integer()
        assert r["projected_grad"] == (r["loss_plus"] - r["loss_minus"]) / 1.0
    assert zo.trajectory_header()["zo"]["objective"].startswith("accuracy")
    replayer = _engine("mezo", base, objective="accuracy", eps=0.5, lr=0.1)
    for r in records:
        replayer.replay(r)
    for (n, a), (_, b) in zip(model.named_parameters(), base.named_parameters(), strict=True):
        assert torch.equal(a, b), n


F1_MAX_LENGTH = 96  # the tests' eval.max_length (tests/helpers.py): 46 context tokens + 50 new ones


def _squad_prompts(n=12):
    from tests.conftest import DATA
    from zoharness.data import load_split, make_split

    task = get_task("squad")
    split = make_split("squad", DATA, seed=0, num_train=n, num_dev=4, num_test=4)
    return [task.prompt(e) for e in load_split(split, DATA).train[:n]]


def _f1_batch(tok, prompts, batch_size=3):
    """A teacher-forcing batch with what the f1 objective decodes attached, as the training loop does it."""
    encoded = [scoring.encode(tok, p, F1_MAX_LENGTH, objective="lm") for p in prompts]
    batch = scoring.collate(encoded, tok.pad_token_id)
    batch.answer_targets = scoring.answer_targets(tok, prompts, F1_MAX_LENGTH, batch_size)
    return batch


def _with_answers(prompts, answers):
    return [dataclasses.replace(p, answers=tuple(a)) for p, a in zip(prompts, answers, strict=True)]


def test_the_f1_objective_is_minus_the_evaluators_mean_f1(model_refs):
    """MeZO Table 3's SQuAD objective: minus the mean F1 that evaluate_generation reports for the same examples
    and weights. A random tiny model answers junk (F1 0 against SQuAD's answers), so the gold answers are built
    from the evaluator's own greedy answers: exact for a third of the examples (F1 1), with two words added for
    a third (F1 1/2 for a one-word answer), SQuAD's own for the rest (F1 0); the objective's own decode must
    reproduce every one of them."""
    from zoharness import models
    from zoharness.answer_metrics import f1_score

    model, tok = models.load(model_refs["opt"])
    prompts = _squad_prompts()
    said = generation.evaluate_generation(model, tok, prompts, F1_MAX_LENGTH, 3)["predictions"]
    golds = [
        [(a,), (a + " x y",), p.answers][i % 3] for i, (a, p) in enumerate(zip(said, prompts, strict=True))
    ]
    prompts = _with_answers(prompts, golds)
    result = generation.evaluate_generation(model, tok, prompts, F1_MAX_LENGTH, 3)
    f1s = [f1_score(a, p.answers) for a, p in zip(result["predictions"], prompts, strict=True)]
    assert 0 < result["f1"] < 1 and len(set(f1s)) == 3, f1s  # the comparison below means something
    with torch.no_grad():
        assert scoring.negative_f1(model, _f1_batch(tok, prompts)).item() == -result["f1"]
        for p in prompts[:3]:  # example by example, too
            alone = generation.evaluate_generation(model, tok, [p], F1_MAX_LENGTH, 3)["f1"]
            assert scoring.negative_f1(model, _f1_batch(tok, [p])).item() == -alone
        bare = scoring.collate(
            [scoring.encode(tok, p, F1_MAX_LENGTH, objective="lm") for p in prompts], tok.pad_token_id
        )
        with pytest.raises(ValueError, match=r"Batch\.answer_targets"):
            scoring.negative_f1(model, bare)  # without the contexts and answers it refuses, naming them


def test_zo_on_the_f1_objective_steps_and_replays(model_refs):
    """Three MeZO steps on minus F1, each batch's gold answers the greedy answers at θ_t + εz_t (decoded on a
    copy of the model perturbed with the step's seed): so L+ is exactly -1, and L- is above it where the answers
    at θ_t - εz_t differ, which makes the projected gradients non-zero. Replaying the log rebuilds the weights."""
    from zoharness import models

    model, tok = models.load(model_refs["opt"])
    base, untouched = copy.deepcopy(model), copy.deepcopy(model)
    settings = {"objective": "f1", "eps": 1e-2, "lr": 1e-3}
    zo = _engine("mezo", model, **settings)
    prompts, records = _squad_prompts(), []
    for t in range(3):
        plus = copy.deepcopy(model)
        _engine("mezo", plus, **settings).noise.axpy(step_seed(11, t), 1e-2)
        batch_prompts = prompts[4 * t : 4 * t + 4]
        said = generation.evaluate_generation(plus, tok, batch_prompts, F1_MAX_LENGTH, 3)["predictions"]
        records.append(zo.step(_f1_batch(tok, _with_answers(batch_prompts, [(a,) for a in said])), t))
    for r in records:
        assert r["loss_plus"] == -1.0 and -1.0 <= r["loss_minus"] <= 0.0 and r["forward_passes"] == 2
        assert math.isfinite(r["projected_grad"])
        assert r["projected_grad"] == (r["loss_plus"] - r["loss_minus"]) / 2e-2
    assert any(r["projected_grad"] != 0 for r in records), "no step moved: the replay would prove little"
    assert zo.trajectory_header()["zo"]["objective"] == "f1: zoharness.scoring.negative_f1"
    replayer = _engine("mezo", base, **settings)
    for r in records:
        replayer.replay(r)
    for (n, a), (_, b) in zip(model.named_parameters(), base.named_parameters(), strict=True):
        assert torch.equal(a, b), n
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), untouched.parameters(), strict=True))


def test_an_f1_run_through_the_training_loop_replays_and_resumes_bit_for_bit(
    model_refs, tmp_path, monkeypatch
):
    """A 3-step MeZO run with objective f1 on SQuAD through `train`: the loop attaches each batch's decoding
    contexts and answers (the objective refuses a batch without them), the values are finite, `zoharness
    replay`'s replay_run rebuilds the trained weights bit for bit, and a run killed after step 2 and resumed
    has the uninterrupted run's log and scores. (The tiny model's junk answers score F1 0 against SQuAD's, so
    these projected gradients are 0 and the steps move the weights only by the perturbations' rounding, which
    the replay must repeat exactly; the test above covers non-zero ones.)"""
    from tests.helpers import make_run
    from zoharness import models
    from zoharness.replay import replay_run
    from zoharness.train import read_train_log, train
    from zoharness.trainlog import without_timings

    params = {"lr": 1e-3, "eps": 1e-3, "steps": 3, "batch_size": 4, "objective": "f1"}
    loaded, real_load = [], models.load

    def capture(*args, **kw):
        loaded.append(real_load(*args, **kw))
        return loaded[-1]

    monkeypatch.setattr(models, "load", capture)
    run_dir, split = make_run(tmp_path / "full", "mezo", params, task="squad")
    full = train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1)
    monkeypatch.undo()
    header, records = read_train_log(run_dir / "train_log.jsonl")
    assert header["params"]["objective"] == "f1" and header["zo"]["objective"].startswith("f1: ")
    assert len(records) == 3 and full["task_kind"] == "generation" and full["forward_passes"] == 6
    for r in records:
        assert -1.0 <= r["loss_minus"] <= 0.0 and -1.0 <= r["loss_plus"] <= 0.0
        assert math.isfinite(r["projected_grad"]) and math.isfinite(r["loss"])
    assert math.isfinite(full["test_score"]) and math.isfinite(full["dev_score"])
    trained = loaded[0][0].state_dict()  # the model object train stepped
    replayed = replay_run(run_dir, model_refs["llama"]).state_dict()
    assert replayed.keys() == trained.keys()
    assert all(torch.equal(replayed[n], trained[n]) for n in trained)
    base = real_load(model_refs["llama"])[0].state_dict()
    assert any(not torch.equal(trained[n], base[n]) for n in base)  # ε's round trip is not exact in floats

    killed_dir, killed_split = make_run(tmp_path / "killed", "mezo", params, task="squad")
    args = (killed_dir / "run_config.json", killed_split, model_refs["llama"], killed_dir)
    assert train(*args, threads=1, stop_after=2) is None
    resumed = train(*args, threads=1)
    for key in ("dev_score", "test_score", "final_train_loss", "forward_passes", "steps"):
        assert resumed[key] == full[key], key
    assert resumed["resumed_at_step"] == 2
    strip = lambda rs: [without_timings(r) for r in rs]  # noqa: E731
    assert strip(read_train_log(killed_dir / "train_log.jsonl")[1]) == strip(records)


def test_an_objective_a_task_kind_lacks_is_refused_at_parse_time():
    from zoharness.config import ConfigError, validate
    from zoharness.methods import mezo

    assert tuple(scoring.TRAIN_OBJECTIVES) == mezo.OBJECTIVES  # the method's list names scoring's functions
    suite = {
        "suite": "x",
        "models": ["tiny-llama"],
        "seeds": [0],
        "tasks": ["sst2", "squad"],
        "variants": {"zo-acc": {"method": "zo_adam", "params": {"objective": "accuracy"}}},
    }
    with pytest.raises(
        ConfigError,
        match=r"variants\.zo-acc\.params\.objective: 'accuracy' is defined for classification tasks only; task\(s\) \['squad'\]",
    ):
        validate(suite, "suite.yaml")
    with pytest.raises(ValueError, match=r"forward_grad\.objective must be 'loss', got 'accuracy'"):
        resolve_params("forward_grad", {"objective": "accuracy"})


@pytest.mark.parametrize("method", ["mezo", "mezo_prefix", "zo_adam"])
def test_the_f1_objective_is_for_generation_tasks_only(method):
    """f1 decodes answers: a suite setting it on a classification or multiple-choice task is refused at parse
    time, naming the key, the value and the tasks; on generation tasks it is accepted; forward_grad refuses it."""
    from zoharness.config import ConfigError, validate
    from zoharness.methods import mezo

    assert mezo.OBJECTIVE_KINDS["f1"] == ("generation",)
    assert mezo.OBJECTIVE_KINDS["accuracy"] == ("classification",)

    def suite(tasks):
        return {
            "suite": "x",
            "models": ["tiny-llama"],
            "seeds": [0],
            "tasks": tasks,
            "variants": {"zo-f1": {"method": method, "params": {"objective": "f1"}}},
        }

    with pytest.raises(
        ConfigError,
        match=r"variants\.zo-f1\.params\.objective: 'f1' is defined for generation tasks only; "
        r"task\(s\) \['sst2', 'copa'\] are not",
    ):
        validate(suite(["sst2", "squad", "copa"]), "suite.yaml")
    cfg = validate(suite(["squad"]), "suite.yaml")
    assert cfg["variants"]["zo-f1"]["params"]["objective"] == "f1"
    with pytest.raises(ValueError, match=r"forward_grad\.objective must be 'loss', got 'f1'"):
        resolve_params("forward_grad", {"objective": "f1"})


def test_new_zo_params_stay_out_of_recorded_configs_at_their_defaults():
    """queries and objective came after runs were recorded: at their defaults they are not in the
    resolved params (so those runs' run_config.json and Snakemake's params hash stay the same)."""
    plain = resolve_params("mezo", {})
    assert "queries" not in plain and "objective" not in plain
    assert get_method("mezo").Params(**plain).queries == 1
    assert resolve_params("mezo", {"queries": 2})["queries"] == 2
    assert resolve_params("zo_adam", {"objective": "accuracy"})["objective"] == "accuracy"
