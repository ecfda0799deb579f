"""sparse-ZO-int4: mask selection and stats, the frozen 4-bit base, ZO on the masked entries only,
replay, bad input, and ablations as distinct runs."""

import math
import sys

import pytest
import torch

from tests.helpers import make_run, suite
from zoharness import models, scoring
from zoharness.config import ConfigError, run_spec
from zoharness.io import BackendUnavailableError, DataError, read_json, sha256_file
from zoharness.methods import get_method
from zoharness.methods.sparse_zo_int4 import Params, mask_stem
from zoharness.sparse import calibration, layers, mask, pipeline
from zoharness.tasks import get_task
from zoharness.trainlog import without_timings

SCORES = {
    "a.weight": torch.tensor([[0.1, 5.0], [3.0, 0.0]]),
    "b.weight": torch.tensor([[4.0, 0.2, 0.3, 1.0]]),
}
SHAPES = {"a.weight": [2, 2], "b.weight": [1, 4]}


def test_global_top_k_on_a_hand_made_gradient():
    got = mask.select(SCORES, density=3 / 8, selection="global")
    assert got["a.weight"].tolist() == [1, 2]  # 5.0 and 3.0
    assert got["b.weight"].tolist() == [0]  # 4.0


def test_per_matrix_top_k_takes_a_share_of_every_matrix():
    got = mask.select(SCORES, density=0.5, selection="per_matrix")
    assert got["a.weight"].tolist() == [1, 2]
    assert got["b.weight"].tolist() == [0, 3]
    # at least one entry per matrix, even when density · numel rounds to zero
    tiny = mask.select(SCORES, density=0.01, selection="per_matrix")
    assert [t.numel() for t in tiny.values()] == [1, 1]


def test_ties_go_to_the_lowest_indices():
    scores = {"w": torch.tensor([1.0, 2.0, 2.0, 2.0, 0.5])}
    assert mask.select(scores, density=0.4)["w"].tolist() == [1, 2]


def test_mask_stats_density_coverage_and_counts():
    idx = mask.select(SCORES, density=3 / 8)
    s = mask.stats(idx, SHAPES, SCORES)
    assert s["selected"] == 3 and s["eligible_parameters"] == 8 and s["density"] == 3 / 8
    assert s["score_mass_coverage"] == pytest.approx(12.0 / 13.6)
    assert s["per_matrix"]["a.weight"] == {"selected": 2, "numel": 4, "fraction": 0.5}
    assert s["per_kind"]["a"] == {"selected": 2, "numel": 4}
    assert mask.stats(idx, SHAPES, None)["score_mass_coverage"] is None


def test_random_mask_is_uniform_and_seeded():
    shapes = {"w.weight": [100, 100]}
    a = mask.select(mask.random_scores(shapes, 0), 0.01)["w.weight"]
    b = mask.select(mask.random_scores(shapes, 0), 0.01)["w.weight"]
    assert torch.equal(a, b) and a.numel() == 100
    assert not torch.equal(a, mask.select(mask.random_scores(shapes, 1), 0.01)["w.weight"])


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, "0.1", True])
def test_density_outside_0_1_is_refused_quoting_the_value(bad):
    with pytest.raises(ValueError, match=f"density must be in \\(0, 1\\], got {bad!r}"):
        mask.check_density(bad)
    with pytest.raises(ValueError, match=f"sparse_zo_int4.density must be in \\(0, 1\\], got {bad!r}"):
        Params(density=bad)


def test_density_error_from_a_suite_config():
    with pytest.raises(ConfigError, match=r"sparse_zo_int4.density must be in \(0, 1\], got 2"):
        suite({"s": {"method": "sparse_zo_int4", "params": {"density": 2}}})


