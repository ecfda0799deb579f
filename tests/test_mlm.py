"""Masked LMs (MeZO's RoBERTa half): prompt-based scoring at the mask token, label words as single tokens, the
suite checks a masked LM gets, and FO and MeZO training through the shared objective on every RoBERTa task."""

import json

import pytest
import torch

from tests.conftest import DATA
from zoharness import models, scoring
from zoharness.config import ConfigError, run_spec, validate
from zoharness.data import make_split
from zoharness.io import read_json, sha256_file, write_json_atomic
from zoharness.tasks import get_task, task_ids
from zoharness.tasks.base import MaskedPrompt, Prompt, masked_prompt
from zoharness.train import train

TREC_WORDS = (" Description", " Entity", " Expression", " Human", " Location", " Number")
MASKED_TASKS = [t for t in task_ids() if get_task(t).masked_lm]
# Test fixtures in the HF snli / glue-mnli schema (the snapshot has neither): label 0 entailment, 1 neutral,
# 2 contradiction.
NLI_ROWS = [
    {"premise": f"A man number {i} is playing a guitar on stage.", "hypothesis": h, "label": i % 3}
    for i, h in enumerate(["A man plays music.", "The man is famous.", "A woman sleeps."] * 6)
]


@pytest.fixture(scope="module")
def mlm(model_refs):
    return models.load(model_refs["roberta"])


@pytest.fixture(scope="module")
def online_nli(tmp_path_factory):
    """SNLI and MNLI laid out as fetch_data writes them (Task.file(which, "online"))."""
    root = tmp_path_factory.mktemp("hf-nli")
    for name in ("snli", "mnli"):
        task = get_task(name)
        rows = [json.dumps(task.normalise_hf(r, i)) + "\n" for i, r in enumerate(NLI_ROWS)]
        for which, part in (("train", rows[:12]), ("test", rows[12:])):
            path = root / task.file(which, "online")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(part))
    return root


def _record(task_name, online_nli):
    from zoharness.data import read_examples

    task = get_task(task_name)
    if task.offline.pools is None:
        return read_examples(task, online_nli, "train", "online")[0].record
    return read_examples(task, DATA, "train")[0].record


def test_the_tiny_masked_lm_has_every_registered_label_word_as_one_token(mlm, online_nli):
    _, tok = mlm
    assert models.tokenizer_kind(tok) == models.MLM and tok.mask_token_id is not None
    for name in MASKED_TASKS:
        prompt = get_task(name).render(_record(name, online_nli))
        assert len(prompt.masked.words) == len(prompt.candidates)
        for word in prompt.masked.words:
            assert word in models.TINY_MLM_WORDS, f"task {name}: add {word!r} to models.TINY_MLM_WORDS"
            assert len(tok(word, add_special_tokens=False).input_ids) == 1


def test_masked_scores_equal_the_mlm_heads_log_probabilities_at_the_mask(mlm):
    """Hand computation: one example at a time, the full model's logits at the mask position, log-softmax,
    the label words' entries; the batched, right-padded scoring must agree."""
    model, tok = mlm
    task = get_task("sst5")
    from zoharness.data import read_examples

    examples = read_examples(task, DATA, "test")[:3]
    encoded = [scoring.encode(tok, task.prompt(ex), 128) for ex in examples]
    assert len({e.length for e in encoded}) > 1  # different lengths: the batch is padded
    batch = scoring.collate(encoded, tok.pad_token_id)
    with torch.no_grad():
        scores = scoring.candidate_scores(model, batch)
        for e, row in zip(encoded, scores, strict=True):
            seq = torch.tensor([e.sequences[0]])
            at = e.sequences[0].index(tok.mask_token_id)
            assert seq[0, 0] == tok.cls_token_id and seq[0, -1] == tok.sep_token_id
            assert all(pos == at for _, pos, _, _ in e.entries)
            logp = torch.log_softmax(model(input_ids=seq).logits[0, at], dim=-1)
            words = [tok(w, add_special_tokens=False).input_ids[0] for w in examples_words(task, e)]
            torch.testing.assert_close(row, logp[words], rtol=1e-5, atol=1e-5)
    assert scoring.packing_mode(model) is None  # bidirectional attention: never packed


