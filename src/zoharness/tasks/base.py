"""What a task is: where its data lives, how a record becomes a prompt, its type and metric.

Prompts follow MeZO (Malladi et al. 2023, Table 14). A prompt is a context string plus either
candidate continuations (classification, multiple choice: each candidate is scored by the mean
log-likelihood of its tokens given the context) or reference answers (generation: greedy decoding,
scored by SQuAD-style F1/EM).

Records: a data file's line may hold several examples (MultiRC: one passage with its questions and
answer options; ReCoRD: one passage with its queries). `flatten` turns a line into the records the
Hugging Face loaders produce (one per answer option / per query), so the offline snapshot and the
online datasets yield the same record schema.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from zoharness.io import DataError

CLASSIFICATION = "classification"
MULTIPLE_CHOICE = "multiple_choice"
GENERATION = "generation"
KINDS = (CLASSIFICATION, MULTIPLE_CHOICE, GENERATION)


@dataclass(frozen=True)
class Prompt:
    context: str
    # Classification / multiple choice: the options; generation: the gold continuation used for
    # teacher forcing (a single entry, " " + first reference answer, as MeZO).
    candidates: tuple[str, ...]
    label: int  # index of the candidate trained on
    correct: tuple[int, ...] = ()  # every candidate that counts as correct (ReCoRD); default (label,)
    answers: tuple[str, ...] = ()  # generation: reference answers for F1/EM

    def __post_init__(self):
        if not self.correct:
            object.__setattr__(self, "correct", (self.label,))
        if not 0 <= self.label < len(self.candidates):
            raise DataError(f"label index {self.label} outside {len(self.candidates)} candidates")

    def demonstration(self) -> str:
        """The prompt completed with its gold continuation (an in-context demonstration)."""
        return self.context + self.candidates[self.label]


@dataclass(frozen=True)
class Example:
    uid: str  # stable id within the task's files, e.g. "train:123"
    record: dict  # the flattened record (hashed into the split manifest)


@dataclass(frozen=True)
class OfflineLayout:
    """Which bundled files a task's pools come from, and why when it differs from MeZO's."""

    # "train+validation": train pool = train file, test pool = validation file (MeZO).
    # "validation": both pools from the validation file; the test sample is drawn first and the
    #               train pool is the rest, minus records sharing a `group_key` value with it.
    # None: not available offline; `reason` says why and how to enable it.
    pools: str | None = "train+validation"
    reason: str = ""


@dataclass(frozen=True)
class Task:
    name: str
    label: str  # display name
    kind: str  # one of KINDS
    metric: str  # "accuracy" | "f1"
    render: Callable[[dict], Prompt]
    hf_dataset: tuple[str, str | None]  # (path, config) of the Hugging Face dataset MeZO loads
    id_of: Callable[[dict], str]  # a flattened record's id
    normalise_hf: Callable[[dict], dict] | None = None  # HF row -> the offline record schema
    flatten: Callable[[dict], list[dict]] = lambda line: [line]
    num_dev: int = 500  # MeZO: 500 dev examples (100 for CB and COPA)
    offline: OfflineLayout = field(default_factory=OfflineLayout)
    group_key: str | None = None  # records sharing this field stay on one side of train/test
    # Rephrasing (MeZO+OAT-Rephrase): the text fields a rewriter may rewrite (everything else, the label
    # first, is copied unchanged), and, per field, strings the rewrite must keep word for word because
    # the label or the answer points at them (a WSC span, a SQuAD answer).
    rephrase_fields: tuple[str, ...] = ()
    rephrase_anchors: Callable[[dict], dict[str, list[str]]] = lambda record: {}

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name}: kind {self.kind!r} is not one of {KINDS}")

    @property
    def train_file(self) -> str:
        return f"{self.name}/train.jsonl"

    @property
    def test_file(self) -> str:
        """The split MeZO samples its test set from (the public validation split)."""
        return f"{self.name}/validation.jsonl"

    def example_id(self, split: str, record: dict, where: str) -> str:
        try:
            return f"{split}:{self.id_of(record)}"
        except (KeyError, TypeError) as e:
            raise DataError(f"{where}: record has no usable id ({e})") from None

    def prompt(self, example: Example) -> Prompt:
        return self.render(example.record)


def label_index(value, mapping: dict, where: str) -> int:
    """Map a file's label value to a candidate index, refusing values outside the label set.

    bool is a subclass of int in Python, so True would match a mapping keyed by 1: the check below
    refuses a bool where the task's labels are not bools (and an int where they are)."""
    keys_are_bool = all(isinstance(k, bool) for k in mapping)
    if isinstance(value, bool) != keys_are_bool:
        raise DataError(f"{where}: label {value!r} is not one of {sorted(mapping, key=str)}")
    try:
        return mapping[value]
    except (KeyError, TypeError):
        raise DataError(f"{where}: label {value!r} is not one of {sorted(mapping, key=str)}") from None


def premise_hypothesis_from_hf(row: dict, label_names: tuple[str, ...]) -> dict:
    """An HF super_glue RTE/CB row (ClassLabel int) as the SuperGLUE jsonl record (label by name)."""
    return {
        "premise": row["premise"],
        "hypothesis": row["hypothesis"],
        "label": label_names[row["label"]],
        "idx": row["idx"],
    }


YES_NO = ("Yes", "No")
