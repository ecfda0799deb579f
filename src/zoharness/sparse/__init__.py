"""Sparse ZO over a frozen (4-bit) base: sensitivity masks, the base + sparse-delta linear layer.

Used by the sparse_zo_int4 method (SensZOQ, arXiv 2406.02913). Nothing here is imported at
Snakefile parse time; bitsandbytes is imported only when a 4-bit base is built.
"""

from pathlib import Path

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


def mask_name(density, selection: str) -> str:
    """A mask's file stem within its model/corpus folder (density as the suite or the wildcard spells it)."""
    return f"density~{density}-{selection}"


# Committed masks (a suite's `mask_cache: true`): resources/mask-cache/<model>/<corpus>/<stem>, the layout of
# resources/masks/. Only masks selected from a sensitivity pass are cached (a random mask costs nothing).
MASK_CACHE_DIR = Path("resources/mask-cache")


def cached_mask(
    model: str, corpus: str, density: str, selection: str, root: Path = MASK_CACHE_DIR
) -> Path | None:
    """The committed mask for these wildcards, or None (then the workflow runs the sensitivity pass)."""
    path = Path(root) / model / corpus / f"{mask_name(density, selection)}.safetensors"
    return path if path.exists() and path.with_suffix(".json").exists() else None


def mask_inputs(model: str, corpus: str, density: str, selection: str, use_cache: bool, masks: str) -> dict:
    """The mask rule's inputs: a committed mask (use_cache and one exists), else the sensitivity scores of
    `masks` (a resources/masks/{model}/{corpus} pattern); none for a random mask."""
    if corpus == "random":
        return {}
    cached = cached_mask(model, corpus, density, selection) if use_cache else None
    if cached is not None:
        return {"cached": str(cached)}
    return {"scores": f"{masks}/sensitivity.safetensors".format(model=model, corpus=corpus)}


def mask_source_args(inputs) -> str:
    """`zoharness mask`'s source option for those inputs (Snakemake's named input list: `in` would test
    its values, hence keys())."""
    import shlex

    names = set(inputs.keys())  # noqa: SIM118
    if "cached" in names:
        return f"--from-cache {shlex.quote(inputs.cached)}"
    return f"--sensitivity {shlex.quote(inputs.scores)}" if "scores" in names else ""