def examples_words(task, encoded):
    """The label words of the task's masked form, in class order (every SST-5 prompt has the same five)."""
    assert encoded.n_candidates == 5
    return (" terrible", " bad", " okay", " good", " great")


def test_the_masked_form_is_cls_before_mask_after_sep_with_lmbffs_pieces(mlm):
    _, tok = mlm
    prompt = get_task("trec").render({"question": "Who wrote it ?", "label": 3, "idx": 0})
    assert prompt.masked == MaskedPrompt("", ": Who wrote it ?", TREC_WORDS)
    enc = scoring.encode(tok, prompt, 64)
    text = tok.decode(enc.sequences[0][1:-1])
    assert text == "<mask>: Who wrote it ?" and enc.label == 3 and enc.n_candidates == 6
    nli = get_task("snli").render(
        {"premise": "A dog runs.", "hypothesis": "An animal moves.", "label": "neutral"}
    )
    assert (nli.masked.before, nli.masked.after) == ("A dog runs?", ", an animal moves.")
    assert nli.label == 1 and nli.masked.words[1] == " Maybe"
    # too long: the start of the text before the mask goes first
    long = scoring.encode(
        tok, get_task("sst5").render({"sentence": " ".join(["x"] * 300), "label": 0, "idx": 0}), 64
    )
    assert len(long.sequences[0]) == 64 and tok.decode(long.sequences[0][1:-1]).endswith("x It was<mask>.")


def test_a_label_word_of_several_tokens_is_refused_naming_it(mlm):
    _, tok = mlm
    prompt = Prompt("x", (" a", " b"), 0, masked=MaskedPrompt("x", ".", (" great", " superb")))
    with pytest.raises(
        ValueError, match=r"label word ' superb' is \d+ tokens .* one token of the vocabulary"
    ):
        scoring.encode(tok, prompt, 64)


def test_a_template_needs_exactly_one_mask_slot_naming_the_task():
    with pytest.raises(ValueError, match=r"task mytask: masked-LM template .* has 0 \[MASK\] slot"):
        masked_prompt("mytask", "{sentence} It was.", (" a",), sentence="s")
    with pytest.raises(ValueError, match=r"task mytask: .* has 2 \[MASK\] slot"):
        masked_prompt("mytask", "[MASK] {sentence} [MASK]", (" a",), sentence="s")
    # a mask-like string in the data is text, not a slot
    assert masked_prompt("t", "{s} It was[MASK].", (" a",), s="[MASK]").before == "[MASK] It was"


def _mlm_suite(**over):
    raw = {
        "suite": "t",
        "models": ["tiny-roberta"],
        "tasks": ["sst5"],
        "variants": {"mezo": {}},
        "seeds": [13],
        "data": {"dir": str(DATA), "k_shot": {"k": 2}, "num_test": 8},
        "eval": {"batch_size": 8, "max_length": 96},
        "device": "cpu",
        "threads": 1,
    }
    raw.update(over)
    return validate(raw)


def test_a_masked_lm_suite_refuses_generation_tasks_and_causal_only_methods_at_parse_time():
    with pytest.raises(ConfigError, match=r"task squad \(generation\) has no masked-LM prompt template"):
        _mlm_suite(tasks=["sst5", "squad"])
    with pytest.raises(ConfigError, match=r"task copa .* no masked-LM prompt template"):
        _mlm_suite(tasks=["copa"])
    with pytest.raises(
        ConfigError, match=r"variants.icl: method icl runs on causal LMs only \(its demonstrations"
    ):
        _mlm_suite(variants={"icl": {}})
    with pytest.raises(
        ConfigError, match=r"variants.sparse_zo_int4: method sparse_zo_int4 runs on causal LMs"
    ):
        _mlm_suite(variants={"sparse_zo_int4": {}})
    assert models.model_kind("hf-mlm:FacebookAI/roberta-large@main") == models.MLM
    assert models.model_kind("hf:facebook/opt-13b@main") == models.CAUSAL


def test_several_k_make_one_task_instance_per_k_in_k_major_order():
    cfg = _mlm_suite(tasks=["sst5", "trec"], data={"dir": str(DATA), "k_shot": {"k": [16, 512]}})
    assert cfg["tasks"] == ["sst5@k16", "trec@k16", "sst5@k512", "trec@k512"]
    assert get_task("trec@k512").label == "TREC (k=512)" and get_task("trec@k512").name == "trec"
    with pytest.raises(ConfigError, match=r"list plain task ids"):
        _mlm_suite(tasks=["sst5@k16"])


