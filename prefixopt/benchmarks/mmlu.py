"""MMLU (cais/mmlu "all"): 57 subjects, four choices, gold = answer index 0-3 -> letter.
question_id = "mmlu/<split>/<subject>/<k>", k = the row's position within its subject in that
split (files keep the official order), so ids are stable and unique across splits. Harness
format: subject description line, question, "A. .." lines, "Answer:". context = the subject.
Few-shot, as lm-evaluation-harness's mmlu (fewshot_split dev, sampler first_n): the first k dev
examples of the query's own subject, so the few-shot block differs per subject.
"""

from __future__ import annotations

from typing import Any

from prefixopt.benchmarks.splits import parse_each
from prefixopt.benchmarks.task import Task, lettered
from prefixopt.records import Question

LETTERS = "ABCDEFGHIJ"


class Mmlu(Task):
    """Multiple-choice knowledge questions, letter-scored by default."""

    def parse_rows(self, rows: list[dict[str, Any]], split: str, where: str) -> list[Question]:
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

    def context(self, q: Question) -> str | None:
        """The MMLU subject, e.g. "high_school_mathematics"."""
        return q.subject

    def fewshot_group(self, q: Question) -> str:
        """Few-shot examples come from the query's own subject (the harness's first_n)."""
        return q.subject or ""

    def harness_description(self, q: Question) -> str:
        if not q.subject:
            return ""
        subject = q.subject.replace("_", " ")
        return f"The following are multiple choice questions (with answers) about {subject}.\n\n"

    def harness_text(self, q: Question, scoring: str) -> str:
        return f"{q.text.strip()}\n{lettered(q)}\nAnswer:"  # lettered in every scoring


MMLU = Mmlu(
    name="mmlu", hub_id="cais/mmlu", hub_config="all", splits=("dev", "validation", "test"),
    train_split="validation", eval_split="test", fewshot_split="dev", default_scoring="letter",
    fewshot_sampler="first_n",
    expert_prompt="You are an expert with deep knowledge of every academic subject.",
)
TASKS = (MMLU,)
