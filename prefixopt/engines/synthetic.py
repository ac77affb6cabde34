"""A synthetic engine with planted per-person accuracies, for learner studies (the scenarios
live in engines/scenarios.py, the `prefixopt simulate` driver in learn/simulate.py;
engines.build.synthetic_engine builds one for a scenario).
P(correct | person, q) = sigmoid(logit(acc_person) + d_q), with a per-question difficulty
d_q ~ N(0, difficulty_sd) shared by everyone (so common random numbers matter, as
on real benchmarks) and a Bernoulli draw hashed from (seed, person_id, question_id): the same
person asked the same question again gives the same answer. No LLM, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from prefixopt.records import NO_PERSON, Request, Response

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser, vectorised on uint64 (wrap-around arithmetic is the point)."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _M64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
        return z ^ (z >> np.uint64(31))


def _hash_str(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


class SyntheticEngine:
    """Implements the Engine protocol from planted accuracies (N,), row-aligned with people."""

    api = "completions"  # log-probs for every choice (letter, cloze, margin)
    persona_placement = "system"  # render_chat keeps the system text, as a first paragraph
    deterministic = True  # answers drawn from a seeded generator per (person, question)

    def __init__(
        self,
        people,  # prefixopt.people.People (only .person_id is used)
        accuracy: np.ndarray,
        base_accuracy: float = 0.5,
        difficulty_sd: float = 1.0,
        seed: int = 0,
    ) -> None:
        person_ids = np.asarray(people.person_id, dtype=np.int64)
        # (N,) for every benchmark, or {benchmark: (N,)} (a planted effect per benchmark)
        by_benchmark = dict(accuracy) if isinstance(accuracy, dict) else {}
        default = np.full(len(person_ids), base_accuracy) if by_benchmark else accuracy
        self.accuracy = np.asarray(default, dtype=float)
        if any(np.shape(a) != person_ids.shape for a in (self.accuracy, *by_benchmark.values())):
            raise ValueError("accuracy must have one entry per person row")
        self._benchmark_logit = {b: _logit(np.asarray(a, float)) for b, a in by_benchmark.items()}
        order = np.argsort(person_ids)
        self._sorted_ids, self._sorted_rows = person_ids[order], order
        self._person_logit = _logit(self.accuracy)  # (N,)
        self._base_logit = float(_logit(np.asarray(base_accuracy)))
        self.base_accuracy, self.difficulty_sd, self.seed = base_accuracy, difficulty_sd, seed
        self._questions: dict[str, tuple[int, float]] = {}  # question_id -> (hash, d_q)

    def _question(self, question_id: str) -> tuple[int, float]:
        if question_id not in self._questions:
            h = _hash_str(question_id)
            d = np.random.default_rng([self.seed, h]).normal() * self.difficulty_sd
            self._questions[question_id] = (h, float(d))
        return self._questions[question_id]

    def correct(self, person_ids: np.ndarray, question_ids: Sequence[str],
                benchmarks: Sequence[str] | None = None) -> np.ndarray:
        """(M,) bool: the planted Bernoulli outcome for each (person_id, question_id) pair
        (benchmarks (M,): each question's, when accuracies are planted per benchmark)."""
        person_ids = np.asarray(person_ids, dtype=np.int64)
        qs = [self._question(q) for q in question_ids]
        q_hash = np.array([h for h, _ in qs], dtype=np.uint64)  # (M,)
        d_q = np.array([d for _, d in qs])  # (M,)
        found = np.searchsorted(self._sorted_ids, person_ids).clip(0, len(self._sorted_ids) - 1)
        rows = self._sorted_rows[found]
        person_logit = self._person_logit[rows]  # (M,)
        if self._benchmark_logit and benchmarks is not None:
            for b, table in self._benchmark_logit.items():
                mask = np.asarray(benchmarks) == b
                person_logit[mask] = table[rows[mask]]
        logit = np.where(person_ids == NO_PERSON, self._base_logit, person_logit)
        p = 1.0 / (1.0 + np.exp(-(logit + d_q)))  # (M,)
        key = _mix64(np.uint64(self.seed) ^ _mix64(person_ids.astype(np.uint64)))
        u = (_mix64(key ^ q_hash) >> np.uint64(11)).astype(float) * 2.0**-53  # (M,) in [0, 1)
        return u < p

    # --- the Engine protocol ------------------------------------------------------------------
    def render_chat(self, system: str | None, user: str) -> str:
        return user if system is None else f"{system}\n\n{user}"

    def run(
        self,
        requests: Sequence[Request],
        mode: str | Sequence[str],
        *,
        max_tokens: int = 1,
        stop: Sequence[str] = (),
    ) -> list[Response]:
        ok = self.correct(
            np.fromiter((r.person_id for r in requests), np.int64, len(requests)),
            [r.question.question_id for r in requests],
            [r.question.benchmark for r in requests],
        )
        modes = [mode] * len(requests) if isinstance(mode, str) else list(mode)
        out = []
        for req, good, m in zip(requests, ok, modes, strict=True):
            q = req.question
            tokens = max(1, len(req.prompt) // 4)
            if m == "generate":
                pred = q.gold if good else _wrong_answer(q.gold, q.labels)
                out.append(Response(text=f"The answer is {pred}.", prompt_tokens=tokens,
                                    output_tokens=6))
                continue
            n = len(req.continuations) or len(req.letters) or len(q.labels)
            gold = q.gold_index
            logprobs = [-3.0] * n
            # gold highest iff correct: margin +1 or -1. The runner-up is 1 below the pick
            # either way, so the model's confidence (top-1 minus top-2) says nothing about
            # correctness, as an ensemble that reads it must not be handed the answer
            other = (gold + 1) % n
            logprobs[gold], logprobs[other] = (-1.0, -2.0) if good else (-2.0, -1.0)
            out.append(Response(logprobs=tuple(logprobs), prompt_tokens=tokens,
                                output_tokens=1 if m == "letter" else 0))
        return out

    def fingerprint(self) -> dict[str, Any]:
        """The planted tables (info() lists only the scalar settings)."""
        return {"accuracy": self.accuracy, "person_ids": self._sorted_ids,
                "by_benchmark": dict(sorted(self._benchmark_logit.items()))}

    def info(self) -> dict[str, str]:
        return {"engine": "synthetic", "base_accuracy": str(self.base_accuracy),
                "difficulty_sd": str(self.difficulty_sd), "seed": str(self.seed)}


def _wrong_answer(gold: str, labels: Sequence[str]) -> str:
    if labels:
        return next(lab for lab in labels if lab != gold)
    try:
        return str(int(float(gold)) + 1)
    except ValueError:
        return gold + "0"
