"""Per-example loss gradients for RapidIn: one example at a time, RapidIn's per-tensor normalisation.

The gradient is that of the harness's own training objective (`scoring.loss` on a batch of one built by
`scoring.collate`), so influence is measured on exactly what training minimises: cross-entropy over the
candidates for classification tasks, teacher forcing on the gold continuation otherwise.

What the model looks like afterwards: nothing changes. Gradients come from torch.autograd.grad, never
.backward(), so no parameter's .grad is written (a half-trained model's accumulated .grad, if any,
survives); a parameter named explicitly but frozen gets requires_grad for the duration and has it
restored; the model runs in eval mode (no dropout: a gradient is a function of the example alone) and
goes back to the mode it was in.

Query targets (`query_examples`). To explain a test prediction, RapidIn takes the gradient of the loss of
the text the model produced. For a classification query the analogue is the loss with the model's own
predicted candidate as the label (target="predicted", the default): "which training examples pushed the
model towards this answer", right or wrong. target="gold" keeps the dataset's label instead ("which
examples pushed it towards the right answer"). A query is re-encoded with dataclasses.replace(label=...)
and nothing else changes, so its gradient comes from the same code path as a training example's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
from collections.abc import Iterator, Sequence

import torch

from zoharness import scoring
from zoharness.influence.rapidgrad import flatten_normalised

QUERY_TARGETS = ("predicted", "gold")


def trainable_parameters(model, names: Sequence[str] | None = None) -> list[tuple[str, torch.nn.Parameter]]:
    """(name, parameter) pairs whose gradients make up an example's gradient, in model.named_parameters()
    order (whatever order `names` lists them in, so one set of names always gives one layout).

    names=None: every parameter with requires_grad. Otherwise exactly the named ones, frozen or not. Tied
    weights appear once, under their first name (named_parameters' rule): Llama's tied lm_head.weight is
    model.embed_tokens.weight."""
    named = list(model.named_parameters())
    if names is None:
        chosen = [(n, p) for n, p in named if p.requires_grad]
        if not chosen:
            raise ValueError("trainable_parameters: no parameter of the model requires grad; name some")
        return chosen
    if isinstance(names, str):
        # A bare string would be iterated letter by letter.
        raise ValueError(f"trainable_parameters: names must be a list of names, got the string {names!r}")
    wanted = list(names)
    if not wanted:
        raise ValueError("trainable_parameters: names is empty; pass None for every trainable parameter")
    valid = [n for n, _ in named]
    known = set(valid)
    for name in wanted:
        if name not in known:
            close = difflib.get_close_matches(str(name), valid, n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            shown = ", ".join(valid[:5]) + (f", ... ({len(valid)} in all)" if len(valid) > 5 else "")
            raise ValueError(f"trainable_parameters: unknown parameter {name!r}.{hint} Valid names: {shown}")
    duplicates = sorted({n for n in wanted if wanted.count(n) > 1})
    if duplicates:
        raise ValueError(f"trainable_parameters: parameters named more than once: {duplicates}")
    selected = set(wanted)
    return [(n, p) for n, p in named if n in selected]


def parameter_header(params: Sequence[tuple[str, torch.nn.Parameter]]) -> dict:
    """What defines the gradient's layout, for a cache header: names, shapes and the total length."""
    return {
        "names": [n for n, _ in params],
        "shapes": [list(p.shape) for _, p in params],
        "dim": sum(p.numel() for _, p in params),
    }


def example_gradients(
    model,
    encoded_examples: Sequence[scoring.EncodedExample],
    pad_id: int,
    params: Sequence[tuple[str, torch.nn.Parameter]],
    device: str | torch.device = "cpu",
) -> Iterator[torch.Tensor]:
    """Yield, for each example in turn, the float32 vector of length sum(numel) that is its loss gradient
    over `params`, each tensor's part flattened and divided by its own L2 norm (rapidgrad.flatten_normalised),
    concatenated in the order of `params`.

    A generator: one gradient exists at a time unless the caller keeps them (build_cache keeps a block).
    The model's state is restored when the generator finishes, fails or is closed."""
    with _gradient_mode(model, params, "example_gradients") as tensors:
        for i, ex in enumerate(encoded_examples):
            batch = scoring.collate([ex], pad_id).to(device)
            with torch.enable_grad():
                loss = scoring.loss(model, batch)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"example_gradients: example {i} (objective {ex.objective!r}, label {ex.label}) has a "
                        f"non-finite loss ({value}); its gradient would poison every inner product"
                    )
                # allow_unused: a parameter the loss does not reach (e.g. a bias of an unused layer) has
                # no gradient; it counts as zeros, which flatten_normalised keeps zero.
                grads = torch.autograd.grad(loss, tensors, allow_unused=True)
            yield flatten_normalised(
                [torch.zeros_like(p) if g is None else g for p, g in zip(tensors, grads, strict=True)]
            )


