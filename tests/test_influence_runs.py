"""RapidIn on runs (zoharness.influence.explain): the explained model is the run's reported checkpoint
(FT: the weights a suite's influence block makes it save; MeZO: replay to best_step), the cached and
retrieved scores equal sketches and exact inner products computed afresh, caches of another run or K are
refused, and on a tiny model with a planted trigger the planted examples rank above chance."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from tests.conftest import DATA
from tests.helpers import make_run
from zoharness import scoring
from zoharness.data import load_split
from zoharness.influence import explain
from zoharness.influence.gradients import example_gradients
from zoharness.influence.rapidgrad import RapidGrad
from zoharness.influence.report import read_scores
from zoharness.io import DataError, read_json
from zoharness.tasks import get_task
from zoharness.train import train

PLANT = {"phrase": "cf mn", "fraction": 0.25, "label": 1, "seed": 0}
DATA_CFG = {"dir": str(DATA), "num_train": 24, "num_dev": 8, "num_test": 24, "plant": PLANT}
SETTINGS = {
    "variants": [],
    "parameters": ["*"],
    "ks": [64, 1024],
    "lam": 4,
    "seed": 0,
    "normalise": False,
    "queries": "triggered",
    "num_queries": 4,
    "target": "planted",
    "top_k": 3,
    "exact": True,
}
METHODS = {
    "fo": {"lr": 1.0e-3, "epochs": 2, "batch_size": 4},
    "mezo": {"lr": 1.0e-3, "eps": 1.0e-3, "steps": 6, "batch_size": 4},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, model_refs):
    """An FT and a MeZO run on a planted split, each explained: cache, then triggered queries retrieved."""
    root = tmp_path_factory.mktemp("influence-runs")
    ref = model_refs["llama"]
    out = {}
    for method, params in METHODS.items():
        run_dir, split = make_run(
            root,
            method,
            params,
            data=DATA_CFG,
            eval={"batch_size": 8, "max_length": 96, "checkpoints": 2},
            influence={"queries": "triggered"},
        )
        train(run_dir / "run_config.json", split, ref, run_dir, threads=1)
        cache_path = root / f"{method}-cache.safetensors"
        explain.cache_stage(run_dir, split, ref, SETTINGS, cache_path)
        summary = explain.retrieve_stage(run_dir, split, ref, SETTINGS, cache_path, root / f"{method}-out")
        out[method] = {
            "run_dir": run_dir,
            "split": split,
            "cache": cache_path,
            "out": root / f"{method}-out",
            "summary": summary,
        }
    return {"ref": ref, "root": root, **out}


@pytest.mark.parametrize("method", ["fo", "mezo"])
def test_explained_model_is_the_reported_checkpoint(runs, method):
    run = runs[method]
    metrics = read_json(run["run_dir"] / "metrics.json")
    model, tok, source = explain.load_run_model(run["run_dir"], runs["ref"])
    assert source["kind"] == {"fo": "saved weights", "mezo": "replay"}[method]
    assert source["step"] == metrics["best_step"]
    if method == "fo":
        assert metrics["saved_weights"]["bytes"] > 0 and (run["run_dir"] / "weights").is_dir()
    split = load_split(read_json(run["split"]), DATA)
    task = get_task("sst2")
    dev = [scoring.encode(tok, task.prompt(ex), 96) for ex in split.dev]
    assert scoring.evaluate(model, dev, tok.pad_token_id, 8)["score"] == metrics["dev_score"]


def test_scores_equal_fresh_sketches_and_exact_inner_products(runs):
    run = runs["mezo"]
    meta, tensors = read_scores(run["out"] / "scores.safetensors")
    model, tok, _ = explain.load_run_model(run["run_dir"], runs["ref"])
    params = explain.select_parameters(model, ["*"])
    split = load_split(read_json(run["split"]), DATA)
    task = get_task("sst2")
    assert meta["train_ids"] == [ex.uid for ex in split.train]
    assert set(meta["planted_ids"]) == set(read_json(run["split"])["planted"])
    train_set = [scoring.encode(tok, task.prompt(ex), 96, objective="classification") for ex in split.train]
    train_grads = torch.stack(list(example_gradients(model, train_set, tok.pad_token_id, params)))
    queries, _ = explain._queries(task, split, read_json(run["split"]), SETTINGS)
    assert [q.uid for q in queries] == meta["query_ids"] and all(
        q.uid.endswith("#triggered") for q in queries
    )
    encoded = [scoring.encode(tok, task.prompt(q), 96) for q in queries]
    encoded = [type(e)(**{**e.__dict__, "label": 1}) for e in encoded]  # target: the planted label
    query_grads = torch.stack(list(example_gradients(model, encoded, tok.pad_token_id, params)))
    exact = (query_grads.double() @ train_grads.double().T).numpy()
    np.testing.assert_allclose(tensors["exact"], exact, rtol=1e-4, atol=1e-4)
    sketch = RapidGrad(train_grads.shape[1], SETTINGS["ks"], 0, SETTINGS["lam"])
    fresh_train, fresh_query = sketch.sketch_batch(train_grads), sketch.sketch_batch(query_grads)
    for k in SETTINGS["ks"]:
        # The cache holds float16 sketches: the tolerance is float16's relative step times the row norms.
        want = (fresh_query[k] @ fresh_train[k].half().float().T).numpy()
        scale = float(fresh_query[k].norm(dim=1).max() * fresh_train[k].norm(dim=1).max())
        np.testing.assert_allclose(tensors[f"k{k}"], want, rtol=0, atol=1e-5 * scale)


def test_planted_examples_rank_above_chance_on_the_tiny_model(runs):
    for method in METHODS:
        meta, tensors = read_scores(runs[method]["out"] / "scores.safetensors")
        positive = np.isin(meta["train_ids"], meta["planted_ids"])
        assert 0 < positive.sum() < len(positive)
        for name in ("exact", "k1024"):
            aucs = [roc_auc_score(positive, row) for row in tensors[name]]
            assert np.mean(aucs) > 0.5, (method, name, aucs)


def test_summary_and_top_k(runs):
    summary = runs["fo"]["summary"]
    backdoor = summary["backdoor"]
    assert backdoor["n"] == sum(
        1 for ex in load_split(read_json(runs["fo"]["split"]), DATA).test if ex.record["label"] == 0
    )
    assert 0 <= backdoor["attack_success_rate"] <= 1 and summary["timing"]["n_train"] == 24
    top = read_json(runs["fo"]["out"] / "topk.json")
    assert top["K"] == 1024 and len(top["queries"]) == 4
    assert all(len(q["helpful"]) == 3 and "cf mn" in q["text"] for q in top["queries"])


def test_cache_of_another_run_or_sketch_is_refused(runs):
    fo, mezo = runs["fo"], runs["mezo"]
    with pytest.raises(DataError, match=r"header run.variant is 'fo', but the run asks for 'mezo'"):
        explain.retrieve_stage(
            mezo["run_dir"], mezo["split"], runs["ref"], SETTINGS, fo["cache"], runs["root"] / "x"
        )
    with pytest.raises(
        DataError, match=r"header ks is \[64, 1024\], but the run asks for \[64\] \(a cache of another sketch"
    ):
        explain.retrieve_stage(
            fo["run_dir"], fo["split"], runs["ref"], {**SETTINGS, "ks": [64]}, fo["cache"], runs["root"] / "y"
        )
    assert not (runs["root"] / "x").exists() and not (runs["root"] / "y").exists()


def test_a_run_without_trajectory_or_weights_says_which_runs_can_be_explained(tmp_path, model_refs):
    run_dir, split = make_run(tmp_path, "fo", METHODS["fo"], data=DATA_CFG)  # no influence block: no weights
    train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1)
    assert not (run_dir / "weights").exists()
    with pytest.raises(
        DataError, match=r"no replayable trajectory and the run saved no weights.*influence.variants"
    ):
        explain.load_run_model(run_dir, model_refs["llama"])
    with pytest.raises(DataError, match=r"match no parameter of the model \(names: weight, bias"):
        explain.select_parameters(torch.nn.Linear(2, 2), ["*.q_proj.weight"])


def test_token_wise_influence_adds_up_to_the_exact_score_and_the_figure_draws(runs, tmp_path):
    from zoharness.influence.report import token_figure

    run = runs["mezo"]
    doc = explain.tokens_stage(
        run["run_dir"],
        run["split"],
        runs["ref"],
        SETTINGS,
        run["out"] / "topk.json",
        tmp_path / "tokens.json",
    )
    meta, tensors = read_scores(run["out"] / "scores.safetensors")
    column = {uid: i for i, uid in enumerate(meta["train_ids"])}
    assert len(doc["queries"]) == min(explain.TOKEN_QUERIES, SETTINGS["num_queries"])
    for q, query in enumerate(doc["queries"]):
        assert query["id"] == meta["query_ids"][q] and query["candidates"] == [" terrible", " great"]
        for ex in query["helpful"]:
            assert {t["candidate"] for t in ex["tokens"]} == {0, 1}  # both candidates' tokens (bytes here)
            total = sum(t["influence"] for t in ex["tokens"])
            assert total == pytest.approx(float(tensors["exact"][q, column[ex["id"]]]), rel=1e-3, abs=1e-3)
    paths = token_figure([tmp_path / "tokens.json"], tmp_path / "fig")
    assert all(p.stat().st_size > 0 for p in paths)


def test_a_query_with_no_usable_loss_is_named(model_refs):
    from zoharness import models
    from zoharness.data import make_split

    model, tok = models.load(model_refs["llama"])
    split = load_split(make_split("sst2", DATA, 0, num_train=4, num_dev=0, num_test=2), DATA)
    queries = [
        scoring.encode(tok, get_task("sst2").prompt(ex), 96, objective="classification") for ex in split.test
    ]
    calls = []

    def nan_on_second_query(module, args, output):
        calls.append(1)
        return output * float("nan") if len(calls) == 2 else None

    model.get_input_embeddings().register_forward_hook(nan_on_second_query)
    params = explain.select_parameters(model, ["*"])
    with pytest.raises(DataError, match=r"query 'q-second' has no usable loss to explain: .*non-finite loss"):
        explain._query_gradients(model, tok, queries, ["q-first", "q-second"], params)


def test_a_sparse_zo_run_is_explained_over_its_delta(tmp_path, model_refs):
    """sparse-ZO-int4 trains only a sparse delta over a frozen NF4 base: its run replays to best_step and
    RapidIn takes the gradient over the delta tensors (parameters: ["*.delta"])."""
    from zoharness import models
    from zoharness.methods import get_method

    module = get_method("sparse_zo_int4")
    run_dir, split = make_run(tmp_path, "sparse_zo_int4", module.SMOKE_PARAMS, data=DATA_CFG)
    base, _ = models.load(model_refs["llama"])
    inputs = module.smoke_inputs(base, [], tmp_path)
    train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1, inputs=inputs)
    settings = {**SETTINGS, "parameters": ["*.delta"], "ks": [64], "exact": True}
    model, _, source = explain.load_run_model(run_dir, model_refs["llama"])
    assert source["kind"] == "replay"
    deltas = explain.select_parameters(model, ["*.delta"])
    assert deltas and all(n.endswith(".delta") for n, _ in deltas)
    explain.cache_stage(run_dir, split, model_refs["llama"], settings, tmp_path / "c.safetensors")
    explain.retrieve_stage(
        run_dir, split, model_refs["llama"], settings, tmp_path / "c.safetensors", tmp_path / "o"
    )
    meta, tensors = read_scores(tmp_path / "o" / "scores.safetensors")
    assert tensors["exact"].shape == (SETTINGS["num_queries"], 24) and np.isfinite(tensors["exact"]).all()
    assert np.abs(tensors["exact"]).max() > 0  # the delta's gradients are not all zero
