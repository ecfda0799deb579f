"""Sensitivity scores: the diagonal empirical Fisher, Σ_sequences (∂L/∂w)², of every eligible weight.

SensZOQ computes it on C4 pre-training text with the causal-LM loss and transfers the mask to every
task. Corpora (the `corpus` of a mask):
  wiki-passages  offline default, a stand-in for C4: the distinct Wikipedia paragraphs already in the
                 bundled data (SQuAD contexts and MultiRC passages, HTML markup stripped)
  c4             allenai/c4 "en" validation texts through `datasets` (needs the network)
  task-<task>    the task's own training objective on its train examples (the task-gradient ablation)
One backward per sequence (per example for task corpora): squaring a batch's summed gradient would
not be the empirical Fisher.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import numpy as np
import torch

from zoharness.io import iter_jsonl, progress
from zoharness.sparse.mask import eligible_linears

# Calibration budget, part of every mask's identity (bump CALIBRATION_VERSION when changing it).
CALIBRATION_VERSION = 1
NUM_SEQUENCES = 128
SEQUENCE_LENGTH = 256
CORPUS_SEED = 0
GENERIC_CORPORA = ("wiki-passages", "c4")

_TAG = re.compile(r"<[^>]+>")
_SENT = re.compile(r"Sent \d+:\s*")


def wiki_passages(data_dir: str | Path) -> list[str]:
    """Distinct paragraphs of the bundled SQuAD (validation) and MultiRC (train, validation) files."""
    data_dir = Path(data_dir)
    texts: dict[str, None] = {}
    for _, row in iter_jsonl(data_dir / "squad" / "validation.jsonl"):
        texts[row["context"].strip()] = None
    for which in ("train", "validation"):
        for _, row in iter_jsonl(data_dir / "multirc" / f"{which}.jsonl"):
            text = _SENT.sub("", _TAG.sub(" ", row["passage"]["text"]))
            texts[" ".join(text.split())] = None
    return [t for t in texts if t]


def c4_texts(n_texts: int = 20000) -> list[str]:  # pragma: no cover - needs the network
    from datasets import load_dataset

    stream = load_dataset("allenai/c4", "en", split="validation", streaming=True)
    return [row["text"] for _, row in zip(range(n_texts), stream, strict=False)]


def lm_sequences(tokenizer, texts: list[str], n: int, length: int, seed: int) -> list[torch.Tensor]:
    """n windows of `length` tokens from the texts, shuffled by seed and joined by EOS (as pre-training)."""
    order = np.random.default_rng(seed).permutation(len(texts))
    out, buffer = [], []
    for i in order:
        buffer += tokenizer(texts[i], add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
        while len(buffer) >= length and len(out) < n:
            out.append(torch.tensor(buffer[:length]))
            buffer = buffer[length:]
        if len(out) == n:
            return out
    raise ValueError(f"the corpus has {len(out)} windows of {length} tokens; {n} were asked for")


def squared_gradients(model, losses) -> tuple[dict[str, torch.Tensor], dict]:
    """Σ over the iterable's losses of the squared gradient of every eligible weight (float32).

    `losses` yields zero-argument callables returning a scalar loss, one per sequence/example.
    """
    weights = {f"{name}.weight": m.weight for name, m in eligible_linears(model)}
    for p in model.parameters():
        p.requires_grad_(False)
    for w in weights.values():
        w.requires_grad_(True)
    scores = {n: torch.zeros(w.shape, dtype=torch.float32, device=w.device) for n, w in weights.items()}
    start, n, total_loss = time.perf_counter(), 0, 0.0
    for loss_fn in progress(losses, "sensitivity"):
        loss = loss_fn()
        loss.backward()
        with torch.no_grad():
            for name, w in weights.items():
                scores[name].add_(w.grad.float().square())
                w.grad = None
        n += 1
        total_loss += float(loss.detach())
    for w in weights.values():
        w.requires_grad_(False)
    return scores, {
        "backward_passes": n,
        "mean_loss": total_loss / max(n, 1),
        "time_s": time.perf_counter() - start,
    }


def lm_losses(model, sequences: list[torch.Tensor], device):
    for seq in sequences:
        ids = seq[None].to(device)
        yield lambda ids=ids: model(input_ids=ids, labels=ids).loss


def task_losses(model, encoded: list, pad_id: int, device):
    from zoharness import scoring

    for ex in encoded:
        yield lambda ex=ex: scoring.loss(model, scoring.collate([ex], pad_id).to(device))
