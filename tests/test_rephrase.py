"""MeZO+OAT-Rephrase's data stage without a server: prompt rendering per task, the local checks on a
rewrite and a verdict, the response cache, rewriter settings, and reading a rephrased train set.
(The same pipeline against a real server on loopback: tests/test_rephrase_server.py.)"""

import json
import os
import re

import pytest

from tests.conftest import DATA, ROOT
from tests.helpers import JSONHandler, serve
from zoharness.config import ConfigError, validate
from zoharness.io import DataError, dumps, sha256_json
from zoharness.rephrase import prompts as P
from zoharness.rephrase.cache import ResponseCache, request_key
from zoharness.rephrase.pipeline import check_rewrite, check_verdict, load_rephrased, summary
from zoharness.rephrase.settings import PROMPTS_DIR, RewriterConfigError, resolve
from zoharness.tasks import get_task, task_ids
from zoharness.tasks.base import Example

DROP_RECORD = {
    "passage": "The Bears scored 7 points in the first quarter and 10 in the second.",
    "question": "How many points did the Bears score in the first half?",
    "answers": ["17"],
    "id": "d1",
}


# SNLI and MNLI are online only: a hand-written record in their schema.
NLI_RECORD = {
    "premise": "A man plays a guitar on stage.",
    "hypothesis": "A man is playing music.",
    "label": "entailment",
    "idx": 0,
}
HAND_WRITTEN = {"drop": DROP_RECORD, "snli": NLI_RECORD, "mnli": NLI_RECORD}


def sample_record(name: str) -> dict:
    """The first record of the task's bundled file (DROP, SNLI and MNLI have none offline: hand-written ones)."""
    from zoharness.data import read_examples

    if name in HAND_WRITTEN:
        return HAND_WRITTEN[name]
    task = get_task(name)
    which = "train" if (DATA / task.train_file).exists() else "test"
    return read_examples(task, DATA, which)[0].record


@pytest.fixture(scope="module")
def prompts():
    return P.PromptSet.load(PROMPTS_DIR / "v1")


@pytest.mark.parametrize("name", task_ids())
def test_rewrite_prompt_renders_every_task(prompts, name):
    task, record = get_task(name), sample_record(name)
    assert task.rephrase_fields and all(isinstance(record[f], str) for f in task.rephrase_fields)
    oat = P.rewrite_messages(prompts, "oat", task, record)
    generic = P.rewrite_messages(prompts, "generic", task, record)
    assert [m["role"] for m in oat] == ["system", "user"]
    assert "MeZO" in oat[0]["content"] and "MeZO" not in generic[0]["content"]  # the ablation's only change
    assert oat[1] == generic[1]
    user = oat[1]["content"]
    assert task.label in user and prompts.instruction(task) in user
    assert f'"{P.gold_answer(task, record)}"' in user
    for f in task.rephrase_fields:
        assert f"{f}: {json.dumps(record[f], ensure_ascii=False)}" in user  # each field, verbatim
    skeleton = json.loads(user.rsplit("Reply as JSON: ", 1)[1])
    assert list(skeleton) == list(task.rephrase_fields)
    assert not re.search(r"\{[a-z_]+\}", user.replace(json.dumps(skeleton, ensure_ascii=False), ""))
    schema = P.rewrite_schema(task)
    assert schema["required"] == list(task.rephrase_fields) and schema["additionalProperties"] is False


@pytest.mark.parametrize("name", task_ids())
def test_judge_prompt_renders_every_task(prompts, name):
    task, record = get_task(name), sample_record(name)
    rewrite = {f: "REWRITTEN " + record[f] for f in task.rephrase_fields}
    system, user = P.judge_messages(prompts, task, record, rewrite)
    assert '"verdict"' in system["content"]
    assert json.dumps(rewrite, ensure_ascii=False, indent=1) in user["content"]
    assert json.dumps(P.rephrase_fields(task, record), ensure_ascii=False, indent=1) in user["content"]
    assert P.gold_answer(task, record) in user["content"]


def test_every_task_has_an_instruction(prompts):
    assert set(prompts.instructions) == set(task_ids())