@pytest.mark.parametrize("task", ["sst5", "trec", "snli", "mnli"])
@pytest.mark.parametrize("method", ["fo", "mezo"])
def test_fo_and_mezo_train_3_steps_on_every_roberta_task_with_the_tiny_masked_lm(
    tmp_path, model_refs, online_nli, task, method
):
    """MeZO's RoBERTa tasks the harness added, k-shot split, 3 steps through the shared objective; the loss is
    finite and the run is scored on dev and test."""
    source = "online" if get_task(task).offline.pools is None else "offline"
    data = {
        "source": source,
        "dir": str(DATA),
        "online_dir": str(online_nli),
        "k_shot": {"k": 2},
        "num_test": 6,
    }
    params = {
        "lr": 1e-3,
        "batch_size": 2,
        **({"steps": 3, "eps": 1e-3} if method == "mezo" else {"steps": 3}),
    }
    cfg = _mlm_suite(tasks=[task], variants={method: {"params": params}}, data=data)
    d = cfg["data"]
    manifest = make_split(
        task, online_nli if source == "online" else DATA, 13, 0, None, 6, source, k_shot=d["k_shot"]
    )
    split_path = tmp_path / "split.json"
    write_json_atomic(split_path, manifest)
    spec = run_spec(cfg, "tiny-roberta", task, method, 13)
    spec["split_sha256"] = sha256_file(split_path)
    write_json_atomic(tmp_path / "run" / "run_config.json", spec)
    metrics = train(
        tmp_path / "run" / "run_config.json", split_path, model_refs["roberta"], tmp_path / "run", threads=1
    )
    assert metrics["steps"] == 3 and metrics["n_train"] == 2 * len(
        get_task(task).render(manifest_record(manifest, d, task)).candidates
    )
    assert 0 <= metrics["test_score"] <= 1 and metrics["n_test"] == 6
    losses = [
        r["loss"]
        for r in map(json.loads, (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()[1:])
    ]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(x)) for x in losses)
    assert read_json(tmp_path / "run" / "metrics.json")["batch_layout"] == "padded"


def manifest_record(manifest, data, task):
    from zoharness.data import load_split

    root = data["online_dir"] if manifest["source"] == "online" else data["dir"]
    return load_split(manifest, root).train[0].record


def test_a_prefix_enters_a_masked_lms_attention_and_keeps_it_bidirectional(model_refs):
    """MeZO (prefix) on RoBERTa (Table 18): the prefix changes the output, a missing mask stays 'no masking'
    (no causal mask is imposed on a bidirectional model), and a later token still moves an earlier position."""
    from zoharness import prefix

    model, _ = models.load(model_refs["roberta"])
    ids = torch.tensor([[0, 50, 60, 70, 80, 2]])
    later = ids.clone()
    later[0, 4] = 90
    with torch.no_grad():
        base = model(input_ids=ids).logits
        prefix.inject_prefix(model, 3, 13)
        out = model(input_ids=ids).logits
        masked = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        moved = model(input_ids=later).logits
    assert (out - base).abs().max() > 1e-4
    torch.testing.assert_close(out, masked, rtol=0, atol=0)
    assert (out[0, 1] - moved[0, 1]).abs().max() > 1e-5


def test_every_masked_task_label_word_is_one_token_of_robertas_vocabulary(online_nli):
    """RoBERTa's vocabulary is GPT-2's BPE (tests/fixtures/README.md): each Table 13 label word, with LM-BFF's
    leading space, must be one entry of it, or RoBERTa would refuse the task at its first encode."""
    import base64
    import lzma

    from tests.conftest import ROOT

    with lzma.open(ROOT / "tests" / "fixtures" / "gpt2.tiktoken.xz", "rt") as f:
        vocab = {base64.b64decode(line.split()[0]) for line in f}
    assert len(vocab) == 50256
    for name in MASKED_TASKS:
        for word in get_task(name).render(_record(name, online_nli)).masked.words:
            assert word.encode() in vocab, f"task {name}: label word {word!r} is not one RoBERTa token"
