"""GSM8K (openai/gsm8k "main"): grade-school word problems with a numeric answer. gold = the
normalised number after the final "#### " (thousands separators removed), solution = the worked
answer (chain-of-thought few-shot), no choices, so generate is the only scoring. question_id =
"gsm8k/<split>/<row index>". `extract_answer` (from benchmarks.extract) is re-exported.
"""

from __future__ import annotations

from typing import Any

from prefixopt.benchmarks.extract import extract_answer, extract_number, normalize_number
from prefixopt.benchmarks.splits import parse_each
from prefixopt.benchmarks.task import Task
from prefixopt.records import Question

__all__ = ["GSM8K", "TASKS", "extract_answer", "gold_number"]

INSTRUCTION = "Solve it step by step, then give the final answer on its own line as #### N."
# The harness's gsm8k stops, in both formats.
GENERATE = (256, ("Question:", "</s>", "<|im_end|>"))


def gold_number(answer: str) -> str:
    """The reference number of a GSM8K answer: the text after the last '####'."""
    if "####" not in answer:
        raise ValueError("answer has no '#### N' line")
    return normalize_number(answer.split("####")[-1].strip().replace(",", ""))


class Gsm8k(Task):
    """Free-form numeric answers: generate, '#### N' or the last number."""

    def parse_rows(self, rows: list[dict[str, Any]], split: str, where: str) -> list[Question]:
        def parse(row: dict[str, Any], index: int) -> Question:
            return Question(
                question_id=f"gsm8k/{split}/{index}",
                benchmark="gsm8k",
                text=row["question"],
                gold=gold_number(row["answer"]),
                solution=row["answer"],
            )

        return parse_each(rows, parse, where)

    def harness_text(self, q: Question, scoring: str) -> str:
        return f"Question: {q.text}\nAnswer:"

    def chat_text(self, q: Question, scoring: str) -> str:
        return f"{q.text}\n\n{INSTRUCTION}"

    def answer_text(self, q: Question, scoring: str) -> str:
        return q.solution or f"#### {q.gold}"

    def extract(self, q: Question, text: str) -> tuple[str | None, str]:
        return extract_number(text)

    def reference(self, q: Question) -> str:
        return normalize_number(q.gold)


GSM8K = Gsm8k(
    name="gsm8k", hub_id="openai/gsm8k", hub_config="main", splits=("train", "test"),
    train_split="train", eval_split="test", fewshot_split="train", default_scoring="generate",
    expert_prompt="You are an expert mathematician.", scorings=("generate",),
    has_choices=False, generate=GENERATE,
)
TASKS = (GSM8K,)
