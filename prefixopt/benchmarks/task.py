"""`Task`: everything prefixopt knows about one benchmark, lm-evaluation-harness style in plain
Python. Data (hub id, splits, scorings, expert prompt, generate settings) are fields; the
row parser, rendering, extraction and the `context` hook are methods a benchmark module
overrides. Rendering follows lm-evaluation-harness 0.4.x: description + few-shot examples
("{text} {target}", "\\n\\n" between) + "\\n\\n" + the query. `text_key` is what makes two rows
the same question (held-out checks); `fewshot_group` and `fewshot_sampler` say which solved
examples a question gets (prompts.fewshot_examples).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prefixopt.benchmarks.extract import extract_letter
from prefixopt.config import PROMPT_FORMATS, SCORINGS
from prefixopt.errors import PrefixoptError
from prefixopt.records import Question

LETTER_INSTRUCTION = "Answer with the letter of the correct choice."
TARGET_DELIMITER = " "  # harness: between the context and the target
FEWSHOT_DELIMITER = "\n\n"  # harness: between examples
# generate: (max_tokens, stop). The stops are harmless in chat format too (the chat model ends
# its turn with its EOS), so one setting serves both formats and the scorer needs only Requests.
CHOICE_GENERATE = (32, ("\n\nQuestion:", "</s>", "<|im_end|>"))


def normalise(text: str) -> str:
    """Whitespace runs to one space, stripped, case folded."""
    return " ".join(text.split()).casefold()


def lettered(q: Question) -> str:
    """'A. choice' lines, one per choice."""
    return "\n".join(
        f"{label}. {choice}" for label, choice in zip(q.labels, q.choices, strict=True)
    )


@dataclass(frozen=True)
class Task:
    """One benchmark. The base class renders a multiple-choice question; a benchmark module
    subclasses it, implements `parse_rows` and overrides what differs."""

    name: str  # the --benchmark value, e.g. "arc_easy"
    hub_id: str  # Hugging Face dataset id
    hub_config: str | None  # its config name (None: the dataset has one)
    splits: tuple[str, ...]  # base splits it has (local files may add more)
    train_split: str  # default split for policy updates
    eval_split: str  # default held-out split
    fewshot_split: str  # where few-shot examples come from
    default_scoring: str  # letter | cloze | generate
    expert_prompt: str  # the hand-written domain-expert system prompt
    scorings: tuple[str, ...] = SCORINGS  # the scorings it allows
    has_choices: bool = True  # False: free-form answers (generate only)
    generate: tuple[int, tuple[str, ...]] = CHOICE_GENERATE  # (max_tokens, stop)
    # "random": k examples drawn once with the run's seed, one block for every question;
    # "first_n": the first k examples of the question's own fewshot_group, in file order
    fewshot_sampler: str = "random"

    # ---- loading -------------------------------------------------------------------------
    @property
    def hub_name(self) -> str:
        """'id (config)' or 'id', as `prefixopt data` shows it."""
        return self.hub_id if self.hub_config is None else f"{self.hub_id} ({self.hub_config})"

    def default_split(self, purpose: str = "train") -> str:
        """The default split for purpose 'train' (policy updates) or 'eval'."""
        if purpose not in ("train", "eval"):
            raise PrefixoptError(f"unknown purpose {purpose!r}; valid: train, eval")
        return self.train_split if purpose == "train" else self.eval_split

    def parse_rows(self, rows: list[dict[str, Any]], split: str, where: str) -> list[Question]:
        """Upstream Hugging Face rows -> Questions (one module per benchmark family)."""
        raise NotImplementedError

    def offline_hint(self, split: str) -> str:
        """Appended to the 'no local file and the hub failed' error (what to use instead)."""
        return ""

    def context(self, q: Question) -> str | None:
        """What a question is about, for studies that condition on it (None: nothing)."""
        return None

    def text_key(self, q: Question) -> str:
        """The normalised text that identifies a question whatever its id: the stem and the
        choices, whitespace collapsed, case folded (two rows with equal keys are one question)."""
        return "\x1f".join(normalise(t) for t in (q.text, *q.choices))

    def fewshot_group(self, q: Question) -> str:
        """Which few-shot examples a question gets: one group ("") by default."""
        return ""

    # ---- rendering -----------------------------------------------------------------------
    def check_scoring(self, scoring: str) -> None:
        """Refuse a scoring this benchmark does not allow (one line, with the fix)."""
        if scoring not in self.scorings:
            why = "has no answer choices" if not self.has_choices else f"does not allow {scoring}"
            raise PrefixoptError(f"{self.name} {why}; use --scoring {' | '.join(self.scorings)}")

    def _check(self, prompt_format: str, scoring: str) -> None:
        if prompt_format not in PROMPT_FORMATS:
            raise PrefixoptError(f"unknown prompt format {prompt_format!r}; "
                                 f"valid: {', '.join(PROMPT_FORMATS)}")
        if scoring not in SCORINGS:
            raise PrefixoptError(f"unknown scoring {scoring!r}; valid: {', '.join(SCORINGS)}")
        self.check_scoring(scoring)

    def harness_description(self, q: Question) -> str:
        """A line before the few-shot examples (mmlu's subject line); empty by default."""
        return ""

    def harness_text(self, q: Question, scoring: str) -> str:
        """The harness's doc_to_text (no description, no few-shot)."""
        if scoring == "cloze":
            return f"Question: {q.text}\nAnswer:"
        return f"Question: {q.text}\n{lettered(q)}\nAnswer:"

    def chat_text(self, q: Question, scoring: str) -> str:
        """The user message for one question (without few-shot)."""
        if scoring == "cloze":
            return q.text
        return f"{q.text}\n\n{lettered(q)}\n\n{LETTER_INSTRUCTION}"

    def answer_text(self, q: Question, scoring: str) -> str:
        """The gold answer as it follows the question in a few-shot example (no delimiter)."""
        return q.choices[q.gold_index] if scoring == "cloze" else q.gold

    def render_harness(self, q: Question, scoring: str, fewshot: Sequence[Question] = ()) -> str:
        """Full harness prompt: description + few-shot examples + the query, no chat template."""
        self._check("harness", scoring)
        shots = [self.harness_text(s, scoring) + TARGET_DELIMITER + self.answer_text(s, scoring)
                 for s in fewshot]
        return (self.harness_description(q) + "".join(s + FEWSHOT_DELIMITER for s in shots)
                + self.harness_text(q, scoring))

    def render_user(self, q: Question, scoring: str, fewshot: Sequence[Question] = ()) -> str:
        """Chat user message: an optional few-shot block (solved examples), then the question."""
        self._check("chat", scoring)
        shots = [f"{self.chat_text(s, scoring)}\nAnswer: {self.answer_text(s, scoring)}"
                 for s in fewshot]
        return "".join(s + FEWSHOT_DELIMITER for s in shots) + self.chat_text(q, scoring)

    def continuations(self, q: Question, prompt_format: str) -> tuple[str, ...]:
        """Cloze: harness appends " {choice}" after "Answer:"; chat: the choice is the reply."""
        if prompt_format == "harness":
            return tuple(TARGET_DELIMITER + c for c in q.choices)
        return tuple(q.choices)

    def generate_params(self, q: Question) -> tuple[int, tuple[str, ...]]:
        """(max_tokens, stop strings) for generate scoring."""
        return self.generate

    # ---- reading generated answers -------------------------------------------------------
    def extract(self, q: Question, text: str) -> tuple[str | None, str]:
        """(prediction | None, rule) read from a completion: a choice letter by default."""
        return extract_letter(text, q.labels)

    def reference(self, q: Question) -> str:
        """The gold answer in the form `extract` returns."""
        return q.gold
