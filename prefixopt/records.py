"""The small records that flow between modules: a question, an engine request, its response,
and a judged answer. Plain frozen/slotted dataclasses so that building thousands of them per
iteration stays cheap (host-side time is budgeted: <50 ms per iteration at K=16, B=32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NO_PERSON = -1  # person_id of a prompt without a persona (no prefix, or a hand-written prompt)


@dataclass(frozen=True, slots=True)
class Question:
    """One normalised benchmark item (see prefixopt.benchmarks)."""

    question_id: str  # stable across runs and machines, e.g. "arc_easy/Mercury_7175875"
    benchmark: str  # mmlu | gsm8k | arc_easy | arc_challenge | hellaswag
    text: str  # question stem (hellaswag: the cleaned context)
    choices: tuple[str, ...] = ()  # choice texts; empty for gsm8k
    labels: tuple[str, ...] = ()  # letters shown in prompts ("A", "B", ...), one per choice
    gold: str = ""  # gold label letter for multiple choice; numeric string for gsm8k
    subject: str | None = None  # mmlu subject, hellaswag activity label, ...
    solution: str | None = None  # gsm8k worked solution (few-shot chain of thought)

    @property
    def gold_index(self) -> int:
        return self.labels.index(self.gold) if self.labels else -1


@dataclass(frozen=True, slots=True)
class Request:
    """One prompt for the engine, with what the scorer needs to read its answer."""

    prompt: str  # fully rendered text (chat template already applied, if any)
    person_id: int  # NO_PERSON for prompts without a persona
    question: Question
    continuations: tuple[str, ...] = ()  # cloze: the text scored after `prompt`, per choice
    letters: tuple[str, ...] = ()  # letter: the answer tokens to restrict to


@dataclass(slots=True)
class Response:
    """What the engine returns for one Request, in request order."""

    text: str = ""  # generate: the completion
    logprobs: tuple[float, ...] = ()  # letter: per letter; cloze: summed per continuation
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens served from the prefix cache
    output_tokens: int = 0
    missing_letters: int = 0  # letter: letters a chat API did not return (scored -inf)
    # served by engines.score_cache from an earlier identical request, not computed now: its
    # token counts are the original call's, so "work done" counts (budgets) leave it out
    from_score_cache: bool = False


@dataclass(slots=True)
class Answer:
    """A judged response. An unparseable answer is data: parsed=False, correct=False."""

    correct: bool
    parsed: bool
    pred: str | None
    gold: str
    margin: float = math.nan  # gold log-prob minus best other (letter/cloze); nan for generate
    rule: str = ""  # which extraction rule matched ("strict", "flexible", "argmax", "none")
    confidence: float = math.nan  # top-1 minus top-2 log-prob, gold not used; nan for generate
