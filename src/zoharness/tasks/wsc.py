"""WSC (SuperGLUE, `wsc.fixed` as MeZO):
'<text>\\nIn the previous sentence, does the pronoun "<span2>" refer to <span1>? Yes or No?\\n' -> Yes | No.

The bundled jsonl is SuperGLUE's original; HF's `wsc.fixed` repairs a few span texts at load time
(the span must occur in the text: match the case of the text's word at the span index, drop a
trailing '.', turn newlines into spaces). `repair_span` applies the same rules, so both sources render
the same prompts.
"""

from zoharness.tasks.base import CLASSIFICATION, YES_NO, Prompt, Task, label_index

_LABELS = {True: 0, False: 1}


def repair_span(text: str, span: str, index: int) -> str:
    if span in text:
        return span
    words = text.split()
    if 0 <= index < len(words) and span:
        first = words[index]
        span = (span[0].lower() if first[0].islower() else span[0].upper()) + span[1:]
    return span.rstrip(".").replace("\n", " ")


def render(record: dict) -> Prompt:
    text, target = record["text"], record["target"]
    span1 = repair_span(text, target["span1_text"], target["span1_index"])
    span2 = repair_span(text, target["span2_text"], target["span2_index"])
    return Prompt(
        context=f'{text}\nIn the previous sentence, does the pronoun "{span2.lower()}" refer to {span1}? '
        "Yes or No?\n",
        candidates=YES_NO,
        label=label_index(record["label"], _LABELS, f"wsc record idx={record.get('idx')}"),
    )


def normalise_hf(row: dict, i: int) -> dict:
    keys = ("span1_index", "span2_index", "span1_text", "span2_text")
    return {
        "text": row["text"],
        "target": {k: row[k] for k in keys},
        "idx": row["idx"],
        "label": bool(row["label"]),
    }


TASK = Task(
    name="wsc",
    label="WSC",
    kind=CLASSIFICATION,
    metric="accuracy",
    render=render,
    # parquet, no script (its PR #16): https://huggingface.co/datasets/aps/super_glue (docs/data.md)
    hf_dataset=("aps/super_glue", "wsc.fixed"),
    id_of=lambda r: str(r["idx"]),
    normalise_hf=normalise_hf,
    rephrase_fields=("text",),
    rephrase_anchors=lambda r: {
        "text": [
            repair_span(r["text"], r["target"][k + "_text"], r["target"][k + "_index"])
            for k in ("span1", "span2")
        ]
    },
)