SST2 = get_task("sst2")
NEG = {"sentence": "a dull , lifeless film ", "label": 0, "idx": 1}


@pytest.mark.parametrize(
    "reply, finish, problem",
    [
        ("{not json", "stop", "malformed: not JSON"),
        ('["a list"]', "stop", "malformed: a JSON list"),
        ('{"sentence": "a dull and', "length", "malformed: cut off"),
        ("{}", "stop", "invalid: dropped field(s) ['sentence']"),
        (
            '{"sentence": "A dull film with no life.", "label": 1}',
            "stop",
            "invalid: changed fixed field 'label'",
        ),
        (
            '{"sentence": "A dull film with no life.", "mood": "sad"}',
            "stop",
            "invalid: unexpected field 'mood'",
        ),
        ('{"sentence": "   "}', "stop", "invalid: field 'sentence' is empty"),
        ('{"sentence": "a dull , lifeless film"}', "stop", "invalid: unchanged"),
        ('{"sentence": "dull"}', "stop", "invalid: field 'sentence' is 0.18x"),
        ('{"sentence": "... dull film"}', "stop", "invalid: field 'sentence' echoes"),
        ('{"sentence": "A terrible, lifeless film."}', "stop", "now states the answer word 'terrible'"),
        ('{"sentence": "A great, lively film."}', "stop", "now states the answer word 'great'"),  # a flip
    ],
)
def test_bad_rewrites_are_rejected_with_the_reason(reply, finish, problem):
    rewrite, why = check_rewrite(SST2, NEG, reply, finish)
    assert rewrite is None and problem in why, why


def test_a_good_rewrite_keeps_the_label_and_fixed_fields():
    rewrite, why = check_rewrite(
        SST2, NEG, '{"sentence": "A dull film without any life.", "label": 0}', "stop"
    )
    assert why == "" and rewrite == {"sentence": "A dull film without any life."}


def test_anchor_strings_must_survive_the_rewrite():
    wsc = get_task("wsc")
    record = sample_record("wsc")
    spans = wsc.rephrase_anchors(record)["text"]
    text_without = record["text"].replace(spans[0], "someone else entirely")
    _, why = check_rewrite(wsc, record, json.dumps({"text": text_without}), "stop")
    assert why.startswith("invalid: field 'text' lost")
    squad = get_task("squad")
    record = sample_record("squad")
    answer = squad.rephrase_anchors(record)["context"][0]
    _, why = check_rewrite(
        squad,
        record,
        json.dumps({"context": record["context"].replace(answer, "X"), "question": "Q?"}),
        "stop",
    )
    assert why.startswith("invalid: field 'context' lost")


@pytest.mark.parametrize(
    "reply, expected",
    [
        ('{"verdict": "accept", "reason": "same meaning"}', ("accept", "same meaning")),
        ('{"verdict": "reject", "reason": "label flipped"}', ("reject", "label flipped")),
        ('{"verdict": "maybe"}', (None, "malformed judge reply: no verdict accept|reject")),
        ("yes", (None, "malformed judge reply: not JSON")),
    ],
)
def test_verdicts(reply, expected):
    assert check_verdict(reply, "stop") == expected


def test_cache_key_covers_model_messages_params_and_prompt_version():
    msgs = [{"role": "user", "content": "x"}]
    base = request_key("m", msgs, {"temperature": 0.7}, "v1")
    assert base == request_key("m", [dict(m) for m in msgs], {"temperature": 0.7}, "v1")
    others = [
        request_key("m2", msgs, {"temperature": 0.7}, "v1"),
        request_key("m", [{"role": "user", "content": "y"}], {"temperature": 0.7}, "v1"),
        request_key("m", msgs, {"temperature": 0.8}, "v1"),
        request_key("m", msgs, {"temperature": 0.7}, "v2"),
    ]
    assert len({base, *others}) == 5


