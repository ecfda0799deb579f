"""LP (methods/lp.py): the probe's decisions are the harness's, only the untied head changes, head tuning
trains the head alone, and bad parameters name themselves."""

import re

import numpy as np
import pytest
import torch

from zoharness import models, scoring
from zoharness.methods import get_method
from zoharness.tasks import get_task
from zoharness.tasks.base import Prompt

lp = get_method("lp")
HEAD = "lm_head.weight"


@pytest.fixture()
def train(small_split):
    from tests.conftest import DATA
    from zoharness.data import load_split

    return load_split(small_split, DATA).train


def _label_word_prompts(examples, words):
    """SST-2 sentences with single-byte label words (one token each under the tiny byte-level tokenizer),
    so the harness scores each example at its last prompt position (the single-token path)."""
    task = get_task("sst2")
    out = []
    for i, ex in enumerate(examples):
        p = task.prompt(ex)
        label = p.label if len(words) == 2 else (len(p.context) + i) % len(words)
        out.append(Prompt(context=p.context, candidates=words, label=label))
    return out


def _batches(tok, prompts, size, objective="classification", pack=False):
    enc = [scoring.encode(tok, p, 96, objective=objective) for p in prompts]
    return [scoring.collate(enc[i : i + size], tok.pad_token_id, pack=pack) for i in range(0, len(enc), size)]


def _last_prompt_features(model, batch) -> np.ndarray:
    """Computed here, not by lp: the final norm's output at each padded row's last real token."""
    with torch.no_grad():
        hidden = model.base_model(input_ids=batch.input_ids, attention_mask=batch.attention_mask)
    last = batch.attention_mask.sum(dim=1) - 1
    return hidden.last_hidden_state[torch.arange(len(last)), last].double().numpy()


def _cloned_state(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("arch", ["llama", "opt"])
@pytest.mark.parametrize("words", [("n", "p"), ("a", "b", "c")], ids=["binary", "three-way"])
def test_the_models_candidate_predictions_are_the_probes(arch, words, model_refs, train):
    model, tok = models.load(model_refs[arch])
    prompts = _label_word_prompts(train, words)
    impl = lp.build(model, lp.Params(batch_size=8), 0)
    pack = scoring.packing_mode(model)  # trained on the loop's (packed) batches
    records = [impl.step(b, i) for i, b in enumerate(_batches(tok, prompts, 8, pack=pack))]
    assert impl.mode == "probe" and impl.probe is not None and records[-1]["probe_refit"]
    assert len(impl.y) == len(prompts)

    (whole,) = _batches(tok, prompts, len(prompts))  # padded: one row per example
    features = _last_prompt_features(model, whole)
    np.testing.assert_allclose(np.stack(impl.X), features, rtol=1e-5, atol=1e-5)
    expected = impl.probe.predict(features)
    assert len(set(expected.tolist())) > 1, "a constant probe would prove little"
    with torch.no_grad():
        scored = scoring.candidate_scores(model, whole).argmax(dim=-1).numpy()
    np.testing.assert_array_equal(scored, expected)
    # The harness's own evaluation (length-sorted, packed where the model allows) agrees too.
    enc = [scoring.encode(tok, p, 96) for p in prompts]
    assert scoring.evaluate(model, enc, tok.pad_token_id, 5)["predictions"] == expected.tolist()
    assert impl.extra_metrics()["lp_probe_train_accuracy"] == pytest.approx(
        float(np.mean(expected == np.array(impl.y)))
    )


def test_only_the_label_rows_of_an_untied_head_change(tiny, train, tmp_path):
    model, tok = tiny
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # tied: SmolLM2-like
    before = _cloned_state(model)
    impl = lp.build(model, lp.Params(batch_size=8), 0)
    for i, b in enumerate(_batches(tok, _label_word_prompts(train, ("n", "p")), 8)):
        impl.step(b, i)
    after = model.state_dict()
    assert after.keys() == before.keys()
    embed = "model.embed_tokens.weight"
    assert after[embed].numpy().tobytes() == before[embed].numpy().tobytes()
    for key in before.keys() - {HEAD}:
        assert torch.equal(after[key], before[key]), key
    label_rows = [tok.convert_tokens_to_ids(w) for w in ("n", "p")]
    changed = (after[HEAD] != before[embed]).any(dim=1).nonzero().flatten().tolist()
    assert changed == sorted(label_rows)

    # Saved and loaded back the way the harness loads weights: the probed head, untied, survives.
    from transformers import AutoModelForCausalLM

    impl.save(tmp_path / "weights")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "weights")
    assert loaded.get_output_embeddings().weight is not loaded.get_input_embeddings().weight
    assert torch.equal(loaded.get_output_embeddings().weight, after[HEAD])
    assert torch.equal(loaded.get_input_embeddings().weight, before[embed])


def test_sst2_on_a_byte_tokenizer_probes_the_first_differing_token(tiny, train):
    """' terrible' / ' great' share the byte ' ': the probe sits one position later, on 't' / 'g'."""
    model, tok = tiny
    impl = lp.build(model, lp.Params(), 0)
    task = get_task("sst2")
    for i, b in enumerate(_batches(tok, [task.prompt(e) for e in train], 8)):
        impl.step(b, i)
    assert impl.at == 1
    assert [w[impl.at] for w in impl.words] == tok.convert_tokens_to_ids(["t", "g"])


