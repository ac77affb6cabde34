"""Answer extraction on realistic model outputs: strict first, flexible fallback, explicit
invalid result; numbers compared after normalisation."""

from __future__ import annotations

import pytest

from prefixopt.benchmarks.extract import (
    extract_answer,
    extract_letter,
    extract_number,
    normalize_number,
)

ABCD = ("A", "B", "C", "D")


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("1,234", "1234"), ("$5", "5"), ("45%", "45"), ("18.00", "18"), ("7.0", "7"),
        ("7.", "7"), ("-3.50", "-3.5"), ("0.25", "0.25"), ("-0", "0"), ("100", "100"),
        ("**42**", "42"), ("2,000,000.0", "2000000"),
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
    ],
)
def test_extract_letter(text: str, want: str | None, rule: str) -> None:
    assert extract_letter(text, ABCD) == (want, rule)


def test_extract_letter_five_labels_and_no_labels() -> None:
    assert extract_letter("Answer: E", ("A", "B", "C", "D", "E")) == ("E", "strict")
    assert extract_letter("B", ()) == (None, "none")