def test_cache_survives_a_torn_last_line_and_appends_after_it(tmp_path):
    path = tmp_path / "c.jsonl"
    cache = ResponseCache(path)
    cache.put("k1", {"content": "a"}, {"call": "rewrite"})
    with open(path, "a") as f:
        f.write('{"key": "k2", "respo')  # killed mid-write
    reopened = ResponseCache(path)
    assert len(reopened) == 1 and reopened.get("k1") == {"content": "a"} and reopened.get("k2") is None
    reopened.put("k3", {"content": "c"}, {})
    again = ResponseCache(path)
    assert again.get("k1") and again.get("k3") == {"content": "c"} and len(again) == 2


def test_rewriter_settings_fail_naming_the_key():
    assert resolve("smollm2-135m-oat")["brief"] == "oat"
    assert resolve("smollm2-135m-generic")["brief"] == "generic"
    with pytest.raises(RewriterConfigError, match="unknown rewriter 'gpt'"):
        resolve("gpt")
    with pytest.raises(RewriterConfigError, match=r"rewriters.x.temperature: must be in \[0, 2\], got 5"):
        resolve("x", {"x": {"temperature": 5}})
    with pytest.raises(RewriterConfigError, match=r"rewriters.x: unknown key\(s\) \['api_key'\]"):
        resolve("x", {"x": {"api_key": "sk-never-in-config"}})
    with pytest.raises(RewriterConfigError, match="rewriters.x.prompt_version: has no prompt folder"):
        resolve("x", {"x": {"prompt_version": "v999"}})
    external = resolve(
        "x", {"x": {"base_url": "https://api.example.com/v1", "model": "big", "api_key_env": "MY_KEY"}}
    )
    assert external["judge"]["temperature"] == 0.0 and external["api_key_env"] == "MY_KEY"


def test_suite_naming_an_unknown_rewriter_fails_at_parse_time():
    raw = {
        "suite": "t",
        "models": ["tiny-llama"],
        "tasks": ["sst2"],
        "variants": {"mezo_oat_rephrase": {"params": {"rewriter": "nope"}}},
        "seeds": [0],
    }
    with pytest.raises(
        ConfigError, match="variants.mezo_oat_rephrase.params.rewriter: unknown rewriter 'nope'"
    ):
        validate(raw)
    raw["rewriters"] = {"nope": {"max_attempts": 0}}
    with pytest.raises(ConfigError, match="rewriters.nope.max_attempts: must be an integer >= 1"):
        validate(raw)


def _line(ex, used, record=None):
    return {
        "uid": ex.uid,
        "original_sha256": sha256_json(ex.record),
        "used": used,
        "record": record,
        "history": [],
    }


def test_load_rephrased_substitutes_accepted_rewrites_and_refuses_another_split(tmp_path):
    examples = [Example("train:1", NEG), Example("train:2", {**NEG, "idx": 2, "sentence": "fine "})]
    rewritten = {**NEG, "sentence": "A dull film without any life."}
    path = tmp_path / "r.jsonl"
    path.write_text(
        "".join(
            dumps(x) + "\n"
            for x in [
                _line(examples[0], "rephrased", rewritten),
                _line(examples[1], "original", examples[1].record),
            ]
        )
    )
    out = load_rephrased(path, SST2, examples)
    assert [e.record for e in out] == [rewritten, examples[1].record] and [e.uid for e in out] == [
        "train:1",
        "train:2",
    ]
    with pytest.raises(DataError, match=r"r.jsonl: made for another split \(example train:3 is missing\)"):
        load_rephrased(path, SST2, [*examples, Example("train:3", NEG)])
    changed = [Example("train:1", {**NEG, "sentence": "other"}), examples[1]]
    with pytest.raises(DataError, match="example train:1 is different"):
        load_rephrased(path, SST2, changed)


def test_everything_dropped_is_an_error(tmp_path):
    ex = Example("train:1", NEG)
    path = tmp_path / "r.jsonl"
    path.write_text(dumps(_line(ex, "dropped")) + "\n")
    with pytest.raises(DataError, match="no training example left after filtering"):
        load_rephrased(path, SST2, [ex])


