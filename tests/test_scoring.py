"""judge/score on hand-made Responses: argmax and margins, unparseable answers as data, and
exactly one engine call per score()."""

from __future__ import annotations

import math

import pytest

from prefixopt.errors import PrefixoptError
from prefixopt.records import NO_PERSON, Question, Request, Response
from prefixopt.ask.scoring import cloze_norm_pred, judge, resolve_scoring, score

Q = Question("arc_easy/q", "arc_easy", "Which is a gas?",
             ("ice", "steam", "wood", "a very long rock"), ("A", "B", "C", "D"), "B")
GSM = Question("gsm8k/test/1", "gsm8k", "2+2?", gold="1234")
LETTER = Request("p", NO_PERSON, Q, letters=Q.labels)
CLOZE = Request("p", NO_PERSON, Q, continuations=Q.choices)


def test_letter_argmax_and_margin() -> None:
    a = judge(LETTER, Response(logprobs=(-2.0, -0.5, -1.0, -3.0)), "letter")
    assert (a.correct, a.parsed, a.pred, a.gold, a.rule) == (True, True, "B", "B", "argmax")
    assert a.margin == pytest.approx(0.5)
    wrong = judge(LETTER, Response(logprobs=(-0.1, -0.7, -3.0, -4.0)), "letter")
    assert (wrong.correct, wrong.pred) == (False, "A") and wrong.margin == pytest.approx(-0.6)


def test_cloze_uses_raw_loglikelihood_and_norm_is_separate() -> None:
    resp = Response(logprobs=(-9.0, -6.0, -8.0, -10.0))
    a = judge(CLOZE, resp, "cloze")
    assert (a.pred, a.correct) == ("B", True) and a.margin == pytest.approx(2.0)
    # per character: -9/3, -6/5, -8/4, -10/16 -> D wins when length-normalised
    assert cloze_norm_pred(CLOZE, resp) == "D"


def test_missing_logprobs_are_unparsed_not_a_letter() -> None:
    for resp in (Response(), Response(logprobs=(-math.inf,) * 4)):
        a = judge(LETTER, resp, "letter")
        assert (a.parsed, a.correct, a.pred, a.rule) == (False, False, None, "none")


@pytest.mark.parametrize(
    ("text", "pred", "parsed", "correct", "rule"),
    [
        ("1000 + 234 = 1,234\n#### 1,234", "1234", True, True, "strict"),
        ("The answer is **1234.00**", "1234", True, True, "strict"),
        ("I think it is 1230 or so", "1230", True, False, "flexible"),
        ("", None, False, False, "none"),
    ],
)
def test_generate_numbers(text: str, pred: str | None, parsed: bool, correct: bool,
                          rule: str) -> None:
    a = judge(Request("p", 1, GSM), Response(text=text), "generate")
    assert (a.pred, a.parsed, a.correct, a.rule) == (pred, parsed, correct, rule)
    assert math.isnan(a.margin)


def test_generate_letters() -> None:
    req = Request("p", 1, Q)
    assert judge(req, Response(text="**B**"), "generate").correct
    a = judge(req, Response(text="A rock is not a gas."), "generate")
    assert (a.parsed, a.correct, a.pred) == (False, False, None)


class CountingEngine:
    def __init__(self) -> None:
        self.calls: list[tuple[int, str, int, tuple[str, ...]]] = []

    def run(self, requests, mode, *, max_tokens=1, stop=()):
        self.calls.append((len(requests), mode, max_tokens, tuple(stop)))
        return [Response(text=f"#### {i}") for i in range(len(requests))]


def test_score_makes_one_engine_call_in_order() -> None:
    eng = CountingEngine()
    reqs = [Request("p", k, GSM) for k in range(5)]
    responses, answers = score(eng, reqs, "generate")
    assert len(eng.calls) == 1 and eng.calls[0][:3] == (5, "generate", 256)
    assert "Question:" in eng.calls[0][3]
    assert [a.pred for a in answers] == [str(i) for i in range(5)]
    assert len(responses) == 5


def test_resolve_scoring() -> None:
    assert resolve_scoring("arc_easy", None) == "cloze"
    assert resolve_scoring("mmlu", None) == "letter"
    assert resolve_scoring("gsm8k", None) == "generate"
    assert resolve_scoring("hellaswag", "letter") == "letter"
    for bench, mode in (("gsm8k", "cloze"), ("arc_easy", "vibes")):
        with pytest.raises(PrefixoptError):
            resolve_scoring(bench, mode)
