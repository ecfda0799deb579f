"""Candidate scoring, the shared training objectives, and accuracy: one code path for every method.

MeZO's rule: a candidate's score is the mean log-likelihood of its tokens given the context.
Training objectives (MeZO): classification tasks use cross-entropy over the candidates' scores
(`train_as_classification`); multiple-choice and generation tasks use teacher forcing on the gold
continuation's tokens only (`only_train_option`): the mean negative log-likelihood over every gold
token in the batch, as a causal-LM loss with the context labels masked.

Speed, without changing the numbers' meaning:
  * Logits are computed only at the positions that predict candidate tokens (hidden states of the
    base model, gathered, then the LM head): the vocabulary projection over every position is the
    largest single cost of a forward on short prompts.
  * When every candidate of an example is one token, the example is one sequence (the context):
    the logits at its last position score all candidates at once. A causal LM's prediction at that
    position does not depend on what follows, so this equals scoring context+candidate sequences
    (tests/test_scoring.py checks both paths agree).
Sequences are right-padded; positions are therefore the plain 0..n-1 of each sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from zoharness.io import progress
from zoharness.tasks.base import Prompt


@dataclass(frozen=True)
class EncodedExample:
    sequences: tuple[tuple[int, ...], ...]  # one per candidate, or just the context (single-token path)
    # entries: (sequence index, position whose logits predict, target token, candidate index)
    entries: tuple[tuple[int, int, int, int], ...]
    n_candidates: int
    label: int
    correct: tuple[int, ...]  # candidates counted correct at evaluation
    objective: str  # "classification" (CE over candidates) | "lm" (teacher forcing on the gold one)

    @property
    def length(self) -> int:
        return max(len(s) for s in self.sequences)


OBJECTIVES = ("classification", "lm")


def objective_for(kind: str) -> str:
    return "classification" if kind == "classification" else "lm"


def encode(
    tokenizer,
    prompt: Prompt,
    max_length: int,
    single_token_fast_path: bool = True,
    objective: str = "classification",
) -> EncodedExample:
    """Token ids and the (sequence, position, target) entries to score. With objective "lm" only the
    gold candidate is encoded (what teacher forcing needs); evaluation uses "classification"."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective {objective!r} is not one of {OBJECTIVES}")
    context = tokenizer(prompt.context, add_special_tokens=False).input_ids
    texts = prompt.candidates if objective == "classification" else (prompt.candidates[prompt.label],)
    label, correct = (prompt.label, prompt.correct) if objective == "classification" else (0, (0,))
    cands = [tokenizer(c, add_special_tokens=False).input_ids for c in texts]
    if any(len(c) == 0 for c in cands):
        raise ValueError(f"a candidate of prompt {prompt.context[:60]!r} tokenizes to nothing")
    longest = max(len(c) for c in cands)
    # Keep the end of the context (the answer slot) when a prompt is too long: left truncation, as MeZO.
    keep = max_length - longest if longest > 1 else max_length
    if keep < 1:
        raise ValueError(f"max_length={max_length} leaves no room for the context")
    context = context[-keep:]
    if longest == 1 and single_token_fast_path:
        last = len(context) - 1
        entries = tuple((0, last, c[0], j) for j, c in enumerate(cands))
        return EncodedExample((tuple(context),), entries, len(cands), label, correct, objective)
    seqs, entries = [], []
    for j, cand in enumerate(cands):
        seqs.append(tuple(context + cand))
        for t, tok in enumerate(cand):
            entries.append((j, len(context) + t - 1, tok, j))
    return EncodedExample(tuple(seqs), tuple(entries), len(cands), label, correct, objective)