def test_squared_gradients_are_the_per_sequence_empirical_fisher(tiny):
    model, _ = tiny
    seqs = [torch.randint(0, 200, (12,), generator=torch.Generator().manual_seed(i)) for i in range(2)]
    scores, info = calibration.squared_gradients(model, calibration.lm_losses(model, seqs, "cpu"))
    assert info["backward_passes"] == 2
    name = "model.layers.0.mlp.up_proj.weight"
    w = dict(model.named_parameters())[name]
    expected = torch.zeros_like(w)
    for s in seqs:
        w.requires_grad_(True)
        (g,) = torch.autograd.grad(model(input_ids=s[None], labels=s[None]).loss, w)
        expected += g.square()
    torch.testing.assert_close(scores[name], expected, rtol=1e-5, atol=1e-12)
    assert "lm_head.weight" not in scores and "model.embed_tokens.weight" not in scores


def _tiny_mask(model, path, density=0.05, seed=0):
    shapes = mask.eligible_shapes(model)
    idx = mask.select(mask.random_scores(shapes, seed), density)
    mask.save(path, idx, shapes, {"corpus": "random", "score_mass_coverage": None})
    return path


def test_mask_built_for_another_shape_is_refused_naming_both(tmp_path, model_refs):
    llama, _ = models.load(model_refs["llama"])
    path = _tiny_mask(llama, tmp_path / "m.safetensors")
    shapes = mask.eligible_shapes(llama)
    shapes["model.layers.0.mlp.up_proj.weight"] = [64, 64]
    idx, _ = mask.load(path)
    mask.save(tmp_path / "bad.safetensors", idx, shapes, {})
    with pytest.raises(
        mask.MaskMismatchError, match=r"up_proj.weight of shape \[64, 64\], this model's is \[128, 64\]"
    ):
        mask.load(tmp_path / "bad.safetensors", llama)
    opt, _ = models.load(model_refs["opt"])
    with pytest.raises(mask.MaskMismatchError, match="built for another model"):
        mask.load(path, opt)


def test_missing_bitsandbytes_is_a_clear_error_not_a_dense_fallback(tiny, tmp_path, monkeypatch):
    model, _ = tiny
    path = _tiny_mask(model, tmp_path / "m.safetensors")
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    monkeypatch.setitem(sys.modules, "bitsandbytes.functional", None)
    with pytest.raises(BackendUnavailableError, match="needs bitsandbytes .* no silent fall-back"):
        get_method("sparse_zo_int4").build(model, Params(), 0, mask=str(path))


def _batches(tok, split, n, size=4):
    from tests.conftest import DATA
    from zoharness.data import load_split

    task = get_task("sst2")
    enc = [scoring.encode(tok, task.prompt(e), 96) for e in load_split(split, DATA).train]
    return [scoring.collate(enc[size * i : size * i + size], tok.pad_token_id) for i in range(n)]


@pytest.mark.parametrize("base", ["nf4", "fp4", "dense"])
def test_training_moves_only_masked_entries_and_never_the_frozen_base(tiny, small_split, tmp_path, base):
    model, tok = tiny
    path = _tiny_mask(model, tmp_path / "m.safetensors")
    indices, _ = mask.load(path)
    impl = get_method("sparse_zo_int4").build(model, Params(lr=1.0, eps=1e-2, base=base), 3, mask=str(path))
    sparse = {n: m for n, m in model.named_modules() if isinstance(m, layers.SparseDeltaLinear)}
    frozen = {
        n: (m.codes.clone(), m.quant_state.absmax.clone()) if base != "dense" else (m.weight.clone(),)
        for n, m in sparse.items()
    }
    others = {n: p.detach().clone() for n, p in model.named_parameters() if not n.endswith(".delta")}
    before = {n: m.effective_weight() for n, m in sparse.items()}
    for i, batch in enumerate(_batches(tok, small_split, 4)):
        impl.step(batch, i)
    moved = 0
    for name, m in sparse.items():
        after_frozen = (m.codes, m.quant_state.absmax) if base != "dense" else (m.weight,)
        for a, b in zip(frozen[name], after_frozen, strict=True):
            assert a.dtype == b.dtype and torch.equal(a, b), f"{name}: frozen base changed"
        changed = (m.effective_weight() != before[name]).flatten().nonzero().flatten()
        assert set(changed.tolist()) <= set(indices[f"{name}.weight"].tolist()), name
        moved += changed.numel()
    assert moved > 0
    for n, p in model.named_parameters():
        if not n.endswith(".delta"):
            assert torch.equal(p, others[n]), f"{n} moved"