def test_summary_counts_outcomes_tokens_and_cost():
    lines = [
        {"used": "rephrased", "attempts": 1, "history": [{"outcome": "accepted"}]},
        {
            "used": "original",
            "attempts": 2,
            "history": [{"outcome": "malformed"}, {"outcome": "rejected by judge"}],
        },
    ]
    tokens = {"rewriter": {"input": 1000, "output": 100}, "judge": {"input": 500, "output": 50}}
    s = summary(lines, tokens, {"input": 1.0, "output": 10.0})
    assert s["acceptance_rate"] == 0.5 and s["malformed_replies"] == 1 and s["kept_original"] == 1
    assert s["attempts"] == {"1": 1, "2": 1} and s["outcomes"]["rejected by judge"] == 1
    assert s["cost_usd"] == pytest.approx((1500 * 1.0 + 150 * 10.0) / 1e6)
    assert summary(lines, tokens, None)["cost_usd"] is None


def test_prompt_files_are_versioned_in_the_project():
    files = sorted(p.name for p in (ROOT / "prompts" / "rephrase" / "v1").iterdir())
    assert {
        "brief-oat.md",
        "brief-generic.md",
        "rewrite.md",
        "judge.md",
        "judge-system.md",
        "judge.schema.json",
    } <= set(files)


def _stats(rewriter, brief, accepted, kept):
    return {
        "rewriter": rewriter, "brief": brief, "task": "sst2", "seed": 0, "examples": accepted + kept,
        "accepted": accepted, "acceptance_rate": accepted / (accepted + kept), "kept_original": kept, "dropped": 0,
        "malformed_replies": 1, "outcomes": {"rejected by judge": 2, "invalid": 3}, "cost_usd": None,
        "tokens": {"rewriter": {"input": 100, "output": 10}, "judge": {"input": 50, "output": 5}},
        "model": "m", "prompt_version": "v1",
    }  # fmt: skip


def test_rephrase_table_and_figure_from_tables(tmp_path):
    import pandas as pd

    from zoharness.io import write_json_atomic
    from zoharness.rephrase.reports import rephrase_figure, rephrase_figures, write_rephrase_table

    stats = []
    for rewriter, brief, accepted in (("rw-oat", "oat", 30), ("rw-generic", "generic", 20)):
        stats.append(tmp_path / f"{rewriter}.json")
        write_json_atomic(stats[-1], _stats(rewriter, brief, accepted, 100 - accepted))
    df = write_rephrase_table(stats, tmp_path / "t.csv", tmp_path / "t.md")
    assert list(df["acceptance_rate"]) == [0.2, 0.3] and list(df["tokens_in"]) == [150, 150]
    md = (tmp_path / "t.md").read_text()
    assert "| rw-oat | oat | sst2 | 0 | 100 | 30 | 30.0% | 1 | 3 | 2 | 150 | 15 | – |" in md
    keys = {"model": "m", "task": "sst2", "seed": 0}
    runs = pd.DataFrame(
        [
            {
                **keys,
                "variant": m,
                "method": m,
                "label": label,
                "test_score": score,
                "dev_score": score - 0.05,
            }
            for m, label, score in (
                ("fo", "FT", 0.9),  # not shown: neither the baseline nor a rephrase method
                ("mezo", "MeZO", 0.7),
                ("mezo_generic_rephrase", "G", 0.69),
                ("mezo_oat_rephrase", "OAT", 0.72),
            )
        ]
    )
    curves = pd.DataFrame(
        [{**r, "step": i, "loss": 1.0 / (i + 1)} for r in runs.to_dict("records") for i in range(50)]
    )
    methods = ["mezo", "mezo_oat_rephrase", "mezo_generic_rephrase"]  # baseline first, then bar order
    fig = rephrase_figure(runs, curves, df, "t", methods)
    bars, losses, held = fig.axes[:3]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["MeZO", "OAT", "G"]
    assert [round(p.get_height(), 6) for p in bars.containers[0].patches] == [70.0, 72.0, 69.0]  # test
    assert [line.get_label() for line in losses.get_lines()] == [
        "MeZO (seeds=1)",
        "OAT (seeds=1)",
        "G (seeds=1)",
    ]
    assert [p.get_width() for p in held.containers[0].patches] == [20.0, 30.0]  # rephrased share
    runs.to_csv(tmp_path / "runs.csv", index=False)
    curves.to_csv(tmp_path / "curves.csv", index=False)
    paths = rephrase_figures(
        tmp_path / "runs.csv", tmp_path / "curves.csv", tmp_path / "t.csv", tmp_path / "fig", "t", methods
    )
    assert [p.name for p in paths] == ["rephrase.png", "rephrase.pdf"] and all(
        p.stat().st_size > 0 for p in paths
    )


