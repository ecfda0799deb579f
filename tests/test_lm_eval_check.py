"""lm-eval scores the harness's own prompts over the same examples: same per-candidate log-likelihood
differences and the same accuracy as the harness (tiny model; bench/lm_eval_crosscheck.py runs the
real one)."""

import json

import pytest
import torch

from tests.conftest import DATA
from zoharness import lm_eval_check, models, scoring
from zoharness.data import load_split, make_split
from zoharness.tasks import get_task


@pytest.fixture()
def hf_home(tmp_path, monkeypatch):
    # lm-eval caches the json dataset under HF_HOME: keep it inside the test's folder.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    return tmp_path


def _harness_sums(model, tok, prompts):
    """Per-candidate summed log-likelihood, the harness's token log-probs (no fast path)."""
    out = []
    for p in prompts:
        enc = scoring.encode(tok, p, 4096, single_token_fast_path=False)
        batch = scoring.collate([enc], tok.pad_token_id)
        with torch.no_grad():
            lp = scoring.token_logprobs(model, batch)
        sums = torch.zeros(enc.n_candidates, dtype=lp.dtype).index_add_(0, batch.entry_slot, lp)
        out.append(sums.tolist())
    return out


@pytest.mark.parametrize("task_name", ["rte", "cb"])
def test_lm_eval_agrees_with_the_harness_on_the_same_prompts(task_name, hf_home, model_refs):
    ref = json.loads(model_refs["llama"].read_text())
    model_dir = model_refs["llama"].parent / ref["weights_dir"]
    model, tok = models.load(model_refs["llama"])
    task = get_task(task_name)
    split = load_split(make_split(task_name, DATA, seed=0, num_train=4, num_dev=2, num_test=1000), DATA)
    # The tiny model's context is 512 byte-tokens; keep prompts that fit so neither side truncates.
    examples = [ex for ex in split.test if len(task.prompt(ex).context.encode()) < 400][:12]
    prompts = [task.prompt(ex) for ex in examples]
    name = lm_eval_check.write_task(task_name, prompts, [ex.uid for ex in examples], hf_home / "tasks")
    got = lm_eval_check.evaluate(model_dir, hf_home / "tasks", [name], batch_size=4)[name]
    assert got["ids"] == [ex.uid for ex in examples] and got["n"] == 12

    ours = _harness_sums(model, tok, prompts)
    for theirs, mine in zip(got["loglikelihoods"], ours, strict=True):
        # lm-eval moves the prompt's trailing newline into every continuation: a shared constant.
        assert [t - theirs[0] for t in theirs] == pytest.approx([m - mine[0] for m in mine], abs=1e-4)
    ours_acc = sum(
        int(max(range(len(s)), key=s.__getitem__) == p.label) for s, p in zip(ours, prompts, strict=True)
    )
    assert got["acc"] == pytest.approx(ours_acc / len(prompts))
