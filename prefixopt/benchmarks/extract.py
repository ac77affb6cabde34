"""Reading answers out of generated text, lm-evaluation-harness style: small regex steps, a
strict pattern first, a flexible fallback second, and an explicit invalid result (None, "none")
when nothing matches. Every function returns (prediction | None, rule) with rule in
{"strict", "flexible", "none"}, so each answer row records which rule matched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

INVALID = (None, "none")
_NUM = r"-?\$?\s*\d[\d,]*(?:\.\d+)?"  # 1,234.50  -$3  42
# strict: "#### N" (GSM8K's own format), then "The (final) answer is N"
_STRICT_NUM = (
    re.compile(r"####\s*\**\s*(" + _NUM + ")"),
    re.compile(r"(?i:the\s+(?:final\s+)?answer\s+is)\s*:?\s*\**\s*(" + _NUM + ")"),
)
_ANY_NUM = re.compile(_NUM)
# words after which a capital "A" is a verb's subject/object letter, not an article
_NOT_ARTICLE = {"is", "was", "would", "should", "seems", "appears", "because", "since", "and",
                "or", "it", "as"}


def normalize_number(s: str) -> str:
    """'1,234.00' -> '1234', '$5' -> '5', '-3.50' -> '-3.5', '7.' -> '7', '45%' -> '45'."""
    s = re.sub(r"[,$%\s*]", "", s).rstrip(".")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s == "-0" else s


def extract_number(text: str) -> tuple[str | None, str]:
    """Strict '#### N' / 'The answer is N', else the last number in the text."""
    for pattern in _STRICT_NUM:
        match = pattern.search(text)
        if match:
            return normalize_number(match.group(1)), "strict"
    numbers = _ANY_NUM.findall(text)
    if numbers:
        return normalize_number(numbers[-1]), "flexible"
    return INVALID


def extract_answer(text: str) -> str | None:
    """GSM8K: the normalised number a completion answers with, or None (re-exported by gsm8k)."""
    return extract_number(text)[0]


def extract_letter(text: str, labels: Sequence[str]) -> tuple[str | None, str]:
    """Strict: a lone letter, 'Answer: X' / 'answer is X', '(X)', or 'X.'/'X)' at the start.
    Flexible: the first standalone choice letter that is not the article 'A' in running text."""
    if not labels:
        return INVALID
    cls = "[" + "".join(re.escape(x) for x in labels) + "]"
    clean = text.replace("*", "").strip()
    strict = (
        rf"^\W*({cls})\W*$",  # "B", "(B)", "**B**", "B."
        rf"(?i:answer(?:\s+is)?)\s*[:\-]?\s*(?:option\s+|choice\s+)?\(?({cls})\b",
        rf"\(({cls})\)",
        rf"^({cls})[.):]",  # "B. Paris", "C) ..."
    )
    for pattern in strict:
        match = re.search(pattern, clean)
        if match:
            return match.group(1), "strict"
    for match in re.finditer(rf"\b({cls})\b", clean):
        letter = match.group(1)
        if letter == "A":
            after = re.match(r"\s+([A-Za-z]+)", clean[match.end():])
            if after and after.group(1).islower() and after.group(1) not in _NOT_ARTICLE:
                continue  # "A dog is ..." - an article
        return letter, "flexible"
    return INVALID
