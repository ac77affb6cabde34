"""Question rendering per benchmark x prompt format (chat | harness) x scoring (letter | cloze
| generate): the user message or harness prompt, cloze continuations, few-shot answer text,
and generate max_tokens / stop. Harness strings follow lm-evaluation-harness 0.4.x task yamls
(arc: "Question: {q}\\nAnswer:" + " {choice}"; hellaswag: query + " {ending}"; mmlu: question,
"A. .." lines, "Answer:" + " A"; gsm8k: "Question: {q}\\nAnswer:"), joined as the harness does:
description + few-shot examples ("{text} {target}", "\\n\\n" between) + "\\n\\n" + the query.
"""

from __future__ import annotations

from collections.abc import Sequence

from prefixopt.errors import PrefixoptError
from prefixopt.records import Question

LETTER_INSTRUCTION = "Answer with the letter of the correct choice."
GSM8K_INSTRUCTION = "Solve it step by step, then give the final answer on its own line as #### N."
TARGET_DELIMITER = " "  # harness: between the context and the target
FEWSHOT_DELIMITER = "\n\n"  # harness: between examples
# generate: (max_tokens, stop). The harness's gsm8k stops; they are harmless in chat format
# too (the chat model ends its turn with its EOS), so one setting serves both formats and the
# scorer needs only the Requests.
GSM8K_GENERATE = (256, ("Question:", "</s>", "<|im_end|>"))
CHOICE_GENERATE = (32, ("\n\nQuestion:", "</s>", "<|im_end|>"))


def _check(prompt_format: str, scoring: str, q: Question) -> None:
    if prompt_format not in ("chat", "harness"):
        raise PrefixoptError(f"unknown prompt format {prompt_format!r}; valid: chat, harness")
    if scoring not in ("letter", "cloze", "generate"):
        raise PrefixoptError(f"unknown scoring {scoring!r}; valid: letter, cloze, generate")
    if not q.choices and scoring != "generate":
        raise PrefixoptError(f"{q.benchmark} has no answer choices; use --scoring generate")


def lettered(q: Question) -> str:
    """'A. choice' lines, one per choice."""
    return "\n".join(
        f"{label}. {choice}" for label, choice in zip(q.labels, q.choices, strict=True)
    )


def harness_text(q: Question, scoring: str) -> str:
    """The harness's doc_to_text (no description, no few-shot)."""
    if q.benchmark == "gsm8k":
        return f"Question: {q.text}\nAnswer:"
    if q.benchmark == "hellaswag" and scoring == "cloze":
        return q.text  # already "activity label: context", cleaned like the harness
    if q.benchmark == "mmlu" or scoring in ("letter", "generate"):
        stem = q.text.strip() if q.benchmark == "mmlu" else f"Question: {q.text}"
        return f"{stem}\n{lettered(q)}\nAnswer:"
    return f"Question: {q.text}\nAnswer:"  # arc (and mmlu-free) cloze


def harness_description(q: Question) -> str:
    """mmlu's per-subject description line; empty for the other benchmarks."""
    if q.benchmark == "mmlu" and q.subject:
        subject = q.subject.replace("_", " ")
        return f"The following are multiple choice questions (with answers) about {subject}.\n\n"
    return ""


def chat_text(q: Question, scoring: str) -> str:
    """The user message for one question (without few-shot)."""
    if q.benchmark == "gsm8k":
        return f"{q.text}\n\n{GSM8K_INSTRUCTION}"
    if scoring == "cloze":
        return q.text
    return f"{q.text}\n\n{lettered(q)}\n\n{LETTER_INSTRUCTION}"


def answer_text(q: Question, scoring: str) -> str:
    """The gold answer as it follows the question in a few-shot example (no delimiter)."""
    if q.benchmark == "gsm8k":
        return q.solution or f"#### {q.gold}"
    if scoring == "cloze":
        return q.choices[q.gold_index]
    return q.gold


def continuations(q: Question, prompt_format: str) -> tuple[str, ...]:
    """Cloze: harness appends " {choice}" after "Answer:"; chat: the choice is the reply."""
    if prompt_format == "harness":
        return tuple(TARGET_DELIMITER + c for c in q.choices)
    return tuple(q.choices)


def render_harness(q: Question, scoring: str, fewshot: Sequence[Question] = ()) -> str:
    """Full harness prompt: description + few-shot examples + the query, no chat template."""
    _check("harness", scoring, q)
    shots = [harness_text(s, scoring) + TARGET_DELIMITER + answer_text(s, scoring) for s in fewshot]
    return (
        harness_description(q)
        + "".join(s + FEWSHOT_DELIMITER for s in shots)
        + harness_text(q, scoring)
    )


def render_user(q: Question, scoring: str, fewshot: Sequence[Question] = ()) -> str:
    """Chat user message: an optional few-shot block (solved examples), then the question."""
    _check("chat", scoring, q)
    shots = [f"{chat_text(s, scoring)}\nAnswer: {answer_text(s, scoring)}" for s in fewshot]
    return "".join(s + FEWSHOT_DELIMITER for s in shots) + chat_text(q, scoring)


def generate_params(q: Question) -> tuple[int, tuple[str, ...]]:
    """(max_tokens, stop strings) for generate scoring."""
    return GSM8K_GENERATE if q.benchmark == "gsm8k" else CHOICE_GENERATE
