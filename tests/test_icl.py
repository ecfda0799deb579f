"""ICL: one demonstration set per evaluated example, drawn from the run's train split."""

from tests.conftest import DATA
from tests.helpers import make_run
from zoharness.data import load_split, make_split
from zoharness.io import read_json
from zoharness.methods import icl
from zoharness.tasks import get_task
from zoharness.train import train


def _split():
    return load_split(make_split("rte", DATA, seed=0, num_train=40, num_dev=5, num_test=6), DATA)


def test_each_example_gets_its_own_demonstrations_and_keeps_its_prompt():
    task, split = get_task("rte"), _split()
    params = icl.Params(num_demos=4)
    prompts = icl.eval_prompts(params, task, split.train, split.test, "test", seed=0)
    demos = {task.prompt(ex).demonstration() for ex in split.train}
    prefixes = []
    for p, ex in zip(prompts, split.test, strict=True):
        own = task.prompt(ex)
        assert p.context.endswith(own.context) and p.candidates == own.candidates and p.label == own.label
        shown = p.context[: -len(own.context)].split("\n\n")[:-1]
        assert len(shown) == 4 and set(shown) <= demos  # gold-labelled train prompts
        prefixes.append(tuple(shown))
    assert len(set(prefixes)) == len(prefixes)  # one demonstration set per example
    again = icl.eval_prompts(params, task, split.train, split.test, "test", seed=0)
    assert again == prompts  # a pure function of (seed, split, position)
    assert icl.eval_prompts(params, task, split.train, split.test, "test", seed=1) != prompts


def test_more_demos_than_train_examples_uses_them_all():
    assert len(icl.demonstration_indices(3, 32, 0, "dev", 0)) == 3


def test_icl_run_evaluates_without_training(tmp_path, model_refs):
    run_dir, split = make_run(
        tmp_path, "icl", {"num_demos": 3}, task="rte", eval={"batch_size": 4, "max_length": 512}
    )
    metrics = train(run_dir / "run_config.json", split, model_refs["llama"], run_dir, threads=1)
    assert metrics["steps"] == 0 and metrics["forward_passes"] == 0
    assert metrics["n_test"] == len(read_json(split)["splits"]["test"])
