"""HellaSwag (Rowan/hellaswag): pick the ending of an ActivityNet/WikiHow context.

Cleaned exactly as lm-evaluation-harness's hellaswag `preprocess`: the query is
preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()), each choice is
preprocess(ending). `ind` is not unique (9,609 distinct in 10,042 validation rows), so
question_id = "hellaswag/<split>/<row index>".
"""

from __future__ import annotations

import re
from typing import Any

from prefixopt.benchmarks.splits import parse_each
from prefixopt.records import Question

LETTERS = "ABCD"


def preprocess(text: str) -> str:
    """The harness's cleaning: brackets are artifacts of the WikiHow part of HellaSwag."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    text = text.replace("  ", " ")
    return text


def parse_rows(
    rows: list[dict[str, Any]], split: str, benchmark: str, where: str
) -> list[Question]:
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
