"""Rewrite -> check -> judge, in rounds, for every training example of one task and seed.

Round k (k = 1..max_attempts) asks the rewriter for every example still open (sampling seed
`seed + k - 1`, so each attempt is a distinct, cacheable request), checks each reply locally, sends
the valid ones to the judge, and closes the accepted ones. Whatever is still open after the last round
keeps its original text (or is dropped, `fallback: drop`). Rounds, not one example at a time, so the
server sees the same system prompt back to back and reuses its prefix.

Local checks, before any judge call (a reply failing one is rejected and retried):
  malformed   not a JSON object, or cut off at max_tokens
  invalid     the answer word written into the text; the '...' placeholder echoed; a field dropped or empty; a field shorter or longer than length_ratio x the original's; an unexpected field; a fixed field (the label) changed;
              an anchor lost (a string the label points at, e.g. a WSC span or a SQuAD answer);
              the rewritten example no longer renders, or renders another gold answer; unchanged text
The outputs depend only on the responses, so a rerun served from the cache writes identical files.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from zoharness.io import DataError, sha256_json
from zoharness.rephrase import prompts as P
from zoharness.rephrase.client import ChatEndpoint, response_format
from zoharness.tasks.base import Example, Task

FORMAT_VERSION = 1


def check_rewrite(
    task: Task, record: dict, content: str, finish_reason: str | None, length_ratio=(0.5, 2.0)
) -> tuple[dict | None, str]:
    """(rewritten fields, "") when the reply is usable, else (None, "malformed: ..." | "invalid: ...")."""
    if finish_reason == "length":
        return None, "malformed: cut off at max_tokens"
    try:
        reply = json.loads(content)
    except json.JSONDecodeError:
        return None, "malformed: not JSON"
    if not isinstance(reply, dict):
        return None, f"malformed: a JSON {type(reply).__name__}, not an object"
    fields = task.rephrase_fields
    dropped = [f for f in fields if f not in reply]
    if dropped:
        return None, f"invalid: dropped field(s) {dropped}"
    for key in sorted(set(reply) - set(fields)):
        if key not in record:
            return None, f"invalid: unexpected field {key!r}"
        if reply[key] != record[key]:
            return None, f"invalid: changed fixed field {key!r}"  # the label never changes
    rewrite = {f: reply[f] for f in fields}
    for f, value in rewrite.items():
        if not isinstance(value, str) or not value.strip():
            return None, f"invalid: field {f!r} is empty or not a string"
    for f, anchors in task.rephrase_anchors(record).items():
        lost = [a for a in anchors if a not in rewrite[f]]
        if lost:
            return None, f"invalid: field {f!r} lost {lost[:3]}"
    if all(rewrite[f].strip() == str(record[f]).strip() for f in fields):
        return None, "invalid: unchanged"
    lo, hi = length_ratio
    for f in fields:  # "terrible" for a whole review, or "..." echoed from the skeleton, is no rewrite
        ratio = len(rewrite[f].strip()) / max(1, len(str(record[f]).strip()))
        if not lo <= ratio <= hi:
            return None, f"invalid: field {f!r} is {ratio:.2f}x the original's length (allowed {lo}-{hi})"
    for f in fields:  # the reply's JSON skeleton ("...") echoed back instead of text
        if "..." in rewrite[f] and "..." not in str(record[f]):
            return None, f"invalid: field {f!r} echoes the '...' placeholder"
    try:
        before, after = task.render(record), task.render({**record, **rewrite})
    except (DataError, KeyError, ValueError) as e:
        return None, f"invalid: does not render ({e})"
    if after.candidates[after.label] != before.candidates[before.label]:
        return None, "invalid: the gold answer changed"
    # Writing an answer word into the text leaks the label ("terrible") or flips it ("great" for a
    # negative review) instead of clarifying the evidence. Checked for candidates of 4+ letters only:
    # "no"/"yes" occur in ordinary text.
    if task.kind != "generation":
        # dict, not set: candidates in the task's order, so the reported word never depends on hash seeds
        for candidate in dict.fromkeys(c.strip().lower() for c in before.candidates):
            if len(candidate) < 4:
                continue
            word = re.compile(rf"\b{re.escape(candidate)}\b")
            for f in fields:
                if word.search(rewrite[f].lower()) and not word.search(str(record[f]).lower()):
                    return None, f"invalid: field {f!r} now states the answer word {candidate!r}"
    return rewrite, ""


def check_verdict(content: str, finish_reason: str | None) -> tuple[str | None, str]:
    """("accept" | "reject", reason), or (None, why the judge's reply is unusable)."""
    try:
        reply = json.loads(content)
    except json.JSONDecodeError:
        return None, "malformed judge reply: not JSON"
    if not isinstance(reply, dict) or reply.get("verdict") not in ("accept", "reject"):
        return None, "malformed judge reply: no verdict accept|reject"
    reason = reply.get("reason")
    return reply["verdict"], reason.strip() if isinstance(reason, str) else ""


@dataclass
class _Item:
    index: int
    example: Example
    history: list = field(default_factory=list)
    rewrite: dict | None = None
    verdict: str | None = None
    reason: str = ""


@dataclass
class Rephraser:
    task: Task
    prompts: P.PromptSet
    brief: str
    rewriter: ChatEndpoint
    judge: ChatEndpoint
    rewrite_params: dict  # temperature, max_tokens, seed (base), response_format kind
    judge_params: dict  # temperature, max_tokens, seed
    max_attempts: int
    concurrency: int
    length_ratio: tuple = (0.5, 2.0)
    tokens: dict = field(default_factory=lambda: {r: Counter() for r in ("rewriter", "judge")})
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _params(self, base: dict, schema: dict, name: str, seed: int) -> dict:
        return {
            "temperature": base["temperature"],
            "max_tokens": base["max_tokens"],
            "seed": seed,
            "response_format": response_format(base["response_format"], schema, name),
        }

    def _count(self, role: str, response: dict) -> None:
        usage = response.get("usage") or {}
        with self._lock:
            self.tokens[role].update(
                {"input": usage.get("prompt_tokens", 0), "output": usage.get("completion_tokens", 0)}
            )

    def rewrite_request(self, record: dict, attempt: int) -> tuple[list[dict], dict]:
        """(messages, parameters) of the rewriter's request for `record` at `attempt` (1-based)."""
        messages = P.rewrite_messages(self.prompts, self.brief, self.task, record)
        seed = self.rewrite_params["seed"] + attempt - 1
        return messages, self._params(self.rewrite_params, P.rewrite_schema(self.task), "rewrite", seed)

    def judge_request(self, record: dict, rewrite: dict) -> tuple[list[dict], dict]:
        messages = P.judge_messages(self.prompts, self.task, record, rewrite)
        base = {**self.judge_params, "response_format": self.rewrite_params["response_format"]}
        return messages, self._params(base, self.prompts.judge_schema, "verdict", self.judge_params["seed"])

    def _rewrite(self, item: _Item, attempt: int) -> None:
        record = item.example.record
        messages, params = self.rewrite_request(record, attempt)
        response, _ = self.rewriter.chat(
            messages, params, {"call": "rewrite", "uid": item.example.uid, "attempt": attempt}
        )
        self._count("rewriter", response)
        rewrite, problem = check_rewrite(
            self.task, record, response["content"], response.get("finish_reason"), self.length_ratio
        )
        item.rewrite = rewrite
        if problem:
            item.history.append({"attempt": attempt, "outcome": problem.split(":")[0], "detail": problem})

    def _judge(self, item: _Item, attempt: int) -> None:
        messages, params = self.judge_request(item.example.record, item.rewrite)
        response, _ = self.judge.chat(
            messages, params, {"call": "judge", "uid": item.example.uid, "attempt": attempt}
        )
        self._count("judge", response)
        verdict, reason = check_verdict(response["content"], response.get("finish_reason"))
        outcome = {"accept": "accepted", "reject": "rejected by judge", None: "malformed judge reply"}[
            verdict
        ]
        item.history.append({"attempt": attempt, "outcome": outcome, "detail": reason})
        item.verdict, item.reason = verdict, reason

    def run(self, examples: list[Example], progress=None) -> list[_Item]:
        items = [_Item(i, ex) for i, ex in enumerate(examples)]
        open_items = list(items)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            for attempt in range(1, self.max_attempts + 1):
                list(pool.map(self._rewrite, open_items, [attempt] * len(open_items)))
                valid = [it for it in open_items if it.rewrite is not None]
                list(pool.map(self._judge, valid, [attempt] * len(valid)))
                open_items = [it for it in open_items if it.verdict != "accept"]
                if progress:
                    progress(attempt, len(items) - len(open_items), len(items))
                if not open_items:
                    break
        return items


def output_lines(items: list, fallback: str) -> list[dict]:
    lines = []
    for it in items:
        accepted = it.verdict == "accept"
        used = "rephrased" if accepted else ("original" if fallback == "original" else "dropped")
        original = it.example.record
        last = it.history[-1] if it.history else {"outcome": "", "detail": ""}
        lines.append(
            {
                "uid": it.example.uid,
                "original_sha256": sha256_json(original),
                "used": used,
                "record": {**original, **it.rewrite}
                if accepted
                else (original if used == "original" else None),
                "rephrased": it.rewrite if accepted else None,
                "verdict": "accept" if accepted else "reject",
                "reason": it.reason if accepted else f"{last['outcome']}: {last['detail']}".strip(": "),
                "attempts": len({h["attempt"] for h in it.history}),
                "history": it.history,
            }
        )
    return lines


def summary(lines: list[dict], tokens: dict, price: dict | None) -> dict:
    outcomes = Counter(h["outcome"] for line in lines for h in line["history"])
    n = len(lines)
    accepted = sum(line["used"] == "rephrased" for line in lines)
    tok = {role: {"input": c["input"], "output": c["output"]} for role, c in tokens.items()}
    cost = None
    if price:
        total_in = sum(t["input"] for t in tok.values())
        total_out = sum(t["output"] for t in tok.values())
        cost = round((total_in * price["input"] + total_out * price["output"]) / 1e6, 6)
    return {
        "examples": n,
        "accepted": accepted,
        "kept_original": sum(line["used"] == "original" for line in lines),
        "dropped": sum(line["used"] == "dropped" for line in lines),
        "acceptance_rate": accepted / n if n else 0.0,
        "attempts": dict(sorted(Counter(str(line["attempts"]) for line in lines).items())),
        "outcomes": dict(sorted(outcomes.items())),
        "malformed_replies": outcomes.get("malformed", 0) + outcomes.get("malformed judge reply", 0),
        "tokens": tok,
        "cost_usd": cost,
        "cost_note": None if price else "the endpoint's price is not configured (price_per_1m_tokens)",
    }


def load_rephrased(path, task: Task, examples: list[Example]) -> list[Example]:
    """The training examples to use: rephrased where accepted, the original or nothing otherwise.

    Refuses a file made for another split (an example missing, or its original text differing)."""
    by_uid = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                entry = json.loads(line)
                by_uid[entry["uid"]] = entry
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DataError(f"{path}:{n}: not a rephrased-example line") from None
    out = []
    for ex in examples:
        entry = by_uid.get(ex.uid)
        if entry is None or entry["original_sha256"] != sha256_json(ex.record):
            raise DataError(
                f"{path}: made for another split (example {ex.uid} is {'missing' if entry is None else 'different'}); "
                "rerun the rephrase rule"
            )
        if entry["used"] != "dropped":
            out.append(Example(ex.uid, entry["record"]))
    if not out:
        raise DataError(
            f"{path}: no training example left after filtering (every rewrite rejected, fallback drop)"
        )
    return out
