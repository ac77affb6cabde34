"""Answer extraction on realistic model outputs: strict first, flexible fallback, explicit
invalid result; numbers compared after normalisation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from prefixopt.benchmarks.extract import (
    extract_answer,
    extract_letter,
    extract_number,
    normalize_number,
)

ABCD = ("A", "B", "C", "D")
# real generations of the embedded model (scripts/extraction_check.py, docs/extraction.md),
# each with the answer a reader sees in it ("want"; null: it gives none)
REAL = [json.loads(line) for line in
        (Path(__file__).parent / "data" / "extraction_generations.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("1,234", "1234"), ("$5", "5"), ("45%", "45"), ("18.00", "18"), ("7.0", "7"),
        ("7.", "7"), ("-3.50", "-3.5"), ("0.25", "0.25"), ("-0", "0"), ("100", "100"),
        ("**42**", "42"), ("2,000,000.0", "2000000"),
        # issue 8: a number written without its leading zero reads as the gold writes it
        ("$.50", "0.5"), (".5", "0.5"), ("-.25", "-0.25"),
    ],
)
def test_normalize_number(raw: str, want: str) -> None:
    assert normalize_number(raw) == want


@pytest.mark.parametrize(
    ("text", "want", "rule"),
    [
        ("She has 3 + 4 = 7 apples.\n#### 7", "7", "strict"),
        ("Total: 1,200 + 34 = 1,234\n#### 1,234", "1234", "strict"),
        ("#### $18.00", "18", "strict"),
        ("#### **42**", "42", "strict"),
        ("The temperature drops 15 degrees. #### -8", "-8", "strict"),
        ("First 10 then 20. The answer is 30.", "30", "strict"),
        ("So the final answer is: **$1,050**", "1050", "strict"),
        ("The answer is -12 degrees", "-12", "strict"),
        ("She earns 12 per hour for 5 hours, so 60 dollars.", "60", "flexible"),
        ("It costs $2.50 each, so 4 cost $10.00 in total.", "10", "flexible"),
        ("He walks 3.5 km", "3.5", "flexible"),
        ("The result is **75%** of the class.", "75", "flexible"),
        ("", None, "none"),
        ("I don't know.", None, "none"),
        # strict beats a later number in the text
        ("#### 5\nQuestion: Tom has 9 cats", "5", "strict"),
        # issue 8, each reproduced on the old rules: the final number of the answer clause,
        # "$.50" is half a dollar, "3,4,5" is three numbers, "- 3" is no negative number
        ("The answer is: 18 + 2 = 20", "20", "strict"),
        ("$.50", "0.5", "flexible"),
        ("3,4,5", "5", "flexible"),
        ("so 12 - 3", "3", "flexible"),
        ("so 12-3", "3", "flexible"),
        # the last cue wins (a model correcting itself), its clause ends at the reason
        ("The answer is 18.\nWait, 18 + 2 = 20 so the answer is 20.", "20", "strict"),
        ("#### 18\nNo: 18 + 2 = 20\n#### 20", "20", "strict"),
        ("The answer is 12 because he had 3 bags of 4.", "12", "strict"),
        ("The answer is 5, not 3.", "5", "strict"),
        ("The answer is $1,050.50 in total", "1050.5", "strict"),
        ("Final answer: 42", "42", "strict"),
        # a cue whose clause has no number gives way to an earlier cue, then to the last number
        ("The answer is 7.\nThe answer is above.", "7", "strict"),
        ("The answer is unknown, maybe 4 or 6", "6", "flexible"),
        ("1,2345 items", "2345", "flexible"),
        ("So 500,000 + 3500,000 = 4000,000 dollars", "4000000", "flexible"),
        # the token budget cut the last cue's number: the cue before it, which it begins
        ("The answer is 600.\n\nThe answer is 600.\n\nThe answer is 6", "600", "strict"),
        ("The answer is 11,600.\n\nThe answer is 11,", "11600", "strict"),
        ("The answer is 24.\nThe final answer is 12 +", "24", "strict"),
        ("The answer is 12.\nThe answer is 13", "13", "strict"),  # not a beginning of 12
        ("The answer is 60.\nThe answer is 6\n", "6", "strict"),  # the line was finished
    ],
)
def test_extract_number(text: str, want: str | None, rule: str) -> None:
    assert extract_number(text) == (want, rule)
    assert extract_answer(text) == want


@pytest.mark.parametrize(
    ("text", "want", "rule"),
    [
        ("B", "B", "strict"),
        (" C\n", "C", "strict"),
        ("**D**", "D", "strict"),
        ("(A)", "A", "strict"),
        ("Answer: C", "C", "strict"),
        ("The answer is B because plants need light.", "B", "strict"),
        ("**Answer:** D. Mitochondria", "D", "strict"),
        ("I think the correct choice is (B) sunlight.", "B", "strict"),
        ("B. Sunlight is the source of energy", "B", "strict"),
        ("A is correct because it mentions energy.", "A", "flexible"),
        ("A plant needs sunlight, so C is right.", "C", "flexible"),
        ("A good guess would be D", "D", "flexible"),
        ("a dog is an animal", None, "none"),
        ("A dog is an animal.", None, "none"),
        ("", None, "none"),
        ("The DNA of a cell", None, "none"),  # letters inside words do not count
        ("E", None, "none"),  # not one of the labels
        # issue 8, each reproduced on the old rules: the last cue wins, the common cue
        # phrasings count, a letter the text rules out is not the answer
        ("answer A or B? The answer is C", "C", "strict"),
        ("B and C are wrong; A", "A", "flexible"),
        ("Vitamin C helps; the correct one is D", "D", "strict"),
        ("The correct option is B.", "B", "strict"),
        ("The best choice would be (C) because it is warm.", "C", "strict"),
        ("So the right answer is D, not A.", "D", "strict"),
        ("It is not A, so B.", "B", "flexible"),
        ("C, because A and B are wrong.", "C", "flexible"),
        ("(A) is wrong, (B) is right", "B", "strict"),
        ("A is correct because B is wrong", "A", "flexible"),  # not the last letter
        ("Should I answer A or B?", "A", "flexible"),  # a verb, no cue
        # the choice list copied out is no answer, unless a cue follows it
        ("A. gravity\nB. wind velocity\nC. kinetic energy\nD. potential energy", None, "none"),
        ("A. I only\nB. II only", None, "none"),
        ("A. copper\nB. iron\n\nThe correct answer is B. iron.", "B", "strict"),
        ("A. oxygen", "A", "strict"),
        ("B. use of CFCs\n\nC. methods of waste storage", "B", "strict"),
    ],
)
def test_extract_letter(text: str, want: str | None, rule: str) -> None:
    assert extract_letter(text, ABCD) == (want, rule)


def test_extract_letter_five_labels_and_no_labels() -> None:
    assert extract_letter("Answer: E", ("A", "B", "C", "D", "E")) == ("E", "strict")
    assert extract_letter("B", ()) == (None, "none")


@pytest.mark.parametrize("row", REAL, ids=[f"{r['question_id']}@{r['person_id']}" for r in REAL])
def test_real_generations_read_as_a_reader_reads_them(row: dict) -> None:
    if row["benchmark"] == "gsm8k":
        pred, rule = extract_number(row["text"])
    else:
        pred, rule = extract_letter(row["text"], tuple(row["labels"]))
    assert pred == row["want"]
    assert (rule == "none") == (row["want"] is None)