def test_sensitive_entries_start_at_their_unquantized_values(tiny, tmp_path):
    model, _ = tiny
    original = {n: p.detach().clone() for n, p in model.named_parameters()}
    path = _tiny_mask(model, tmp_path / "m.safetensors", density=0.2)
    indices, _ = mask.load(path)
    layers.sparsify(model, indices, "nf4")
    m = model.get_submodule("model.layers.1.mlp.down_proj")
    idx = indices["model.layers.1.mlp.down_proj.weight"]
    w0 = original["model.layers.1.mlp.down_proj.weight"].flatten()
    eff = m.effective_weight().flatten()
    torch.testing.assert_close(eff[idx], w0[idx], rtol=0, atol=1e-7)
    rest = torch.ones_like(w0, dtype=torch.bool)
    rest[idx] = False
    assert (eff[rest] != w0[rest]).float().mean() > 0.5  # the others carry 4-bit rounding


def test_memory_accounting_by_component(tiny, tmp_path):
    model, _ = tiny
    path = _tiny_mask(model, tmp_path / "m.safetensors")
    indices, _ = mask.load(path)
    n_eligible = sum(math.prod(s) for s in mask.eligible_shapes(model).values())
    k = sum(i.numel() for i in indices.values())
    layers.sparsify(model, indices, "nf4", blocksize=64)
    mem = layers.memory_by_component(model)
    # 4 bits per entry + one float32 absmax per 64-entry block (+ the 16-value code book per layer)
    assert mem["base"] == n_eligible // 2 + 4 * n_eligible // 64 + 7 * 2 * 16 * 4
    assert mem["delta_values"] == 4 * k and mem["delta_indices"] == 8 * k
    assert mem["frozen_other"] > 0


def _sparse_run(tmp_path, model_refs, params=None):
    from zoharness.train import train

    llama, _ = models.load(model_refs["llama"])
    path = _tiny_mask(llama, tmp_path / "mask.safetensors")
    run_dir, split = make_run(
        tmp_path, "sparse_zo_int4", {"lr": 1.0, "eps": 1e-2, "steps": 4, "batch_size": 4, **(params or {})}
    )
    metrics = train(
        run_dir / "run_config.json", split, model_refs["llama"], run_dir, inputs={"mask": str(path)}
    )
    return run_dir, split, metrics, path


def test_run_records_memory_by_component_and_replays_bit_for_bit(tmp_path, model_refs):
    from zoharness.replay import replay_run

    run_dir, split, metrics, path = _sparse_run(tmp_path, model_refs)
    for key in (
        "memory_base_bytes",
        "memory_delta_values_bytes",
        "memory_delta_indices_bytes",
        "memory_frozen_other_bytes",
        "train_peak_bytes",
        "peak_rss_bytes",
    ):
        assert metrics[key] > 0, key
    # a tiny model's activations may fit in memory the allocator already holds: >= 0, not > 0
    assert metrics["train_transient_peak_bytes"] >= 0 and metrics["train_memory_measure"] == "cpu_rss"
    assert metrics["sparse_base"] == "nf4" and metrics["forward_passes"] == 8
    model = replay_run(run_dir, model_refs["llama"], out_dir=tmp_path / "replayed")
    assert (tmp_path / "replayed" / "sparse_delta.safetensors").exists()
    twice = replay_run(run_dir, model_refs["llama"])
    deltas = {n: p for n, p in model.named_parameters() if n.endswith(".delta")}
    assert deltas and all(torch.equal(p, dict(twice.named_parameters())[n]) for n, p in deltas.items())
    # the replayed model scores exactly as the run did
    from zoharness.data import load_split

    _, tok = models.load(model_refs["llama"])
    examples = load_split(read_json(split), read_json(run_dir / "run_config.json")["data"]["dir"]).test
    enc = [scoring.encode(tok, get_task("sst2").prompt(e), 96) for e in examples]
    assert scoring.evaluate(model, enc, tok.pad_token_id, 8)["accuracy"] == metrics["test_accuracy"]


