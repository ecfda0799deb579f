"""Sparse ZO over a frozen (4-bit) base: sensitivity masks, the base + sparse-delta linear layer.

Used by the sparse_zo_int4 method (SensZOQ, arXiv 2406.02913). Nothing here is imported at
Snakefile parse time; bitsandbytes is imported only when a 4-bit base is built.
"""

# Names and checks shared with the method's Params (here, not in mask.py/layers.py, so validating a
# config does not import torch).
SELECTIONS = ("global", "per_matrix")
BASES = ("nf4", "fp4", "dense")


def check_density(density) -> float:
    if isinstance(density, bool) or not isinstance(density, int | float) or not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density!r}")
    return float(density)


def wiki_passage_files(data_dir) -> list[str]:
    """The bundled files the offline sensitivity corpus (`wiki-passages`) reads."""
    return [
        f"{data_dir}/squad/validation.jsonl",
        f"{data_dir}/multirc/train.jsonl",
        f"{data_dir}/multirc/validation.jsonl",
    ]


def corpus_task(corpus: str) -> str | None:
    """The task of a task-gradient corpus name (task-<task>-<suite>); None for the other corpora."""
    import re

    match = re.fullmatch(r"task-([a-z0-9]+)-.+", corpus)
    return match.group(1) if match else None


def sensitivity_inputs(corpus: str, bundled_dir: str, split_of_task) -> dict:
    """The files a sensitivity job reads: the task's split for a task-gradient corpus (task-<task>-<suite>),
    the bundled paragraphs for wiki-passages, nothing local for c4 (it streams)."""
    task = corpus_task(corpus)
    if task:
        return {"split": split_of_task(task)}
    if corpus == "wiki-passages":
        return {"data": wiki_passage_files(bundled_dir)}
    return {}