@contextlib.contextmanager
def _gradient_mode(model, params: Sequence[tuple[str, torch.nn.Parameter]], caller: str):
    """The tensors of `params`, with the model in eval mode and every one of them requiring grad for the
    duration; the model's mode and the frozen tensors' flags are given back however the block ends
    (module docstring: what the model looks like afterwards)."""
    if not params:
        raise ValueError(f"{caller}: params is empty (see trainable_parameters)")
    tensors = [p for _, p in params]
    was_training = model.training
    frozen = [p for p in tensors if not p.requires_grad]
    try:
        model.eval()
        for p in frozen:
            p.requires_grad_(True)
        yield tensors
    finally:
        for p in frozen:
            p.requires_grad_(False)
        model.train(was_training)


@torch.no_grad()
def predicted_candidates(
    model, encoded_examples: Sequence[scoring.EncodedExample], pad_id: int, device="cpu"
) -> list[int]:
    """The argmax candidate of each example, one at a time (scoring.evaluate's rule, unpadded)."""
    was_training = model.training
    model.eval()
    try:
        return [
            int(scoring.candidate_scores(model, scoring.collate([ex], pad_id).to(device)).argmax(dim=-1)[0])
            for ex in encoded_examples
        ]
    finally:
        model.train(was_training)


def query_examples(
    model,
    encoded_examples: Sequence[scoring.EncodedExample],
    pad_id: int,
    target: str = "predicted",
    device="cpu",
) -> list[scoring.EncodedExample]:
    """The queries to explain, with the label their gradient is taken for (module docstring).

    target="predicted" needs every candidate, so the queries must be encoded with objective
    "classification" (as evaluation encodes them); an "lm" encoding holds the gold continuation only, and
    explaining a generated continuation is not implemented."""
    if target not in QUERY_TARGETS:
        raise ValueError(f"query_examples: target must be one of {QUERY_TARGETS}, got {target!r}")
    examples = list(encoded_examples)
    if target == "gold":
        return examples
    for i, ex in enumerate(examples):
        if ex.objective != "classification":
            raise ValueError(
                f"query_examples: query {i} is encoded with objective {ex.objective!r}, which holds only the "
                "gold continuation; encode queries with objective 'classification' to explain the model's "
                "prediction, or pass target='gold'"
            )
    predicted = predicted_candidates(model, examples, pad_id, device)
    return [dataclasses.replace(ex, label=p) for ex, p in zip(examples, predicted, strict=True)]


def token_gradients(
    model,
    example: scoring.EncodedExample,
    pad_id: int,
    params: Sequence[tuple[str, torch.nn.Parameter]],
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, list[dict]]:
    """Token-wise influence (RapidIn's, lost at the reference's HEAD; the maintainer's description in
    RapidIn#1): the example's normalised gradient split over its target tokens.

    Returns rows [m, D], one per target token (entry) of the example, and for each row {"entry",
    "candidate", "token", "position"}. The split is exact: the objective's gradient is Σ_e w_e ∇log p_e over
    the entries e (w_e = -1/m for teacher forcing; for cross-entropy over candidates scored by their
    tokens' mean log-probability, w_e = (p_c - y_c) / n_c with c the entry's candidate, p the softmax over
    the candidates, y the one-hot label, n_c its number of tokens). Row e is w_e ∇log p_e with each tensor's
    part divided by the norm of the whole example's gradient for that tensor, so the rows sum to
    example_gradients' vector, and a token's influence <row, query> sums over the tokens to the example's
    influence. For a generation task the rows are the answer's tokens; for SST-2, the two candidates'
    tokens (the gold one pulled up, the other pushed down)."""
    batch = scoring.collate([example], pad_id).to(device)
    with _gradient_mode(model, params, "token_gradients") as tensors, torch.enable_grad():
        logprobs = scoring.token_logprobs(model, batch)
        slots = batch.entry_slot
        if batch.objective == "lm":
            weights = torch.full_like(logprobs, -1.0 / logprobs.numel())
        else:
            counts = torch.bincount(slots, minlength=example.n_candidates).to(logprobs.dtype)
            scores = torch.zeros_like(counts).index_add_(0, slots, logprobs.detach()) / counts.clamp(min=1)
            probs = torch.softmax(scores[: example.n_candidates], dim=0)
            onehot = torch.nn.functional.one_hot(torch.tensor(example.label), example.n_candidates).to(probs)
            weights = ((probs - onehot) / counts[: example.n_candidates])[slots]
        terms = weights.detach() * logprobs
        whole = torch.autograd.grad(terms.sum(), tensors, retain_graph=True, allow_unused=True)
        norms = [
            torch.ones((), device=p.device) if g is None or not bool(g.norm() > 0) else g.norm()
            for p, g in zip(tensors, whole, strict=True)
        ]
        rows = []
        for e in range(terms.numel()):
            grads = torch.autograd.grad(
                terms[e], tensors, retain_graph=e + 1 < terms.numel(), allow_unused=True
            )
            rows.append(
                torch.cat(
                    [
                        (torch.zeros_like(p) if g is None else g / n).reshape(-1).to(torch.float32)
                        for p, g, n in zip(tensors, grads, norms, strict=True)
                    ]
                )
            )
    info = [
        {"entry": e, "candidate": cand, "token": tgt, "position": pos}
        for e, (_, pos, tgt, cand) in enumerate(example.entries)
    ]
    return torch.stack(rows), info
