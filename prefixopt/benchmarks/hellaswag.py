"""HellaSwag (Rowan/hellaswag): pick the ending of an ActivityNet/WikiHow context, cleaned as
lm-evaluation-harness's `preprocess`: query = preprocess(activity_label + ": " + ctx_a + " " +
ctx_b.capitalize()), choice = preprocess(ending). `ind` is not unique (9,609 distinct in 10,042
validation rows): question_id = "hellaswag/<split>/<row index>". context = the activity label.
Two rows are one question when their contexts are equal (text_key; the label and endings aside).
"""

from __future__ import annotations

import re
from typing import Any

from prefixopt.benchmarks.splits import parse_each
from prefixopt.benchmarks.task import Task, normalise
from prefixopt.records import Question

LETTERS = "ABCD"


def preprocess(text: str) -> str:
    """The harness's cleaning: brackets are artifacts of the WikiHow part of HellaSwag."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    text = text.replace("  ", " ")
    return text


class Hellaswag(Task):
    """Commonsense sentence completion; cloze by default (the query is the context)."""

    def parse_rows(self, rows: list[dict[str, Any]], split: str, where: str) -> list[Question]:
        def parse(row: dict[str, Any], index: int) -> Question:
            ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize()
            choices = tuple(preprocess(e) for e in row["endings"])
            labels = tuple(LETTERS[: len(choices)])
            return Question(
                question_id=f"hellaswag/{split}/{index}",
                benchmark="hellaswag",
                text=preprocess(row["activity_label"] + ": " + ctx),
                choices=choices,
                labels=labels,
                gold=labels[int(row["label"])],
                subject=row["activity_label"],
            )

        return parse_each(rows, parse, where)

    def offline_hint(self, split: str) -> str:
        if split != "train":
            return ""
        return ", or offline use --train-split 'validation[:50%]' --eval-split 'validation[50%:]'"

    def context(self, q: Question) -> str | None:
        """The ActivityNet/WikiHow activity label, e.g. "Roof shingle removal"."""
        return q.subject

    def text_key(self, q: Question) -> str:
        """The normalised context without its activity label: the same context under two
        labels (the validation file has one) is the same question."""
        text, label = normalise(q.text), normalise(f"{q.subject}:") if q.subject else ""
        return text[len(label):].strip() if label and text.startswith(label) else text

    def harness_text(self, q: Question, scoring: str) -> str:
        if scoring == "cloze":
            return q.text  # already "activity label: context", cleaned like the harness
        return super().harness_text(q, scoring)


HELLASWAG = Hellaswag(
    # the hub's test split has no labels, the train split is not in the shared data: few-shot
    # examples come from validation (never a held-out question; see prompts.fewshot_examples)
    name="hellaswag", hub_id="Rowan/hellaswag", hub_config=None, splits=("train", "validation"),
    train_split="train", eval_split="validation", fewshot_split="validation",
    default_scoring="cloze",
    expert_prompt="You are an expert in everyday situations and common sense.",
)
TASKS = (HELLASWAG,)
