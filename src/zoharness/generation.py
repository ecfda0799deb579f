"""Greedy decoding for generation tasks (MeZO: up to 50 new tokens, stop at a newline).

Batches are left-padded so every row's next token is predicted at the last position; decoding stops
for a row at the first token whose text contains a newline (or EOS), and the answer is the decoded
text up to that newline, stripped.
"""

from __future__ import annotations

import functools

import torch

from zoharness.answer_metrics import exact_match, f1_score
from zoharness.io import progress
from zoharness.tasks.base import Prompt

MAX_NEW_TOKENS = 50  # MeZO


@functools.lru_cache(maxsize=8)
def _newline_token_ids(tokenizer) -> tuple[int, ...]:
    return tuple(i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i]))


def stop_token_ids(tokenizer) -> list[int]:
    ids = list(_newline_token_ids(tokenizer))
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return ids


def encode_context(tokenizer, prompt: Prompt, max_length: int, max_new_tokens: int = MAX_NEW_TOKENS):
    """Context ids, left-truncated so that context + new tokens fit in max_length."""
    keep = max_length - max_new_tokens
    if keep < 1:
        raise ValueError(f"max_length={max_length} leaves no room for {max_new_tokens} new tokens")
    return tuple(tokenizer(prompt.context, add_special_tokens=False).input_ids[-keep:])


@torch.no_grad()
def greedy_answers(
    model,
    tokenizer,
    contexts,
    batch_size: int,
    device="cpu",
    max_new_tokens=MAX_NEW_TOKENS,
    show_progress=True,
):
    """Generated answer strings, one per context (length-sorted batches, returned in input order).
    show_progress=False: no progress bar (the f1 training objective decodes twice per step)."""
    pad_id = tokenizer.pad_token_id
    stops = stop_token_ids(tokenizer)
    order = sorted(range(len(contexts)), key=lambda i: len(contexts[i]))
    out = [""] * len(contexts)
    starts = range(0, len(order), batch_size)
    for start in progress(starts, "generate") if show_progress else starts:
        idx = order[start : start + batch_size]
        width = max(len(contexts[i]) for i in idx)
        input_ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            ids = contexts[i]
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        generated = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=stops,
            pad_token_id=pad_id,
        )
        for row, i in enumerate(idx):
            text = tokenizer.decode(generated[row, width:], skip_special_tokens=True)
            out[i] = text.split("\n")[0].strip()
    return out


def evaluate_generation(
    model, tokenizer, prompts: list[Prompt], max_length: int, batch_size: int, device="cpu"
):
    contexts = [encode_context(tokenizer, p, max_length) for p in prompts]
    predictions = greedy_answers(model, tokenizer, contexts, batch_size, device)
    f1 = [f1_score(pred, p.answers) for pred, p in zip(predictions, prompts, strict=True)]
    em = [exact_match(pred, p.answers) for pred, p in zip(predictions, prompts, strict=True)]
    n = len(prompts)
    return {"score": sum(f1) / n, "f1": sum(f1) / n, "em": sum(em) / n, "n": n, "predictions": predictions}
