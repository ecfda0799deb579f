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
  * Packed batches (models that pass `packing_mode`'s probe): a batch's sequences are laid end to end in
    a few rows of about PACK_ROW_TOKENS tokens, each with its own position ids 0..n-1; the model's
    attention keeps to each sequence (block-diagonal causal mask). Llama-family code builds that mask
    from the position ids when no attention mask is given ("positions"); models whose code ignores the
    position ids there (transformers 5.23's OPT) get it spelled out as a 4-D boolean mask ("block_mask"). No compute is spent on padding: SST-2 batches of
    16 were 2.7x padding when right-padded to the longest. Per-example losses equal the padded
    computation's within float rounding (tests/test_packing.py states the tolerance).
Padded batches (other models, or pack=False) are right-padded; positions are then the plain 0..n-1.

Masked LMs (LM-BFF, MeZO's RoBERTa protocol): a prompt's masked form (tasks.base.MaskedPrompt) is one
sequence, cls + the text before + the mask token + the text after + sep, and every class is scored by the MLM
head's log-probability of its label word at the mask: the same entries (sequence, position, target token,
candidate) as a causal LM's single-token path, with the mask's own position instead of the one before the
target. The head is the model's whole prediction head (RoBERTa's dense + layer norm + decoder), and batches are
right-padded (attention is bidirectional, so packed rows would see each other). Training objectives are the
same functions of the same entries: nothing else branches on the model kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from zoharness import generation
from zoharness.answer_metrics import f1_score
from zoharness.io import progress
from zoharness.models import MLM, tokenizer_kind
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
    if tokenizer_kind(tokenizer) == MLM:
        return encode_masked(tokenizer, prompt, max_length, objective)
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


def label_word_ids(tokenizer, words: tuple[str, ...]) -> list[int]:
    """Each label word's one token id. LM-BFF's rule, kept here: a masked LM's label word is one token of its
    vocabulary (RoBERTa's are, with their leading space); a word that is several tokens is refused, naming it."""
    ids = []
    for word in words:
        pieces = tokenizer(word, add_special_tokens=False).input_ids
        if len(pieces) != 1:
            raise ValueError(
                f"masked-LM label word {word!r} is {len(pieces)} tokens "
                f"{tokenizer.convert_ids_to_tokens(pieces)} for this tokenizer; a label word must be one token "
                "of the vocabulary (LM-BFF's rule); choose another word in the task's template"
            )
        ids.append(pieces[0])
    return ids


def encode_masked(
    tokenizer, prompt: Prompt, max_length: int, objective: str = "classification"
) -> EncodedExample:
    """A prompt's masked form as one sequence, every label word scored at the mask (module docstring). Too
    long: the start of the text before the mask goes first, then the end of the text after it."""
    masked = prompt.masked
    if masked is None:
        raise ValueError(
            f"prompt {prompt.context[:60]!r} has no masked-LM form: its task has no masked-LM template"
        )
    words = label_word_ids(tokenizer, masked.words)
    before = tokenizer(masked.before, add_special_tokens=False).input_ids if masked.before else []
    after = tokenizer(masked.after, add_special_tokens=False).input_ids if masked.after else []
    cls = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    specials = [t for t in (cls, sep) if t is not None]
    excess = len(before) + len(after) + 1 + len(specials) - max_length
    if excess > 0:
        cut = min(excess, len(before))
        before, excess = before[cut:], excess - cut
        after = after[: len(after) - excess] if excess > 0 else after
    head = [cls] if cls is not None else []
    sequence = (*head, *before, tokenizer.mask_token_id, *after, *([sep] if sep is not None else []))
    at = len(head) + len(before)
    if objective == "lm":  # teacher forcing on the gold word alone
        return EncodedExample((sequence,), ((0, at, words[prompt.label], 0),), 1, 0, (0,), objective)
    entries = tuple((0, at, word, j) for j, word in enumerate(words))
    return EncodedExample((sequence,), entries, len(words), prompt.label, prompt.correct, objective)


def is_masked_lm(model) -> bool:
    """A Hugging Face masked-LM head model (RobertaForMaskedLM, BertForMaskedLM, ...)."""
    return type(model).__name__.endswith("ForMaskedLM")


def vocab_head(model):
    """The module that maps final hidden states to vocabulary logits: a causal LM's output embedding; a
    masked LM's whole prediction head (RoBERTa's lm_head, BERT's cls), whose decoder is the output embedding."""
    if is_masked_lm(model):
        for name in ("lm_head", "cls"):
            if isinstance(getattr(model, name, None), torch.nn.Module):
                return getattr(model, name)
        raise ValueError(f"{type(model).__name__}: no masked-LM prediction head (lm_head or cls) found")
    return model.get_output_embeddings()


# A packed row's target length. Block-diagonal attention still computes each row's full row x row score
# matrix, so longer rows trade padding for attention work: rows stay within 2 x max(this, the longest
# sequence), and among the row counts that allow it the one with the fewest padded positions wins. At
# 128 tokens a row's attention costs SmolLM2-135M about 4% of a layer's linear work per token (bench/padding.py).
PACK_ROW_TOKENS = 128


def _balance(lengths: list[int], order: list[int], n_rows: int) -> tuple[list[list[int]], int]:
    """Longest first onto the least-loaded row (ties: the lower row): rows and the largest row load."""
    loads, rows = [0] * n_rows, [[] for _ in range(n_rows)]
    for i in order:
        r = min(range(n_rows), key=lambda k: (loads[k], k))
        loads[r] += lengths[i]
        rows[r].append(i)
    return rows, max(loads)


def pack_rows(lengths: list[int], target: int = PACK_ROW_TOKENS) -> list[list[int]]:
    """Sequence indices per row (original order within a row): of the row counts whose balanced rows stay
    within 2 x max(target, longest), the one that pads the fewest positions (then the shortest rows).
    Deterministic: a pure function of the lengths."""
    if not lengths:
        return []
    cap = 2 * max(target, max(lengths))
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    total = sum(lengths)
    first = max(1, math.ceil(total / cap))
    best = None
    for n_rows in range(first, min(len(lengths), first + 8) + 1):
        rows, width = _balance(lengths, order, n_rows)
        key = (n_rows * width, width)  # fewest padded positions, then the shorter rows (less attention)
        if width <= cap and (best is None or key < best[0]):
            best = (key, rows)
    if best is None:  # unreachable in practice: one sequence per row always fits
        best = (None, [[i] for i in range(len(lengths))])
    return [sorted(row) for row in best[1] if row]


@dataclass(frozen=True)
class AnswerTargets:
    """What an objective that decodes (DECODING_OBJECTIVES: f1) needs besides the teacher-forcing batch: each
    example's decoding context (generation.encode_context, the evaluator's left-truncated ids) and gold answers,
    the tokenizer that decodes, and the evaluator's batch size, so the objective decodes exactly as
    generation.evaluate_generation does. The training loop builds it once for the train set (answer_targets)
    and attaches each step's `subset` to the batch; no other objective sees one."""

    tokenizer: Any
    contexts: tuple[tuple[int, ...], ...]
    answers: tuple[tuple[str, ...], ...]
    batch_size: int

    def subset(self, indices) -> AnswerTargets:
        """The targets of examples `indices`, in that order (a training batch's)."""
        return AnswerTargets(
            self.tokenizer,
            tuple(self.contexts[int(i)] for i in indices),
            tuple(self.answers[int(i)] for i in indices),
            self.batch_size,
        )


def answer_targets(tokenizer, prompts: list[Prompt], max_length: int, batch_size: int) -> AnswerTargets:
    """The prompts' decoding contexts and gold answers, as generation.evaluate_generation takes them."""
    return AnswerTargets(
        tokenizer,
        tuple(generation.encode_context(tokenizer, p, max_length) for p in prompts),
        tuple(tuple(p.answers) for p in prompts),
        batch_size,
    )


@dataclass
class Batch:
    input_ids: torch.Tensor  # [R, L]: one sequence per row (padded), or several end to end (packed)
    # [R, L] for padded batches; None when packed by positions; [R, 1, L, L] bool when packed by block mask
    attention_mask: torch.Tensor | None
    flat_positions: torch.Tensor  # [P] unique row*L+pos whose logits are needed
    entry_position: torch.Tensor  # [N] index into flat_positions
    entry_target: torch.Tensor  # [N]
    entry_slot: torch.Tensor  # [N] example*C + candidate
    candidate_mask: torch.Tensor  # [E, C] True where the candidate exists
    labels: torch.Tensor  # [E]
    correct_mask: torch.Tensor  # [E, C] True where a candidate counts as correct
    objective: str
    n_tokens: int  # non-pad tokens, recorded beside timings
    position_ids: torch.Tensor | None = None  # [R, L] when packed: each sequence's own 0..n-1
    # Only for an objective that decodes (f1), attached by the training loop: what it decodes and scores
    answer_targets: AnswerTargets | None = None

    @property
    def n_examples(self) -> int:
        return self.labels.shape[0]

    @property
    def n_padding(self) -> int:
        """Positions the forward computes that hold no token (the padding's share of the compute)."""
        return self.input_ids.numel() - self.n_tokens

    def to(self, device) -> Batch:
        return Batch(
            **{k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        )


def block_causal_mask(segment: torch.Tensor) -> torch.Tensor:
    """[..., L, L] boolean attention mask (True = may attend) from each position's segment id [..., L]:
    causal, and within the position's own segment only."""
    width = segment.shape[-1]
    causal = torch.ones(width, width, dtype=torch.bool, device=segment.device).tril()
    return (segment[..., :, None] == segment[..., None, :]) & causal


def collate(
    examples: list[EncodedExample], pad_id: int, pack: bool | str = False, row_tokens: int = PACK_ROW_TOKENS
) -> Batch:
    """The examples' sequences as one batch: right-padded rows, or packed rows (see the module docstring).
    pack: False (padded), True or "positions" (packed, the model masks by position ids), "block_mask"
    (packed, with an explicit block-diagonal causal mask)."""
    mode = PACK_MODES.get(pack, pack)
    if mode not in (None, *PACKING_MODES):
        raise ValueError(f"pack must be False, True or one of {PACKING_MODES}, got {pack!r}")
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
    rows = pack_rows([len(s) for s in seqs], row_tokens) if mode else [[i] for i in range(len(seqs))]
    width = max(sum(len(seqs[i]) for i in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    # Padding keeps position 0: in a packed row every pad token is then a one-token segment of its own.
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    start = [0] * len(seqs)  # flat index of each sequence's first token
    # block mask: every position's segment (a padding position is a segment of its own, attending to itself)
    segment = (
        torch.arange(len(rows) * width).view(len(rows), width) + len(seqs) if mode == "block_mask" else None
    )
    for r, row in enumerate(rows):
        offset = 0
        for i in row:
            n = len(seqs[i])
            input_ids[r, offset : offset + n] = torch.tensor(seqs[i])
            position_ids[r, offset : offset + n] = torch.arange(n)
            attention_mask[r, offset : offset + n] = 1
            if segment is not None:
                segment[r, offset : offset + n] = i
            start[i] = r * width + offset
            offset += n
    if segment is not None:
        model_mask = block_causal_mask(segment)[:, None]
    else:
        model_mask = None if mode else attention_mask
    flat = torch.tensor([start[s] + p for s, p, _, _ in raw_entries])
    uniq, inverse = torch.unique(flat, return_inverse=True)
    candidate_mask = torch.zeros((len(examples), n_cand), dtype=torch.bool)
    correct_mask = torch.zeros((len(examples), n_cand), dtype=torch.bool)
    for e, ex in enumerate(examples):
        candidate_mask[e, : ex.n_candidates] = True
        correct_mask[e, list(ex.correct)] = True
    return Batch(
        input_ids=input_ids,
        attention_mask=model_mask,
        position_ids=position_ids if mode else None,
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
    if batch.position_ids is None:
        hidden = model.base_model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask
        ).last_hidden_state
    elif batch.attention_mask is None:  # packed: no mask, no cache: transformers masks by position ids
        hidden = model.base_model(
            input_ids=batch.input_ids, position_ids=batch.position_ids, use_cache=False
        ).last_hidden_state
    else:  # packed with the block-diagonal mask spelled out (4-D boolean: True = may attend)
        hidden = model.base_model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
        ).last_hidden_state
    picked = hidden.reshape(-1, hidden.shape[-1]).index_select(0, batch.flat_positions)
    logits = vocab_head(model)(picked)
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


def negative_accuracy(model, batch: Batch) -> torch.Tensor:
    """MeZO Table 3's non-differentiable objective for classification: minus the batch's accuracy (the
    fraction of examples whose highest-scoring candidate is the label), a step function of the weights."""
    if batch.objective == "lm":
        raise ValueError("the accuracy objective needs a classification batch (candidates and labels)")
    predicted = candidate_scores(model, batch).argmax(dim=-1)
    return -(predicted == batch.labels.to(predicted.device)).to(torch.float64).mean()


def negative_f1(model, batch: Batch) -> torch.Tensor:
    """MeZO Table 3's non-differentiable objective for generation tasks: minus the batch's mean SQuAD F1 of
    the model's greedy answers, decoded and scored as the evaluator does (generation.greedy_answers on the
    evaluator's contexts and batch size, answer_metrics.f1_score), so at θ it is minus what
    generation.evaluate_generation reports for the batch's examples. A step function of the weights."""
    targets = batch.answer_targets
    if targets is None:
        raise ValueError(
            "the f1 objective needs each example's decoding context and gold answers (Batch.answer_targets, "
            "attached by the training loop for an objective in scoring.DECODING_OBJECTIVES)"
        )
    predictions = generation.greedy_answers(
        model,
        targets.tokenizer,
        targets.contexts,
        targets.batch_size,
        batch.input_ids.device,
        show_progress=False,
    )
    f1 = [f1_score(pred, answers) for pred, answers in zip(predictions, targets.answers, strict=True)]
    return torch.tensor(-(sum(f1) / len(f1)), dtype=torch.float64)  # the evaluator's sum / n, negated


# A ZO method's training objective by name (mezo.Params.objective, which also says the task kinds each
# is defined for) -> the function's name here, looked up at call time (objective_fn) so a wrapped or
# patched `loss` is the one used. "loss" is the differentiable one above.
TRAIN_OBJECTIVES = {"loss": "loss", "accuracy": "negative_accuracy", "f1": "negative_f1"}
# Objectives that decode: the training loop attaches each batch's AnswerTargets for these only.
DECODING_OBJECTIVES = ("f1",)


def objective_fn(name: str):
    """The training objective called `name` (TRAIN_OBJECTIVES): (model, batch) -> scalar tensor."""
    return globals()[TRAIN_OBJECTIVES[name]]


# Probe for packing: two sequences, compared packed and padded at every real position.
_PROBE_LENGTHS = (7, 4)
PACKING_MODES = ("positions", "block_mask")
PACK_MODES = {False: None, True: "positions", None: None}  # collate's and the cache's legacy booleans


@torch.no_grad()
def packing_mode(model) -> str | None:
    """How this model computes packed rows exactly as it computes the sequences alone: "positions" (its
    code derives the block-diagonal mask from position ids), "block_mask" (it needs the mask spelled out),
    or None (right-padded batches). Checked once per model object on a two-sequence probe, so a model
    whose code ignores position ids or the mask silently falls back to padding."""
    known = getattr(model, "_zoharness_packing", "unknown")
    if known != "unknown":
        return PACK_MODES.get(known, known)
    mode = None
    config = getattr(model, "config", None)
    # A masked LM attends both ways: rows packed with a causal block mask would not be its computation.
    if config is not None and not getattr(config, "is_encoder_decoder", False) and not is_masked_lm(model):
        device = next(model.parameters()).device
        vocab = int(getattr(config, "vocab_size", 1000))
        seqs = [[(17 * (i + 1) + 31 * j) % vocab for j in range(n)] for i, n in enumerate(_PROBE_LENGTHS)]
        width = max(_PROBE_LENGTHS)
        ids = torch.zeros((len(seqs), width), dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, s in enumerate(seqs):
            ids[i, : len(s)], mask[i, : len(s)] = torch.tensor(s), 1
        padded = model.base_model(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
        want = torch.cat([padded[i, :n] for i, n in enumerate(_PROBE_LENGTHS)]).float()
        scale = float(want.abs().max()) or 1.0
        tol = 1e-4 if padded.dtype in (torch.float32, torch.float64) else 3e-2
        packed_ids = torch.tensor([sum(seqs, [])], device=device)
        positions = torch.cat([torch.arange(n) for n in _PROBE_LENGTHS])[None].to(device)
        segment = torch.cat([torch.full((n,), i) for i, n in enumerate(_PROBE_LENGTHS)])
        block = block_causal_mask(segment)[None, None].to(device)
        for candidate, extra in (("positions", {}), ("block_mask", {"attention_mask": block})):
            try:
                packed = model.base_model(
                    input_ids=packed_ids, position_ids=positions, use_cache=False, **extra
                ).last_hidden_state[0]
            except (TypeError, ValueError, RuntimeError):  # no position ids, or no 4-D mask
                continue
            if float((packed.float() - want).abs().max()) <= tol * scale:
                mode = candidate
                break
    model._zoharness_packing = mode
    return mode


def packing_supported(model) -> bool:
    return packing_mode(model) is not None


@torch.no_grad()
def evaluate(model, encoded: list[EncodedExample], pad_id: int, batch_size: int, device="cpu") -> dict:
    """Accuracy by argmax of candidate scores (correct when the argmax is any correct candidate).
    Examples are length-sorted, then each batch is packed when the model supports it."""
    order = sorted(range(len(encoded)), key=lambda i: encoded[i].length)
    pack = packing_mode(model)
    correct = n_tokens = n_padding = 0
    predictions = [0] * len(encoded)
    for start in progress(range(0, len(order), batch_size), "evaluate"):
        idx = order[start : start + batch_size]
        batch = collate([encoded[i] for i in idx], pad_id, pack=pack).to(device)
        n_tokens, n_padding = n_tokens + batch.n_tokens, n_padding + batch.n_padding
        pred = candidate_scores(model, batch).argmax(dim=-1)
        correct += int(batch.correct_mask.gather(1, pred[:, None]).sum())
        for i, p in zip(idx, pred.tolist(), strict=True):
            predictions[i] = p
    accuracy = correct / len(encoded)
    return {
        "score": accuracy,
        "accuracy": accuracy,
        "n": len(encoded),
        "predictions": predictions,
        "n_tokens": n_tokens,
        "n_padding": n_padding,
    }
