"""LP: linear probing on the frozen model's features (MeZO, arXiv 2305.17333, Table 1's "LP" row).

MeZO's LP (its appendix, as the project's issue quotes it; its code: princeton-nlp/MeZO
large_models/trainer.py, the linear_probing branch, and run.py's head_tuning):
  * classification: the input of the LM head (the last hidden state, after the final norm) at the positions
    that predict the label word; scikit-learn's logistic regression fitted on them (LogisticRegressionCV,
    multinomial, no intercept for OPT's bias-free head, max_iter 5000, tol 1e-4); its coefficient rows are
    written into the head's rows of the label tokens (two classes: -w/2 and +w/2, so the logit difference
    is the probe's w.h).
  * multiple choice and generation: head tuning, only the LM head trained (batch 8, lr {1e-4, 5e-4},
    5 epochs), on the task's usual objective.

Here:
  * The head is untied first: the output embedding gets its own copy when it shares its weight with the
    input embeddings (SmolLM2, OPT), and the config says tie_word_embeddings=False, so neither the probe nor
    head tuning touches the input embeddings, and save_pretrained + from_pretrained gives the probed model
    back (the default Trainer.save). MeZO wrote into the shared weight (its --untie_emb was off by default):
    it changed the input embeddings of the label words too. Deviation, on purpose.
  * Features: the head's input at the position that predicts the candidates' first differing token, taken
    by a forward hook on the head during the harness's own candidate scoring (one forward, every model
    family, packed or padded). With single-token label words (under SmolLM2's tokenizer every
    classification task's are: " great"/" terrible", "Yes"/"No"/"Maybe") that is the last prompt position
    and the first token; when the candidates share leading tokens (a byte-level tokenizer's " "), it is the
    position after the shared prefix, and the rows are those of the candidates' next tokens. The
    candidates' tokens there must differ and be the same for every example (fixed label words), else a
    ValueError says so and points to mode "head".
  * The probe: sklearn.linear_model.LogisticRegression (lbfgs, L2, C), fit_intercept=False: the head has
    no bias to carry an intercept (MeZO's choice for OPT too). Rows of the classes not seen yet get the mean
    of the seen rows, so they never win unless the seen classes tie. The probe's decision is exactly the
    harness's (candidate_scores -> argmax) for single-token candidates: log_softmax subtracts one normaliser
    from every candidate, so the argmax is that of the rows' logits, which is the probe's decision function
    (up to the head's dtype rounding). For multi-token candidates it is not exact: a candidate's score is the
    mean log-likelihood over its tokens, so the probe's logit enters minus the vocabulary normaliser, divided
    by the candidate's length, plus the shared prefix's and later tokens' log-likelihoods under the untied
    copy of the frozen head (some of whose rows the probe may have rewritten). extra_metrics' accuracy is
    the probe's own.
  * MeZO fitted once, after the whole train set, and chose C by 5-fold cross-validation. Here the probe is
    refitted at every step on the features of all (distinct) examples seen so far, so every mid-run
    checkpoint (eval.checkpoints) evaluates a real probe on a prefix of the data; C is a parameter (grid it
    like any other; cross-validating at every step would cost 50 fits per step).
  * Rows are the distinct (prompt tokens, label) pairs seen: a feature is a function of the prompt's tokens,
    so an epoch after the first brings no new row and its steps do not refit (they log the probe's loss).
    This is what lets mode "auto" share head tuning's step count; a train set's exact duplicates count once.

Modes: "probe" (classification only; num_steps = one epoch, ceil(n/batch)), "head" (head tuning on any
task, on the batch's objective; epochs x ceil(n/batch) steps), and "auto" (the default, for a suite that
runs one variant over every task kind): the batch's objective picks the mode (classification: probe, lm:
head), and num_steps follows the task's kind the training loop passes (classification: one epoch); called
without a kind it takes head tuning's count, and a classification run then probes in its first epoch and its
later epochs only re-score batches (checkpoints re-evaluate the same probe).

Not replayable (can_replay False): a killed run starts over, and the loop keeps a copy of the weights at the
best dev checkpoint. extra_metrics describe the last fit; the reported model is the best checkpoint's
(metrics.json: best_step).
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass

from zoharness.methods import fo, require
from zoharness.trainer import Trainer

LABEL = "LP"
VERSION = 1
MODES = ("auto", "probe", "head")
SMOKE_PARAMS = {"batch_size": 4, "epochs": 1, "lr": 1e-3}


@dataclass(frozen=True)
class Params:
    mode: str = "auto"  # see the module docstring
    batch_size: int = 8  # MeZO appendix: head tuning with batch 8; the probe sees the same batches
    C: float = 1.0  # inverse L2 strength; scikit-learn's default (MeZO cross-validated it: see above)
    max_iter: int = 5000  # MeZO's code (large_models/trainer.py): lbfgs, 5000 iterations
    tol: float = 1e-4  # MeZO's code: 1e-4 (scikit-learn's default)
    lr: float = 1e-4  # head tuning: MeZO appendix grid {1e-4, 5e-4}
    epochs: int = 5  # head tuning: MeZO appendix
    weight_decay: float = 0.0  # head tuning: the HF Trainer's default, as MeZO ran it

    def __post_init__(self):
        require(self.mode in MODES, f"lp.mode must be one of {MODES}, got {self.mode!r}")
        require(self.batch_size >= 1, f"lp.batch_size must be >= 1, got {self.batch_size}")
        require(self.C > 0, f"lp.C must be > 0, got {self.C}")
        require(self.max_iter >= 1, f"lp.max_iter must be >= 1, got {self.max_iter}")
        require(self.tol > 0, f"lp.tol must be > 0, got {self.tol}")
        require(self.lr > 0, f"lp.lr must be > 0, got {self.lr}")
        require(self.epochs >= 1, f"lp.epochs must be >= 1, got {self.epochs}")
        require(self.weight_decay >= 0, f"lp.weight_decay must be >= 0, got {self.weight_decay}")


def forwards_per_step(params: Params) -> int:
    """The probe only reads features (one forward); head tuning backpropagates into the head alone
    (zoharness.methods.expected_forwards)."""
    return 1 if params.mode == "probe" else 2


def num_steps(params: Params, n_train: int, kind: str | None = None) -> int:
    """One epoch for the probe (it sees every example once); head tuning's epochs otherwise. "auto" follows
    the task's kind when the loop says it (a classification task probes), head tuning's count when not."""
    per_epoch = math.ceil(n_train / params.batch_size)
    probes = params.mode == "probe" or (params.mode == "auto" and kind == "classification")
    return per_epoch if probes else params.epochs * per_epoch


def untie_head(model):
    """The output embedding, with a weight of its own (a copy when it shared the input embeddings'), and the
    config saying so: save_pretrained then writes it and from_pretrained does not tie it back."""
    import torch

    head = model.get_output_embeddings()
    if head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr():
        head.weight = torch.nn.Parameter(head.weight.detach().clone())
    for config in {id(c): c for c in (model.config, model.config.get_text_config())}.values():
        config.tie_word_embeddings = False
    return head


def head_inputs(model, batch):
    """(the head's inputs [P, d] at batch.flat_positions, candidate scores [E, C]) from one forward: the
    harness's own scoring, with a hook on the head, so the features are exactly what the head sees."""
    from zoharness import scoring

    captured = []
    hook = model.get_output_embeddings().register_forward_hook(
        lambda module, args, output: captured.append(args[0].detach())
    )
    try:
        scores = scoring.candidate_scores(model, batch)
    finally:
        hook.remove()
    return captured[0], scores


def candidate_tokens(batch) -> list[list[list[tuple[int, int]]]]:
    """Per example, per present candidate: its (entry index, token) pairs in token order (collate keeps
    each candidate's entries in order)."""
    width = batch.candidate_mask.shape[1]
    out = [[[] for _ in range(width)] for _ in range(batch.n_examples)]
    for i, (slot, token) in enumerate(
        zip(batch.entry_slot.tolist(), batch.entry_target.tolist(), strict=True)
    ):
        example, candidate = divmod(slot, width)
        out[example][candidate].append((i, token))
    counts = batch.candidate_mask.sum(dim=1).tolist()
    return [cands[:n] for cands, n in zip(out, counts, strict=True)]


def split_point(words: tuple[tuple[int, ...], ...]) -> int:
    """Index of the first token at which the candidates differ; ValueError when there the candidates do
    not each have a token of their own (one is a prefix of another, or two share it)."""
    d = 0
    while all(len(w) > d for w in words) and len({w[d] for w in words}) == 1:
        d += 1
    if not all(len(w) > d for w in words) or len({w[d] for w in words}) != len(words):
        raise ValueError(
            f"lp: the candidates' tokens {[list(w) for w in words]} have no position where each candidate "
            "has a token of its own, so no head row can carry a class; use mode 'head' for this task"
        )
    return d


def prompt_key(batch, flat_position: int) -> tuple[int, ...]:
    """The tokens of the sequence up to `flat_position` (what a causal model's hidden state there is a
    function of), read from the batch's padded or packed rows."""
    width = batch.input_ids.shape[1]
    row, col = divmod(flat_position, width)
    start = 0 if batch.position_ids is None else col - int(batch.position_ids[row, col])
    return tuple(batch.input_ids[row, start : col + 1].tolist())


class _LP(Trainer):
    can_replay = False  # a probe is fitted, not a logged trajectory: a killed run starts over

    def __init__(self, model, params: Params):
        import sklearn.linear_model  # noqa: F401  (imported now, not inside the first step's timing)
        import torch

        self.model, self.params = model, params
        self.head = untie_head(model)
        # Everything but the head is frozen: head tuning's backward stops at the head's input.
        for p in model.parameters():
            p.requires_grad_(False)
        self.head.weight.requires_grad_(True)
        if getattr(self.head, "bias", None) is not None:
            self.head.bias.requires_grad_(True)
        # Head tuning is FT's step over the head alone (its requires_grad flags, set above)
        self.head_ft = fo._FO(
            model,
            params,
            make_optimizer=lambda trainable, p: torch.optim.AdamW(
                trainable, lr=p.lr, weight_decay=p.weight_decay, fused=True
            ),
            describe="torch.optim.AdamW(fused=True) over the untied head",
            train_all=False,
        )
        self.trainable = self.head_ft.trainable
        self.mode: str | None = None  # resolved at the first step (auto: from the batch's objective)
        self.words: tuple[tuple[int, ...], ...] | None = None  # the label words' token ids
        self.at = 0  # index of the candidates' first differing token
        self.rows: dict[tuple, int] = {}  # (prompt tokens, label) -> row of X
        self.X: list = []  # features, float64 numpy rows
        self.y: list[int] = []  # candidate index of each row
        self.probe = None  # the last fitted sklearn LogisticRegression
        self.fit_info: dict = {}

    # ----- mode --------------------------------------------------------------------------------------

    def _resolve_mode(self, batch) -> str:
        natural = "probe" if batch.objective == "classification" else "head"
        mode = natural if self.params.mode == "auto" else self.params.mode
        if mode == "probe" and natural != "probe":
            raise ValueError(
                f"lp.mode='probe' needs a classification task (candidates that are label words); this "
                f"batch's objective is {batch.objective!r}: use mode 'auto' or 'head'"
            )
        if self.mode not in (None, mode):
            raise ValueError(f"lp: a run switched from {self.mode!r} to {mode!r} (a batch objective changed)")
        self.mode = mode
        return mode

    def step(self, batch, index: int) -> dict:
        if self._resolve_mode(batch) == "probe":
            return self._probe_step(batch)
        return self._head_step(batch, index)

    # ----- head tuning -------------------------------------------------------------------------------

    def _head_step(self, batch, index: int) -> dict:
        return self.head_ft.step(batch, index)

    # ----- linear probe ------------------------------------------------------------------------------

    def _probe_step(self, batch) -> dict:
        import torch

        t0 = time.perf_counter()
        with torch.no_grad():
            hidden, scores = head_inputs(self.model, batch)
            loss = float(torch.nn.functional.cross_entropy(scores, batch.labels))
        added = self._collect(batch, hidden)
        t1 = time.perf_counter()
        if added:
            self._fit()
        out = {
            "loss": loss,  # the current head's (before this step's refit), as other methods log theirs
            "forward_passes": 1,
            "probe_rows": len(self.y),
            "probe_refit": bool(added and self.probe is not None),
            "phases_s": {"forward": t1 - t0, "fit": time.perf_counter() - t1},
        }
        if self.probe is not None:
            out["probe_train_accuracy"] = self.fit_info["train_accuracy"]
            out["probe_converged"] = self.fit_info["converged"]
        return out

    def _collect(self, batch, hidden) -> int:
        """Adds the batch's new (feature, label) rows; returns how many."""
        import torch

        positions = batch.entry_position.tolist()
        flat = batch.flat_positions.tolist()
        labels = batch.labels.tolist()
        added = 0
        for e, cands in enumerate(candidate_tokens(batch)):
            words = tuple(tuple(t for _, t in c) for c in cands)
            self._check_words(words)
            entry = cands[0][self.at][0]  # every candidate's entry there has the same context
            key = (prompt_key(batch, flat[positions[entry]]), labels[e])
            if key in self.rows:
                continue
            self.rows[key] = len(self.y)
            self.X.append(hidden[positions[entry]].to("cpu", torch.float64).numpy())
            self.y.append(labels[e])
            added += 1
        return added

    def _check_words(self, words) -> None:
        if self.words is None:
            self.at, self.words = split_point(words), words
        elif words != self.words:
            raise ValueError(
                f"lp: the probe needs the same label words for every example; got candidates tokenized as "
                f"{[list(w) for w in words]} after {[list(w) for w in self.words]}: use mode 'head'"
            )

    def _fit(self) -> None:
        """Refits the probe on every row so far and writes it into the head (nothing before two classes)."""
        import numpy as np
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        X, y = np.stack(self.X), np.asarray(self.y)
        if len(np.unique(y)) < 2:
            return  # a logistic regression needs two classes; the head stays as it was
        probe = LogisticRegression(
            C=self.params.C, fit_intercept=False, max_iter=self.params.max_iter, tol=self.params.tol
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # recorded in fit_info instead
            probe.fit(X, y)
        self.probe = probe
        n_iter = int(np.max(probe.n_iter_))
        self.fit_info = {
            "train_accuracy": float(probe.score(X, y)),
            "n_iter": n_iter,
            "converged": n_iter < self.params.max_iter,
        }
        self._write_rows(class_rows(probe, len(self.words)))

    def _write_rows(self, rows) -> None:
        import torch

        tokens = torch.tensor([w[self.at] for w in self.words], device=self.head.weight.device)
        with torch.no_grad():
            self.head.weight[tokens] = torch.from_numpy(rows).to(self.head.weight)
            if getattr(self.head, "bias", None) is not None:
                self.head.bias[tokens] = 0  # no intercept: a label token's bias would shift its class

    # ----- reporting ---------------------------------------------------------------------------------

    def trajectory_header(self) -> dict:
        import sklearn

        p = self.params
        return {
            "lp": {
                "mode": p.mode,
                "probe": f"sklearn.linear_model.LogisticRegression (scikit-learn {sklearn.__version__})",
                "solver": "lbfgs",
                "penalty": "l2",
                "C": p.C,
                "fit_intercept": False,
                "max_iter": p.max_iter,
                "tol": p.tol,
                "features": "LM head input (last hidden state after the final norm) at the position "
                "predicting the candidates' first differing token",
                "head": "untied copy of the output embedding; label tokens' rows = probe coefficients",
                "head_tuning_optimizer": "torch.optim.AdamW(fused=True), only the untied head",
            }
        }

    def extra_metrics(self) -> dict:
        out = {
            "lp_mode": self.mode,
            "lp_head_parameters": sum(p.numel() for p in self.trainable),
        }
        if self.mode == "probe":
            out.update(
                lp_probe_rows=len(self.y),
                lp_feature_dim=int(self.head.weight.shape[1]),
                lp_label_tokens=[w[self.at] for w in self.words] if self.words else None,
                **{f"lp_probe_{k}": v for k, v in self.fit_info.items()},
            )
        return out


def class_rows(probe, n_classes: int):
    """[n_classes, d] head rows reproducing the probe's decision: a binary probe's w becomes -w/2, +w/2;
    classes it has not seen get the mean of the seen rows (a logit never above the largest seen one)."""
    import numpy as np

    coef = probe.coef_
    if coef.shape[0] == 1:
        coef = np.concatenate([-coef / 2, coef / 2])
    rows = np.tile(coef.mean(axis=0), (n_classes, 1))
    rows[probe.classes_] = coef
    return rows


def build(model, params: Params, seed: int):
    return _LP(model, params)