def test_cache_first_answer_wins_for_a_request_asked_twice(tmp_path):
    path = tmp_path / "c.jsonl"
    cache = ResponseCache(path)
    assert cache.put("k", {"content": "first"}, {}) == {"content": "first"}
    assert cache.put("k", {"content": "second"}, {}) == {"content": "first"}  # the concurrent duplicate
    with open(path, "a") as f:  # a duplicate appended by another process
        f.write(json.dumps({"key": "k", "response": {"content": "third"}}) + "\n")
    assert ResponseCache(path).get("k") == {"content": "first"}


class _Flaky:
    """A stub OpenAI-compatible server on loopback: /models answers; chat completions fail with the
    given statuses first, then answer."""

    def __init__(self, statuses):

        self.statuses, self.posts = list(statuses), 0
        outer = self

        class Handler(JSONHandler):
            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "m", "object": "model"}]})

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts += 1
                if outer.statuses:
                    code = outer.statuses.pop(0)
                    return self._send(code, {"error": {"message": f"status {code}", "type": "x"}})
                self._completion()

        self.server, self.base_url = serve(Handler)


def _endpoint(tmp_path, base_url, max_retries=3):
    from zoharness.rephrase.client import ChatEndpoint

    cache = ResponseCache(tmp_path / "c.jsonl")
    return ChatEndpoint(
        "m",
        cache,
        "v1",
        base_url=base_url,
        api_key_env=None,
        timeout_s=10,
        max_retries=max_retries,
        backoff_s=0.01,
    )


def test_429_and_5xx_are_retried_with_backoff_then_answered(tmp_path):
    stub = _Flaky([429, 503, 500])
    endpoint = _endpoint(tmp_path, stub.base_url)
    response, cached = endpoint.chat([{"role": "user", "content": "x"}], {"temperature": 0}, {})
    assert response["content"] == "{}" and not cached and stub.posts == 4
    assert endpoint.counters.retries == 3 and endpoint.counters.requests == 4
    stub.server.shutdown()


def test_retries_are_bounded_and_a_bad_request_is_not_retried(tmp_path):
    from zoharness.rephrase.client import EndpointError

    stub = _Flaky([503] * 5)
    with pytest.raises(
        EndpointError, match=rf"endpoint {re.escape(stub.base_url)}: InternalServerError after 3 attempt"
    ):
        _endpoint(tmp_path, stub.base_url, max_retries=2).chat([{"role": "user", "content": "x"}], {}, {})
    assert stub.posts == 3
    stub = _Flaky([400])
    with pytest.raises(EndpointError, match="refused the request: HTTP 400: .*status 400"):
        _endpoint(tmp_path, stub.base_url).chat([{"role": "user", "content": "x"}], {}, {})
    assert stub.posts == 1 and not (tmp_path / "c.jsonl").exists()  # failures are never cached


def test_check_reports_the_same_reason_in_every_process():
    """The outputs must not depend on PYTHONHASHSEED: with two answer words leaked, the first candidate is named."""
    import subprocess
    import sys

    code = (
        "from zoharness.rephrase.pipeline import check_rewrite; from zoharness.tasks import get_task;"
        "print(check_rewrite(get_task('sst2'), {'sentence': 'a dull , lifeless film ', 'label': 0, 'idx': 1},"
        " '{\"sentence\": \"A great yet terrible film.\"}', 'stop')[1])"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        ).stdout.strip()
        for seed in range(6)
    }
    assert outs == {"invalid: field 'sentence' now states the answer word 'terrible'"}