def test_a_repeated_epoch_adds_no_rows_and_keeps_the_probe(tiny, train):
    model, tok = tiny
    impl = lp.build(model, lp.Params(batch_size=8), 0)
    batches = _batches(tok, _label_word_prompts(train, ("n", "p")), 8)
    for i, b in enumerate(batches):
        impl.step(b, i)
    head = model.get_output_embeddings().weight.detach().clone()
    again = [impl.step(b, len(batches) + i) for i, b in enumerate(batches)]
    assert all(not r["probe_refit"] for r in again) and len(impl.y) == len(train)
    assert torch.equal(model.get_output_embeddings().weight, head)


def test_head_tuning_trains_only_the_head_and_lowers_the_loss(tiny, train):
    model, tok = tiny
    before = _cloned_state(model)
    impl = lp.build(model, lp.Params(lr=1e-2), 0)  # auto: an lm-objective batch means head tuning
    task = get_task("sst2")
    (batch,) = _batches(tok, [task.prompt(e) for e in train[:8]], 8, objective="lm")
    losses = [impl.step(batch, i)["loss"] for i in range(5)]
    assert impl.mode == "head"
    assert losses[-1] < losses[0] and all(b < a for a, b in zip(losses, losses[1:], strict=False))
    after = model.state_dict()
    for key in before.keys() - {HEAD}:
        assert torch.equal(after[key], before[key]), key
    assert not torch.equal(after[HEAD], before[HEAD])


def test_num_steps_follows_the_mode():
    assert lp.num_steps(lp.Params(mode="probe", batch_size=8), 20) == 3
    assert lp.num_steps(lp.Params(mode="head", batch_size=8, epochs=5), 20) == 15
    assert lp.num_steps(lp.Params(batch_size=8, epochs=5), 20) == 15  # auto, kind unknown: head tuning's
    assert lp.num_steps(lp.Params(batch_size=8, epochs=5), 20, "classification") == 3  # auto: the probe's
    assert lp.num_steps(lp.Params(batch_size=8, epochs=5), 20, "generation") == 15


def test_probe_mode_refuses_an_lm_batch(tiny, train):
    model, tok = tiny
    impl = lp.build(model, lp.Params(mode="probe"), 0)
    (batch,) = _batches(tok, [get_task("sst2").prompt(e) for e in train[:4]], 4, objective="lm")
    with pytest.raises(ValueError, match="lp.mode='probe' needs a classification task"):
        impl.step(batch, 0)


@pytest.mark.parametrize(
    "words, expected",
    [(((5,), (6,)), 0), (((1, 2), (1, 3, 4)), 1), (((1, 2), (1, 2, 3)), None), (((1, 2), (1, 2)), None)],
)
def test_split_point(words, expected):
    if expected is None:
        with pytest.raises(ValueError, match="use mode 'head'"):
            lp.split_point(words)
    else:
        assert lp.split_point(words) == expected


@pytest.mark.parametrize(
    "key, value",
    [
        ("mode", "linear"),
        ("batch_size", 0),
        ("C", 0.0),
        ("max_iter", 0),
        ("tol", 0.0),
        ("lr", -1.0),
        ("epochs", 0),
        ("weight_decay", -0.1),
    ],
)
def test_bad_params_name_the_key_and_value(key, value):
    with pytest.raises(ValueError, match=re.escape(f"lp.{key} must be")) as err:
        lp.Params(**{key: value})
    assert repr(value) in str(err.value) or str(value) in str(err.value)


def test_a_run_through_the_loop_reports_the_probe_of_its_checkpoint(tmp_path, model_refs, monkeypatch):
    """The training loop, with the selection forced to the first checkpoint: the kept copy of the weights
    (the untied head included) scores on dev what that checkpoint's probe scored in the loop."""
    from tests.helpers import make_run
    from zoharness import train as train_module
    from zoharness.trainlog import read_train_log

    monkeypatch.setattr(train_module, "best_checkpoint", lambda curve: curve[0])
    run_dir, split = make_run(
        tmp_path,
        "lp",
        {"mode": "probe", "batch_size": 4},
        eval={"batch_size": 8, "max_length": 96, "checkpoints": 2, "test_curve": True},
    )
    m = train_module.train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1)
    assert m["steps"] == 4 and m["checkpoint_steps"] == [2, 4]  # one epoch of the 16 examples
    assert m["lp_mode"] == "probe" and m["lp_probe_rows"] == 16
    assert m["best_step"] == 2 and m["dev_score"] == m["dev_curve"][0]["dev_score"] == m["best_dev_rescored"]
    assert m["test_score"] == m["dev_curve"][0]["test_score"]
    _, records = read_train_log(run_dir / "train_log.jsonl")
    assert "probe_train_accuracy" in records[1], (
        "no probe by the first checkpoint: the test would prove little"
    )
