"""Reading answers out of generated text, lm-evaluation-harness style: small regex steps, a
strict pattern first, a flexible fallback second, and an explicit invalid result (None, "none")
when nothing matches. Every function returns (prediction | None, rule) with rule in
{"strict", "flexible", "none"}, so each answer row records which rule matched.

Strict means an answer cue ("#### N", "The answer is N", "Answer: X", "the correct option is
X", ...). A model often corrects itself, so the LAST cue wins, and a number is read as the
final number of the cue's clause ("The answer is: 18 + 2 = 20" -> 20). The rules and their
measurement on real generations: docs/extraction.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

INVALID = (None, "none")
# one number: "1,234.50", "$5", "-3", "$.50". Thousands groups have exactly three digits
# ("3,4,5" is three numbers, not 345; the model's "4000,000" is one); a minus is a sign only
# when it touches the digits and does not follow a word or a closing bracket ("12 - 3" and
# "12-3" end in 3, never -3).
_DIGITS = r"(?:\d+(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|(?<!\d)\.\d+"
_NUM = rf"(?:(?<![\w)\]])-)?(?:\$\s?)?(?:{_DIGITS})"
_ANY_NUM = re.compile(_NUM)
# number cues: GSM8K's own "#### N", "The (final) answer is N", "Final answer: N"
_NUM_CUE = re.compile(
    r"####|(?i:\bthe\s+(?:final\s+)?answer\s+is\b|\bfinal\s+answer\s*(?::|\bis\b))\s*:?"
)
# where an answer clause ends: a line end, a sentence end (a period not inside a number), a
# semicolon, a bracket, or a word that starts a reason ("20 because he had 3" -> 20)
_CLAUSE_END = re.compile(
    r"\n|[.!?](?!\d)|;|,\s|\(|(?i:\b(?:because|since|as|so|which|for|per|each|but)\b)"
)
# letter cues: "answer is X", "Answer: X", "the correct one/option/choice is X", "the best
# answer would be (X)" - a cue word, then a separator (is / : / - / =), so the verb in "should
# I answer A or B?" is no cue
_CUE_WORDS = (r"answer|(?:correct|right|best)\s+(?:answer|one|option|choice|letter|response)"
              r"|(?:correct|right|best)\s+is")
_LETTER_CUE = (rf"(?i:\b(?:{_CUE_WORDS})(?:\s*(?:is|would\s+be|should\s+be|will\s+be|:|-|=))+"
               r"\s*(?:option\s+|choice\s+|letter\s+)?)\(?")
# words after which a capital "A" is a verb's subject/object letter, not an article
_NOT_ARTICLE = {"is", "was", "would", "should", "seems", "appears", "because", "since", "and",
                "or", "it", "as"}
# a letter ruled out: "not A", "B and C are wrong", "D is incorrect", "A isn't"
_NEG_BEFORE = re.compile(r"(?i:\b(?:not|nor|neither|except|exclude|excluding|eliminate|"
                         r"eliminates|rule\s+out|rules\s+out)\s+(?:option\s+|choice\s+)?\(?)$")
_NEG_AFTER = (r"\)?\s+(?P<neg>(?i:(?:is|are|was|were|seems|seem|looks|look)\s+(?:also\s+)?"
              r"(?:not\b|wrong|incorrect|false|invalid|irrelevant|unrelated)|"
              r"(?:isn't|aren't|wasn't|weren't|doesn't|don't|cannot|can't)\b))")


def normalize_number(s: str) -> str:
    """'1,234.00' -> '1234', '$5' -> '5', '-3.50' -> '-3.5', '7.' -> '7', '45%' -> '45',
    '$.50' -> '0.5'."""
    s = re.sub(r"[,$%\s*]", "", s).rstrip(".")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    s = re.sub(r"^(-?)\.", r"\g<1>0.", s)  # ".5" -> "0.5", as a gold answer writes it
    return "0" if s in ("-0", "") else s


def _clause_number(text: str, start: int) -> tuple[str, int] | None:
    """The final number of the answer clause that starts at `start` and where it ends."""
    rest = text[start:]
    end = _CLAUSE_END.search(rest)
    numbers = list(_ANY_NUM.finditer(rest[: end.start()] if end else rest))
    return (numbers[-1].group(0), start + numbers[-1].end()) if numbers else None


def _cut_off(text: str, answers: list[tuple[str, int]]) -> bool:
    """Did the token budget cut the last cue's clause? It reaches the end of the text and
    either stops on an operator ('The final answer is 12 +') or its number is the beginning of
    the number the cue before it answered ('The answer is 600.' repeated, then 'The answer is
    6'; a ',' or '.' at most after it)."""
    if len(answers) < 2:
        return False
    tail = text[answers[-1][1]:]
    if re.fullmatch(r"\s*[-+*/x\u00d7=]\s*", tail):
        return True
    before, last = (re.sub(r"\D", "", raw) for raw, _ in answers[-2:])
    return tail in ("", ",", ".") and len(before) > len(last) and before.startswith(last)


def extract_number(text: str) -> tuple[str | None, str]:
    """Strict: the last cue ('#### N', 'The answer is N', 'Final answer: N') whose clause holds
    a number, read as the clause's final number (one the token budget cut off gives way to the
    cue before it); else the last number in the text."""
    clean = text.replace("*", " ")  # "#### **42**"; same offsets as the text
    answers = [a for cue in _NUM_CUE.finditer(clean)
               if (a := _clause_number(clean, cue.end())) is not None]  # (number, end)
    if answers:
        raw = answers[-2 if _cut_off(clean, answers) else -1][0]
        return normalize_number(raw), "strict"
    numbers = _ANY_NUM.findall(clean)
    if numbers:
        return normalize_number(numbers[-1]), "flexible"
    return INVALID


def extract_answer(text: str) -> str | None:
    """GSM8K: the normalised number a completion answers with, or None (re-exported by gsm8k)."""
    return extract_number(text)[0]


def _ruled_out(clean: str, cls: str) -> set[int]:
    """Offsets of the letters the text rules out ('not A', 'B and C are wrong')."""
    letter = rf"\b{cls}\b"
    group = rf"{letter}\)?(?:\s*(?:,|and|or|nor|&|/)\s*\(?{letter}\)?)*"
    out = set()
    for match in re.finditer(group + _NEG_AFTER, clean):
        letters = clean[match.start(): match.start("neg")]  # "B and C" of "B and C are wrong"
        out.update(match.start() + m.start() for m in re.finditer(letter, letters))
    for match in re.finditer(letter, clean):
        if _NEG_BEFORE.search(clean[: match.start()]):
            out.add(match.start())
    return out


def _is_article(clean: str, match: re.Match[str]) -> bool:
    """'A dog is ...': a capital A followed by a lowercase word is an article, not a choice."""
    if match.group(1) != "A":
        return False
    after = re.match(r"\s+([A-Za-z]+)", clean[match.end():])
    return bool(after and after.group(1).islower() and after.group(1) not in _NOT_ARTICLE)


def _echoes_choices(clean: str, labels: Sequence[str]) -> bool:
    """Does the text open by copying the choice list ('A. x' then 'B. y' on the next line)?"""
    lines = [line.strip() for line in clean.splitlines() if line.strip()][:2]
    return len(labels) > 1 and len(lines) == 2 and all(
        re.match(rf"{re.escape(label)}[.):]", line)
        for label, line in zip(labels[:2], lines, strict=True))


def extract_letter(text: str, labels: Sequence[str]) -> tuple[str | None, str]:
    """Strict: a lone letter, the last answer cue ('Answer: X', 'the answer is X', 'the correct
    one is X'), '(X)' or 'X.'/'X)' at the start. A copied choice list without a cue is
    invalid. Flexible: the first standalone choice letter
    that is not the article 'A' in running text and that the text does not rule out."""
    if not labels:
        return INVALID
    cls = "[" + "".join(re.escape(x) for x in labels) + "]"
    clean = text.replace("*", "").strip()
    lone = re.fullmatch(rf"\W*({cls})\W*", clean)  # "B", "(B)", "**B**", "B."
    if lone:
        return lone.group(1), "strict"
    cues = list(re.finditer(_LETTER_CUE + rf"({cls})\b", clean))
    if cues:
        return cues[-1].group(1), "strict"
    if _echoes_choices(clean, labels):
        return INVALID  # the choice list copied out is no answer (never defaulted to "A")
    ruled_out = _ruled_out(clean, cls)
    for pattern in (rf"\(({cls})\)", rf"^({cls})[.):]"):  # "(B) sunlight", "B. Paris"
        for match in re.finditer(pattern, clean):
            if match.start(1) not in ruled_out:
                return match.group(1), "strict"
    for match in re.finditer(rf"\b({cls})\b", clean):
        if match.start() not in ruled_out and not _is_article(clean, match):
            return match.group(1), "flexible"
    return INVALID
