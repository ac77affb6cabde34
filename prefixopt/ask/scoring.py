"""From Requests to judged Answers: choose the scoring mode, send every request to the engine
in ONE call, and judge each response. letter/cloze: prediction = argmax log-prob, margin =
gold minus the best other choice; generate: strict-then-flexible extraction, unparseable ->
parsed=False, counted wrong (never defaulted to a letter).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from prefixopt.benchmarks import get_task
from prefixopt.config import SCORINGS
from prefixopt.errors import PrefixoptError
from prefixopt.records import Answer, Request, Response


def resolve_scoring(benchmark: str, scoring: str | None) -> str:
    """The run's scoring mode: the given one (validated) or the benchmark's default."""
    task = get_task(benchmark)
    mode = task.default_scoring if scoring is None else scoring
    if mode not in SCORINGS:
        raise PrefixoptError(f"unknown --scoring {mode!r}; valid: {', '.join(SCORINGS)}")
    task.check_scoring(mode)
    return mode


def generate_settings(requests: Sequence[Request]) -> tuple[int, tuple[str, ...]]:
    """One (max_tokens, stop) for the whole batch: the largest budget, the union of stops."""
    params = {get_task(r.question.benchmark).generate_params(r.question) for r in requests}
    max_tokens = max(m for m, _ in params)
    stop = tuple(sorted({s for _, stops in params for s in stops}))
    return max_tokens, stop


def request_modes(requests: Sequence[Request], mode: str | Mapping[str, str]) -> list[str]:
    """Each request's scoring mode: the one mode, or its benchmark's from the mapping."""
    if isinstance(mode, str):
        return [mode] * len(requests)
    return [mode[r.question.benchmark] for r in requests]


def score(engine: object, requests: Sequence[Request], mode: str | Mapping[str, str]
          ) -> tuple[list[Response], list[Answer]]:
    """Exactly ONE engine.run for all requests, then judge each response (request order).
    mode: one scoring mode, or one per benchmark (letter, cloze and generate requests then go
    to the engine together, each with its own mode)."""
    if not requests:
        return [], []
    modes = request_modes(requests, mode)
    gen = [r for r, m in zip(requests, modes, strict=True) if m == "generate"]
    max_tokens, stop = generate_settings(gen) if gen else (1, ())
    arg = modes[0] if len(set(modes)) == 1 else modes
    responses = engine.run(requests, arg, max_tokens=max_tokens, stop=stop)
    if len(responses) != len(requests):
        raise RuntimeError(f"engine returned {len(responses)} responses for {len(requests)}")
    return responses, [judge(r, resp, m) for r, resp, m in zip(requests, responses, modes,
                                                                strict=True)]


def _argmax_answer(scores: Sequence[float], labels: Sequence[str], gold: str) -> Answer:
    """pred = best label; margin = gold score minus the best other score."""
    if len(scores) != len(labels) or not scores or all(math.isinf(s) for s in scores):
        return Answer(False, False, None, gold, math.nan, "none")
    best = max(range(len(scores)), key=scores.__getitem__)
    pred = labels[best]
    margin = confidence = math.nan
    if gold in labels and len(scores) > 1:
        g = labels.index(gold)
        margin = scores[g] - max(s for i, s in enumerate(scores) if i != g)
    if len(scores) > 1:  # how sure the model is of its own pick (what an ensemble may use)
        confidence = scores[best] - max(s for i, s in enumerate(scores) if i != best)
    return Answer(pred == gold, True, pred, gold, margin, "argmax", confidence)


def judge(request: Request, response: Response, mode: str) -> Answer:
    """Read one response. letter: log-probs per request.letters; cloze: summed log-likelihood
    per continuation (acc, not length-normalised: see cloze_norm_pred); generate: extraction."""
    q = request.question
    if mode == "letter":
        return _argmax_answer(response.logprobs, request.letters, q.gold)
    if mode == "cloze":
        return _argmax_answer(response.logprobs, q.labels, q.gold)
    if mode != "generate":
        raise PrefixoptError(f"unknown scoring mode {mode!r}; valid: {', '.join(SCORINGS)}")
    task = get_task(q.benchmark)
    pred, rule = task.extract(q, response.text)  # a letter, or gsm8k's number
    correct = pred is not None and pred == task.reference(q)
    return Answer(correct, pred is not None, pred, q.gold, math.nan, rule)


def cloze_norm_pred(request: Request, response: Response) -> str | None:
    """The harness's acc_norm prediction: log-likelihood / characters of the choice text."""
    q = request.question
    if len(response.logprobs) != len(q.choices) or not q.choices:
        return None
    norm = [lp / max(len(c), 1) for lp, c in zip(response.logprobs, q.choices, strict=True)]
    return q.labels[max(range(len(norm)), key=norm.__getitem__)]
