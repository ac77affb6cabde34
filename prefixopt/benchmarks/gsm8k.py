"""GSM8K (openai/gsm8k "main"): grade-school word problems with a numeric answer.

gold = the normalised number after the final "#### " line (thousands separators removed),
solution = the worked answer text (for chain-of-thought few-shot), choices empty.
question_id = "gsm8k/<split>/<row index>". `extract_answer` (reading a model's completion)
lives in prefixopt.benchmarks.extract and is re-exported here.
"""

from __future__ import annotations

from typing import Any

from prefixopt.benchmarks.extract import extract_answer, normalize_number
from prefixopt.benchmarks.splits import parse_each
from prefixopt.records import Question

__all__ = ["extract_answer", "gold_number", "parse_rows"]


def gold_number(answer: str) -> str:
    """The reference number of a GSM8K answer: the text after the last '####'."""
    if "####" not in answer:
        raise ValueError("answer has no '#### N' line")
    return normalize_number(answer.split("####")[-1].strip().replace(",", ""))


def parse_rows(
    rows: list[dict[str, Any]], split: str, benchmark: str, where: str
) -> list[Question]:
    def parse(row: dict[str, Any], index: int) -> Question:
        return Question(
            question_id=f"gsm8k/{split}/{index}",
            benchmark="gsm8k",
            text=row["question"],
            gold=gold_number(row["answer"]),
            solution=row["answer"],
        )

    return parse_each(rows, parse, where)
