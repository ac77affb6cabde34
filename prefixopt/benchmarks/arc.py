"""ARC-Easy and ARC-Challenge (allenai/ai2_arc): two Tasks, one parser. Reads both the AI2
release layout (`question.stem`, `question.choices[{text,label}]`, local files) and the
flattened hub layout (`question`, `choices{text,label}`). Numeric labels 1-5 are mapped to
letters A-E, and the gold answerKey the same way. question_id = "<benchmark>/<AI2 id>".
Rendering is the Task default (harness: "Question: {q}\\nAnswer:" + " {choice}").
"""

from __future__ import annotations

from typing import Any

from prefixopt.benchmarks.splits import parse_each
from prefixopt.benchmarks.task import Task
from prefixopt.records import Question

LETTERS = "ABCDEFGHIJ"


def to_letter(label: str) -> str:
    """'1'..'5' -> 'A'..'E'; letters pass through."""
    label = str(label).strip()
    return LETTERS[int(label) - 1] if label.isdigit() else label


class Arc(Task):
    """Grade-school science questions, cloze-scored by default as in the harness."""

    def parse_rows(self, rows: list[dict[str, Any]], split: str, where: str) -> list[Question]:
        def parse(row: dict[str, Any], index: int) -> Question:
            if isinstance(row["question"], dict):  # AI2 release layout
                text = row["question"]["stem"]
                texts = [c["text"] for c in row["question"]["choices"]]
                raw = [c["label"] for c in row["question"]["choices"]]
            else:  # hub layout
                text = row["question"]
                texts, raw = list(row["choices"]["text"]), list(row["choices"]["label"])
            labels = tuple(to_letter(x) for x in raw)
            gold = to_letter(row["answerKey"])
            if gold not in labels:
                raise ValueError(f"answerKey {row['answerKey']!r} is not one of the labels {raw}")
            return Question(
                question_id=f"{self.name}/{row['id']}",
                benchmark=self.name,
                text=text,
                choices=tuple(texts),
                labels=labels,
                gold=gold,
            )

        return parse_each(rows, parse, where)


def _arc(name: str, config: str) -> Arc:
    return Arc(name=name, hub_id="allenai/ai2_arc", hub_config=config,
               splits=("train", "validation", "test"), train_split="train", eval_split="test",
               fewshot_split="train", default_scoring="cloze",
               expert_prompt="You are an expert scientist.")


ARC_EASY = _arc("arc_easy", "ARC-Easy")
ARC_CHALLENGE = _arc("arc_challenge", "ARC-Challenge")
TASKS = (ARC_EASY, ARC_CHALLENGE)
