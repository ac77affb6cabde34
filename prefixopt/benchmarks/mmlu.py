"""MMLU (cais/mmlu "all"): 57 subjects, four choices, gold = answer index 0-3 -> letter.

question_id is "mmlu/<split>/<subject>/<k>", k = the row's position within its subject in
that split (files keep the official CSV order, grouped by subject), so ids are stable
across machines and unique across splits.
"""

from __future__ import annotations

from typing import Any

from prefixopt.benchmarks.splits import parse_each
from prefixopt.records import Question

LETTERS = "ABCDEFGHIJ"


def parse_rows(
    rows: list[dict[str, Any]], split: str, benchmark: str, where: str
) -> list[Question]:
    seen: dict[str, int] = {}  # subject -> rows of it so far

    def parse(row: dict[str, Any], index: int) -> Question:
        subject = row["subject"]
        k = seen.get(subject, 0)
        seen[subject] = k + 1
        choices = tuple(str(c) for c in row["choices"])
        labels = tuple(LETTERS[: len(choices)])
        return Question(
            question_id=f"mmlu/{split}/{subject}/{k}",
            benchmark="mmlu",
            text=row["question"],
            choices=choices,
            labels=labels,
            gold=labels[int(row["answer"])],
            subject=subject,
        )

    return parse_each(rows, parse, where)
