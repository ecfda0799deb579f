"""The two cached steps behind a mask: sensitivity scores per (model, corpus), then a mask per
(density, selection). Called by `zoharness sensitivity` / `zoharness mask` (rules/methods/sparse_zo_int4.smk)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch

from zoharness import models, profiling
from zoharness.io import DataError, atomic_open, read_json, sha256_file, write_json_atomic
from zoharness.provenance import cpu_capability
from zoharness.sparse import calibration, corpus_task, mask

RANDOM_MASK_SEED = 0


def _device(name: str) -> torch.device:
    from zoharness.devices import pick_device

    return pick_device(name)


def sensitivity(
    model_ref: str,
    corpus: str,
    out: str,
    data_dir: str | None = None,
    split: str | None = None,
    device: str = "cpu",
) -> dict:
    """Squared gradients of every eligible weight on the corpus; writes `out` (.safetensors) and its .json."""
    from safetensors.torch import save_file

    start = time.perf_counter()
    dev = _device(device)
    start_mem = profiling.train_phase_start(dev)
    model, tokenizer = models.load(model_ref, "float32", dev)
    info = {"corpus": corpus, "calibration_version": calibration.CALIBRATION_VERSION}
    task_name = corpus_task(corpus)
    if task_name:
        if split is None:
            raise DataError(f"corpus {corpus!r} (a task-gradient mask) needs --split")
        from zoharness import scoring
        from zoharness.data import load_split
        from zoharness.tasks import get_task

        task = get_task(task_name)
        manifest = read_json(split)
        examples = load_split(manifest, data_dir, split).train[: calibration.NUM_SEQUENCES]
        objective = scoring.objective_for(task.kind)
        encoded = [scoring.encode(tokenizer, task.prompt(ex), 1024, objective=objective) for ex in examples]
        losses = calibration.task_losses(model, encoded, tokenizer.pad_token_id, dev)
        info.update(
            task=task.name,
            split=str(split),
            split_sha256=sha256_file(split),
            examples=len(encoded),
            loss="the task's training objective (scoring.loss), one example per backward",
        )
    elif corpus in calibration.GENERIC_CORPORA:
        if corpus == "wiki-passages":
            if data_dir is None:
                raise DataError("corpus 'wiki-passages' needs --data-dir (the bundled data)")
            texts = calibration.wiki_passages(data_dir)
        else:
            texts = calibration.c4_texts()
        seqs = calibration.lm_sequences(
            tokenizer, texts, calibration.NUM_SEQUENCES, calibration.SEQUENCE_LENGTH, calibration.CORPUS_SEED
        )
        losses = calibration.lm_losses(model, seqs, dev)
        info.update(
            texts=len(texts),
            sequences=len(seqs),
            sequence_length=calibration.SEQUENCE_LENGTH,
            tokens=sum(len(s) for s in seqs),
            seed=calibration.CORPUS_SEED,
            loss="causal-LM loss, one sequence per backward",
        )
    else:
        raise ValueError(
            f"unknown sensitivity corpus {corpus!r}: use wiki-passages, c4 or task-<task>-<suite>"
        )
    scores, run = calibration.squared_gradients(model, losses)
    shapes = mask.eligible_shapes(model)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    save_file({n: s.cpu().contiguous() for n, s in scores.items()}, str(tmp), metadata={"corpus": corpus})
    tmp.replace(out)
    info.update(
        run,
        model_ref_sha256=sha256_file(model_ref),
        eligible="weight of every nn.Linear except the output head",
        shapes=shapes,
        wall_time_s=time.perf_counter() - start,
        device=str(dev),
        cpu_capability=cpu_capability(),
        **{
            f"sensitivity_{k.removeprefix('train_')}": v
            for k, v in profiling.train_phase_peaks(dev, start_mem).items()
        },
        peak_rss_bytes=profiling.peak_rss_bytes(),
    )
    write_json_atomic(out.with_suffix(".json"), info)
    return info


def build_mask(
    model_ref: str, corpus: str, density: float, selection: str, out: str, sensitivity_path: str | None = None
) -> dict:
    """Select the mask from cached scores (or uniform random ones); writes `out` and its .json stats."""
    from safetensors.torch import load_file

    density, selection = mask.check_density(density), mask.check_selection(selection)
    start = time.perf_counter()
    if corpus == "random":
        model, _ = models.load(model_ref, "float32", "cpu")
        shapes = mask.eligible_shapes(model)
        del model
        scores = mask.random_scores(shapes, RANDOM_MASK_SEED)
        source, cost = {"random_seed": RANDOM_MASK_SEED}, {}
        coverage_scores = None
    else:
        if sensitivity_path is None:
            raise DataError(f"corpus {corpus!r} needs --sensitivity (the scores file)")
        scores = load_file(sensitivity_path)
        source_info = read_json(Path(sensitivity_path).with_suffix(".json"))
        shapes = source_info["shapes"]
        source = {"sensitivity": str(sensitivity_path), "sensitivity_sha256": sha256_file(sensitivity_path)}
        # what the sensitivity step cost: in the stats only, so the mask file itself is byte-reproducible
        cost = {
            "calibration_version": source_info.get("calibration_version"),
            # the pass's rounding depends on the vector ISA (AVX2 and AVX-512 hosts select different masks)
            "sensitivity_cpu_capability": source_info.get("cpu_capability"),
            "sensitivity_time_s": source_info["wall_time_s"],
            "sensitivity_process_peak_rss_bytes": source_info.get("peak_rss_bytes"),
            **{k: v for k, v in source_info.items() if k.startswith("sensitivity_")},
        }
        coverage_scores = scores
    indices = mask.select(scores, density, selection)
    stats = mask.stats(indices, shapes, coverage_scores)
    meta = {
        "corpus": corpus,
        "density_requested": density,
        "selection": selection,
        "score_mass_coverage": stats["score_mass_coverage"],
        **source,
    }
    mask.save(out, indices, shapes, meta)
    stats = {
        **meta,
        **cost,
        **stats,
        "selection_time_s": time.perf_counter() - start,
        "index_bytes_on_disk_int32": 4 * stats["selected"],
        "model_ref_sha256": sha256_file(model_ref),
        "mask_sha256": sha256_file(out),
    }
    write_json_atomic(Path(out).with_suffix(".json"), stats)
    return stats


def copy_cached_mask(
    model_ref: str, corpus: str, density: float, selection: str, cached: str, out: str
) -> dict:
    """Install a committed mask as `out` after checking it was built for this model, corpus, density,
    selection and calibration; its stats gain `from_cache`. Refuses, naming the file and the field, when
    anything differs: a mask silently taken for another model would train the wrong entries."""
    cached = Path(cached)
    stats = read_json(cached.with_suffix(".json"))
    expected = {
        "model_ref_sha256": sha256_file(model_ref),
        "corpus": corpus,
        "density_requested": mask.check_density(density),
        "selection": mask.check_selection(selection),
        "calibration_version": calibration.CALIBRATION_VERSION,
    }
    for key, want in expected.items():
        if stats.get(key) != want:
            raise DataError(
                f"{cached}: the committed mask has {key}={stats.get(key)!r}, this run needs {want!r} "
                f"({model_ref}); rebuild the cache with `make mask-cache`, or set `mask_cache: false` in the "
                "suite to compute the mask"
            )
    data = cached.read_bytes()  # hashed and installed from one read
    digest = hashlib.sha256(data).hexdigest()
    if stats.get("mask_sha256") != digest:
        raise DataError(
            f"{cached}: its bytes (sha256 {digest}) are not the ones its .json records "
            f"({stats.get('mask_sha256')}); rebuild the cache with `make mask-cache`"
        )
    mask.load(cached)  # the format check
    with atomic_open(out, "wb") as f:
        f.write(data)
    stats = {**stats, "from_cache": str(cached)}
    write_json_atomic(Path(out).with_suffix(".json"), stats)
    return stats