@dataclass
class Batch:
    input_ids: torch.Tensor  # [S, L]
    attention_mask: torch.Tensor  # [S, L]
    flat_positions: torch.Tensor  # [P] unique row*L+pos whose logits are needed
    entry_position: torch.Tensor  # [N] index into flat_positions
    entry_target: torch.Tensor  # [N]
    entry_slot: torch.Tensor  # [N] example*C + candidate
    candidate_mask: torch.Tensor  # [E, C] True where the candidate exists
    labels: torch.Tensor  # [E]
    correct_mask: torch.Tensor  # [E, C] True where a candidate counts as correct
    objective: str
    n_tokens: int  # non-pad tokens, recorded beside timings

    @property
    def n_examples(self) -> int:
        return self.labels.shape[0]

    def to(self, device) -> Batch:
        return Batch(
            **{k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        )


def collate(examples: list[EncodedExample], pad_id: int) -> Batch:
    objectives = {ex.objective for ex in examples}
    if len(objectives) != 1:
        raise ValueError(f"a batch mixes training objectives {sorted(objectives)}")
    n_cand = max(ex.n_candidates for ex in examples)
    seqs: list[tuple[int, ...]] = []
    raw_entries = []
    for e, ex in enumerate(examples):
        base = len(seqs)
        seqs.extend(ex.sequences)
        for s, pos, tgt, cand in ex.entries:
            raw_entries.append((base + s, pos, tgt, e * n_cand + cand))
    width = max(len(s) for s in seqs)
    input_ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        input_ids[i, : len(s)] = torch.tensor(s)
        attention_mask[i, : len(s)] = 1
    flat = torch.tensor([r * width + p for r, p, _, _ in raw_entries])
    uniq, inverse = torch.unique(flat, return_inverse=True)
    candidate_mask = torch.zeros((len(examples), n_cand), dtype=torch.bool)
    correct_mask = torch.zeros((len(examples), n_cand), dtype=torch.bool)
    for e, ex in enumerate(examples):
        candidate_mask[e, : ex.n_candidates] = True
        correct_mask[e, list(ex.correct)] = True
    return Batch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        flat_positions=uniq,
        entry_position=inverse,
        entry_target=torch.tensor([t for _, _, t, _ in raw_entries]),
        entry_slot=torch.tensor([slot for _, _, _, slot in raw_entries]),
        candidate_mask=candidate_mask,
        labels=torch.tensor([ex.label for ex in examples]),
        correct_mask=correct_mask,
        objective=objectives.pop(),
        n_tokens=int(attention_mask.sum()),
    )


def token_logprobs(model, batch: Batch) -> torch.Tensor:
    """[N] log-probability of each entry's target token."""
    hidden = model.base_model(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask
    ).last_hidden_state
    picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch.flat_positions)
    logits = model.get_output_embeddings()(picked)
    # At least float32 (bf16/fp16 logits are upcast); float64 models keep float64.
    logprobs = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)
    return logprobs[batch.entry_position, batch.entry_target]


def candidate_scores(model, batch: Batch) -> torch.Tensor:
    """[E, C] mean log-likelihood of each candidate's tokens; -inf where a candidate is absent."""
    token_lp = token_logprobs(model, batch)
    n_slots = batch.candidate_mask.numel()
    sums = torch.zeros(n_slots, dtype=token_lp.dtype, device=token_lp.device).index_add_(
        0, batch.entry_slot, token_lp
    )
    counts = torch.bincount(batch.entry_slot, minlength=n_slots).clamp(min=1)
    scores = (sums / counts).view_as(batch.candidate_mask.float())
    return scores.masked_fill(~batch.candidate_mask, float("-inf"))


def loss(model, batch: Batch) -> torch.Tensor:
    """The batch's objective: cross-entropy over candidate scores (mean over examples), or the gold
    tokens' mean negative log-likelihood (mean over tokens)."""
    if batch.objective == "lm":
        return -token_logprobs(model, batch).mean()
    return torch.nn.functional.cross_entropy(candidate_scores(model, batch), batch.labels)


@torch.no_grad()
def evaluate(model, encoded: list[EncodedExample], pad_id: int, batch_size: int, device="cpu") -> dict:
    """Accuracy by argmax of candidate scores (correct when the argmax is any correct candidate).
    Examples are length-sorted to waste little padding."""
    order = sorted(range(len(encoded)), key=lambda i: encoded[i].length)
    correct = 0
    predictions = [0] * len(encoded)
    for start in progress(range(0, len(order), batch_size), "evaluate"):
        idx = order[start : start + batch_size]
        batch = collate([encoded[i] for i in idx], pad_id).to(device)
        pred = candidate_scores(model, batch).argmax(dim=-1)
        correct += int(batch.correct_mask.gather(1, pred[:, None]).sum())
        for i, p in zip(idx, pred.tolist(), strict=True):
            predictions[i] = p
    accuracy = correct / len(encoded)
    return {"score": accuracy, "accuracy": accuracy, "n": len(encoded), "predictions": predictions}
