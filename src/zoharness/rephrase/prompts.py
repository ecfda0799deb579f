"""A versioned prompt set (prompts/rephrase/<version>/) and the messages it renders for one example.

The rewriter sees: a system brief (optimization-aware or generic), the task's one-line instruction,
MeZO's prompt for the example with its gold answer (so it knows where the answer slot is), and the
fields to rewrite as JSON. It must answer with exactly those fields (the schema below). The judge sees
the original and the rewrite and answers {"verdict", "reason"} (judge.schema.json).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from zoharness.io import DataError
from zoharness.tasks.base import GENERATION, Task

PROMPT_FILES = (
    "brief-oat.md",
    "brief-generic.md",
    "rewrite.md",
    "judge-system.md",
    "judge.md",
    "judge.schema.json",
    "tasks.yaml",
)


@dataclass(frozen=True)
class PromptSet:
    version: str
    directory: Path
    texts: dict  # file name -> text
    instructions: dict  # task -> one-line instruction
    judge_schema: dict
    sha256: str  # of every file, in order: recorded in the output's provenance

    @classmethod
    def load(cls, directory: str | Path, version: str | None = None) -> PromptSet:
        directory = Path(directory)
        missing = [f for f in PROMPT_FILES if not (directory / f).is_file()]
        if missing:
            raise DataError(f"{directory}: prompt set lacks {missing}")
        texts = {f: (directory / f).read_text(encoding="utf-8") for f in PROMPT_FILES}
        try:
            instructions = yaml.safe_load(texts["tasks.yaml"]) or {}
            judge_schema = json.loads(texts["judge.schema.json"])
        except (yaml.YAMLError, json.JSONDecodeError) as e:
            raise DataError(f"{directory}: unreadable prompt file: {e}") from None
        digest = hashlib.sha256()
        for f in PROMPT_FILES:
            digest.update(f.encode() + b"\0" + texts[f].encode() + b"\0")
        return cls(
            version or directory.name, directory, texts, instructions, judge_schema, digest.hexdigest()
        )

    def instruction(self, task: Task) -> str:
        if task.name not in self.instructions:
            raise DataError(f"{self.directory / 'tasks.yaml'}: no instruction for task {task.name!r}")
        return str(self.instructions[task.name]).strip()

    def brief(self, kind: str) -> str:
        return self.texts[f"brief-{kind}.md"].strip()


def rephrase_fields(task: Task, record: dict) -> dict[str, str]:
    if not task.rephrase_fields:
        raise DataError(f"task {task.name!r} declares no rephrase_fields: it cannot be rephrased")
    return {f: record[f] for f in task.rephrase_fields}


def gold_answer(task: Task, record: dict) -> str:
    prompt = task.render(record)
    return prompt.candidates[prompt.label].strip()


def _fill(template: str, values: dict[str, str]) -> str:
    # str.replace, not str.format: examples and prompts contain braces (JSON, code).
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template.strip()


def _common(prompts: PromptSet, task: Task, record: dict) -> dict[str, str]:
    return {
        "task_label": task.label,
        "instruction": prompts.instruction(task),
        "answer": gold_answer(task, record),
    }


def rewrite_messages(prompts: PromptSet, brief: str, task: Task, record: dict) -> list[dict]:
    shown = task.render(record).context
    if task.kind == GENERATION:
        shown = shown.rstrip()
    values = {
        **_common(prompts, task, record),
        "prompt": shown.strip("\n"),
        # Prose, not JSON: a small model shown the fields as JSON copies them back unchanged.
        "fields": "\n".join(
            f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in rephrase_fields(task, record).items()
        ),
        "skeleton": json.dumps(dict.fromkeys(task.rephrase_fields, "..."), ensure_ascii=False),
    }
    return [
        {"role": "system", "content": prompts.brief(brief)},
        {"role": "user", "content": _fill(prompts.texts["rewrite.md"], values)},
    ]


def judge_messages(prompts: PromptSet, task: Task, record: dict, rewrite: dict) -> list[dict]:
    values = {
        **_common(prompts, task, record),
        "original": json.dumps(rephrase_fields(task, record), ensure_ascii=False, indent=1),
        "rewrite": json.dumps(rewrite, ensure_ascii=False, indent=1),
    }
    return [
        {"role": "system", "content": prompts.texts["judge-system.md"].strip()},
        {"role": "user", "content": _fill(prompts.texts["judge.md"], values)},
    ]


def rewrite_schema(task: Task) -> dict:
    """Exactly the task's rephrase fields, each a non-empty string: no label, nothing extra."""
    return {
        "type": "object",
        "properties": {f: {"type": "string", "minLength": 1} for f in task.rephrase_fields},
        "required": list(task.rephrase_fields),
        "additionalProperties": False,
    }
