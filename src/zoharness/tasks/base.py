"""What a task is: where its data lives, how a record becomes a prompt, its type and metric.

Prompts follow MeZO (Malladi et al. 2023, Table 14). A prompt is a context string plus either
candidate continuations (classification, multiple choice: each candidate is scored by the mean
log-likelihood of its tokens given the context) or reference answers (generation: greedy decoding,
scored by SQuAD-style F1/EM).

Masked LMs (RoBERTa, MeZO's Table 18 protocol) score a class by the MLM head's log-probability of its label
word at one mask token (LM-BFF; MeZO Table 13's templates): a task that supports them gives each Prompt a
`masked` form, built from a template with exactly one MASK_SLOT (`masked_prompt`).

Records: a data file's line may hold several examples (MultiRC: one passage with its questions and
answer options; ReCoRD: one passage with its queries). `flatten` turns a line into the records the
Hugging Face loaders produce (one per answer option / per query), so the offline snapshot and the
online datasets yield the same record schema.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from zoharness.io import DataError, iter_jsonl

CLASSIFICATION = "classification"
MULTIPLE_CHOICE = "multiple_choice"
GENERATION = "generation"
KINDS = (CLASSIFICATION, MULTIPLE_CHOICE, GENERATION)


MASK_SLOT = "[MASK]"  # where the mask token goes in a masked-LM template


@dataclass(frozen=True)
class MaskedPrompt:
    """A masked-LM prompt (LM-BFF): the text before and after the one mask token, and the label word of
    each class (in candidate order), each scored at the mask position. The pieces are tokenised apart
    (as LM-BFF's template parts) and joined with the tokenizer's cls/sep tokens around them."""

    before: str
    after: str
    words: tuple[str, ...]


def masked_prompt(task: str, template: str, words: tuple[str, ...], **fields: str) -> MaskedPrompt:
    """A MaskedPrompt from a template holding exactly one MASK_SLOT and {field} placeholders (the fields
    are substituted after the template is split at the slot, so a mask-like string in the data is text)."""
    n = template.count(MASK_SLOT)
    if n != 1:
        raise ValueError(
            f"task {task}: masked-LM template {template!r} has {n} {MASK_SLOT} slot(s); it needs exactly one"
        )
    before, after = template.split(MASK_SLOT)
    return MaskedPrompt(before.format(**fields), after.format(**fields), tuple(words))


@dataclass(frozen=True)
class Prompt:
    context: str
    # Classification / multiple choice: the options; generation: the gold continuation used for
    # teacher forcing (a single entry, " " + first reference answer, as MeZO).
    candidates: tuple[str, ...]
    label: int  # index of the candidate trained on
    correct: tuple[int, ...] = ()  # every candidate that counts as correct (ReCoRD); default (label,)
    answers: tuple[str, ...] = ()  # generation: reference answers for F1/EM
    masked: MaskedPrompt | None = None  # the masked-LM form (tasks with a Table 13 template)

    def __post_init__(self):
        if not self.correct:
            object.__setattr__(self, "correct", (self.label,))
        if not 0 <= self.label < len(self.candidates):
            raise DataError(f"label index {self.label} outside {len(self.candidates)} candidates")
        if self.masked is not None and len(self.masked.words) != len(self.candidates):
            raise DataError(
                f"{len(self.masked.words)} masked-LM label words for {len(self.candidates)} candidates"
            )

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
    # (path, config) of a hub copy of the dataset MeZO loads that current `datasets` reads without a loading
    # script (parquet or json; the source is cited next to each id and in docs/data.md)
    hf_dataset: tuple[str, str | None]
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
    # Whether render() gives every prompt a masked-LM form (Prompt.masked): masked LMs run only such tasks.
    masked_lm: bool = False
    # Data files. Offline: (train, test) under the data folder, default <name>/train.jsonl and
    # <name>/validation.jsonl (the public validation split is the test pool, as MeZO); a raw format needs
    # `read_file` (path -> (line number, record) pairs). Online: the Hugging Face splits read as the train and
    # test pools, saved as <name>/<split>.jsonl in the record schema (TREC and SST-5 test on `test`).
    offline_files: tuple[str, str] | None = None
    read_file: Callable[[Path], Iterator[tuple[int, dict]]] | None = None
    hf_splits: tuple[str, str] = ("train", "validation")
    # k-shot sampling (zoharness.kshot, LM-BFF's generate_k_shot_data.py): "glue" for tasks LM-BFF reads as
    # GLUE TSV lines (a capped test set is np.random shuffled), "csv" for its CSV tasks (pandas .sample).
    kshot_format: str = "glue"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name}: kind {self.kind!r} is not one of {KINDS}")
        if self.kshot_format not in ("glue", "csv"):
            raise ValueError(f"task {self.name}: kshot_format {self.kshot_format!r} is not glue or csv")

    def file(self, which: str, source: str = "offline") -> str:
        """The data file (relative to the source's folder) of the train or test pool."""
        index = {"train": 0, "test": 1}[which]
        if source == "online":
            return f"{self.name}/{self.hf_splits[index]}.jsonl"
        if self.offline_files is not None:
            return self.offline_files[index]
        return f"{self.name}/{('train', 'validation')[index]}.jsonl"

    def read(self, path: Path) -> Iterator[tuple[int, dict]]:
        """(line number, raw line record) of a data file: jsonl, or the task's own raw format."""
        if path.suffix == ".jsonl" or self.read_file is None:
            return iter_jsonl(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: data file not found")
        return self.read_file(path)

    @property
    def train_file(self) -> str:
        return self.file("train")

    @property
    def test_file(self) -> str:
        """The offline file MeZO samples its test set from (the public validation split by default)."""
        return self.file("test")

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
    """An HF aps/super_glue RTE/CB row (ClassLabel int) as the SuperGLUE jsonl record (label by name)."""
    return {
        "premise": row["premise"],
        "hypothesis": row["hypothesis"],
        "label": label_names[row["label"]],
        "idx": row["idx"],
    }


YES_NO = ("Yes", "No")