def test_run_without_its_mask_input_is_refused(tmp_path, model_refs):
    from zoharness.train import train

    run_dir, split = make_run(tmp_path, "sparse_zo_int4", {"steps": 1})
    with pytest.raises(DataError, match=r"needs input file\(s\) \['mask'\]"):
        train(run_dir / "run_config.json", split, model_refs["llama"], run_dir)


def test_mask_pipeline_end_to_end_on_a_tiny_model(tmp_path, model_refs):
    from tests.conftest import DATA

    scores = tmp_path / "sensitivity.safetensors"
    info = pipeline.sensitivity(str(model_refs["llama"]), "wiki-passages", str(scores), data_dir=str(DATA))
    assert info["sequences"] == calibration.NUM_SEQUENCES and info["wall_time_s"] > 0
    stats = pipeline.build_mask(
        str(model_refs["llama"]),
        "wiki-passages",
        1e-2,
        "global",
        str(tmp_path / "m.safetensors"),
        str(scores),
    )
    assert stats["selected"] == round(1e-2 * stats["eligible_parameters"])
    assert 1e-2 < stats["score_mass_coverage"] <= 1
    assert read_json(tmp_path / "m.json")["selection_time_s"] >= 0
    llama, _ = models.load(model_refs["llama"])
    mask.load(tmp_path / "m.safetensors", llama)  # fits the model it was built for
    from zoharness.sparse.reports import write_mask_table

    df = write_mask_table([tmp_path / "m.json"], tmp_path / "masks.csv", tmp_path / "masks.md")
    assert df.loc[0, "selected"] == stats["selected"] and df.loc[0, "corpus"] == "wiki-passages"
    assert f"{100 * stats['score_mass_coverage']:.1f}%" in (tmp_path / "masks.md").read_text()


ABLATIONS = {
    "sparse": {"method": "sparse_zo_int4"},
    "sparse_random": {"method": "sparse_zo_int4", "params": {"mask": "random"}},
    "sparse_task": {"method": "sparse_zo_int4", "params": {"mask": "task"}},
    "sparse_d1e-4": {"method": "sparse_zo_int4", "params": {"density": 1e-4}},
    "sparse_d1e-2": {"method": "sparse_zo_int4", "params": {"density": 1e-2}},
    "sparse_dense_base": {"method": "sparse_zo_int4", "params": {"base": "dense"}},
    "mezo": {},
}


def test_ablation_configs_resolve_to_distinct_runs_and_masks():
    cfg = suite(ABLATIONS)
    specs = [run_spec(cfg, "tiny-llama", "sst2", m, 0) for m in ABLATIONS]
    assert len({repr(sorted(s["params"].items())) for s in specs}) == len(ABLATIONS)
    stems = {
        m: mask_stem(Params(**cfg["variants"][m]["params"]), "tiny-llama", "sst2", "t")
        for m in ABLATIONS
        if m != "mezo"
    }
    assert (
        stems["sparse"]
        == stems["sparse_dense_base"]
        == "resources/masks/tiny-llama/wiki-passages/density~0.001-global"
    )
    assert stems["sparse_task"] == "resources/masks/tiny-llama/task-sst2-t/density~0.001-global"
    assert len(set(stems.values())) == len(stems) - 1  # only the dense-base ablation shares its mask


def test_resume_after_kill_equals_uninterrupted(tmp_path, model_refs, capsys):
    from zoharness.train import read_train_log, train

    full_dir, _, full, mask_path = _sparse_run(tmp_path / "full", model_refs)
    run_dir, split = make_run(
        tmp_path / "killed", "sparse_zo_int4", {"lr": 1.0, "eps": 1e-2, "steps": 4, "batch_size": 4}
    )
    args = (run_dir / "run_config.json", split, model_refs["llama"], run_dir)
    assert train(*args, inputs={"mask": str(mask_path)}, stop_after=2) is None
    resumed = train(*args, inputs={"mask": str(mask_path)})
    assert "resumed from" in capsys.readouterr().err
    assert resumed["test_accuracy"] == full["test_accuracy"]
    strip = [without_timings(r) for r in read_train_log(full_dir / "train_log.jsonl")[1]]
    assert strip == [without_timings(r) for r in read_train_log(run_dir / "train_log.jsonl")[1]]
    # the header records the mask's hash, so a log made with another mask is not resumed
    header, _ = read_train_log(run_dir / "train_log.jsonl")
    assert header["inputs"]["mask"]["sha256"] == sha256_file(mask_path)


def test_mask_file_is_byte_reproducible(tmp_path, model_refs):
    """Timings live in the stats .json, not in the mask, so rebuilding a mask gives the same bytes."""
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    for out in (a, b):
        pipeline.build_mask(str(model_refs["llama"]), "random", 1e-2, "global", str(out))
    assert a.read_bytes() == b.read_bytes()
    assert read_json(tmp_path / "a.json")["selection_time_s"] >= 0


@pytest.fixture(scope="module")
def committed_mask(tmp_path_factory, model_refs):
    """A mask built from a real (tiny) sensitivity pass, laid out as resources/mask-cache/ holds one."""
    from tests.conftest import DATA
    from zoharness.sparse import cached_mask

    root = tmp_path_factory.mktemp("mask-cache")
    scores = root / "scores" / "sensitivity.safetensors"
    pipeline.sensitivity(str(model_refs["llama"]), "wiki-passages", str(scores), data_dir=str(DATA))
    out = root / "tiny-llama" / "wiki-passages" / "density~0.01-global.safetensors"
    pipeline.build_mask(str(model_refs["llama"]), "wiki-passages", 1e-2, "global", str(out), str(scores))
    assert cached_mask("tiny-llama", "wiki-passages", "0.01", "global", root) == out
    assert cached_mask("tiny-llama", "wiki-passages", "0.02", "global", root) is None
    return out


def _install(model_ref, cached, out, density=1e-2):
    return pipeline.copy_cached_mask(
        str(model_ref), "wiki-passages", density, "global", str(cached), str(out)
    )


def test_a_committed_mask_is_installed_byte_for_byte_and_says_so(committed_mask, model_refs, tmp_path):
    out = tmp_path / "masks" / "m.safetensors"
    stats = _install(model_refs["llama"], committed_mask, out)
    assert out.read_bytes() == committed_mask.read_bytes()
    assert stats["from_cache"] == str(committed_mask) and read_json(tmp_path / "masks" / "m.json") == stats
    assert stats["calibration_version"] == calibration.CALIBRATION_VERSION
    llama, _ = models.load(model_refs["llama"])
    mask.load(out, llama)  # fits the model it was built for
    assert not list((tmp_path / "masks").glob(".*tmp"))


def test_a_committed_mask_for_other_weights_or_settings_is_refused(committed_mask, model_refs, tmp_path):
    out = tmp_path / "m.safetensors"
    with pytest.raises(
        DataError, match=r"density~0.01-global.safetensors: .*model_ref_sha256=.*make mask-cache"
    ):
        _install(model_refs["opt"], committed_mask, out)
    with pytest.raises(DataError, match=r"density_requested=0.01, this run needs 0.02"):
        _install(model_refs["llama"], committed_mask, out, density=2e-2)
    assert not out.exists()  # nothing installed


def test_a_committed_mask_from_another_calibration_or_with_other_bytes_is_refused(
    committed_mask, model_refs, tmp_path, monkeypatch
):
    out = tmp_path / "m.safetensors"
    monkeypatch.setattr(calibration, "CALIBRATION_VERSION", calibration.CALIBRATION_VERSION + 1)
    with pytest.raises(DataError, match="calibration_version=1, this run needs 2"):
        _install(model_refs["llama"], committed_mask, out)
    monkeypatch.undo()
    edited = tmp_path / "cache" / committed_mask.name
    edited.parent.mkdir()
    edited.write_bytes(committed_mask.read_bytes()[:-4] + b"\0\0\0\0")
    edited.with_suffix(".json").write_text(committed_mask.with_suffix(".json").read_text())
    with pytest.raises(
        DataError, match=r"its bytes \(sha256 [0-9a-f]{64}\) are not the ones its .json records"
    ):
        _install(model_refs["llama"], edited, out)
    assert not out.exists()
