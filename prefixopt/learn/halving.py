"""Batched sequential halving (Karnin et al. 2013; TRIPLE, NeurIPS 2024) over the people table,
pure numpy: ceil(log2 n0) rounds; in round r every survivor answers the SAME t_r fresh questions
(one engine call, chunked by people into ~K x B prompts), then the better half by accuracy shrunk
toward field/era (empirical Bayes) survives. t_r: Karnin's split of the budget; n0 < N when it
cannot ask everyone T_MIN questions. P(best) (`probs`) uses the same shrunk posteriors.
"""

from __future__ import annotations

import math

import numpy as np

from prefixopt.learn import pooling
from prefixopt.learn.pooling import eb_prior

T_MIN = 2  # questions per person in round 1 at least; else the pool is halved before round 1


def schedule(n0: int, budget: int, num_questions: int) -> list[tuple[int, int]]:
    """[(survivors n_r, questions per survivor t_r)] per round. t_r = floor(c / n_r) with the
    largest c whose rounds cost <= budget, Karnin's equal split per round; the survivors of a
    round have answered every earlier round's questions, so the t_r are capped cumulatively by
    the training split's size (fresh questions only) and the surplus goes to the early rounds."""
    sizes = [n0]
    while sizes[-1] > 1:
        sizes.append(math.ceil(sizes[-1] / 2))
    sizes = sizes[:-1] or [n0]  # the rounds are played by these many (the last by 2)

    def plan(c: float) -> list[tuple[int, int]]:
        out, used = [], 0
        for n in sizes:
            t = min(int(c // n), num_questions - used)
            out.append((n, t))
            used += t
        return out

    lo, hi = 0.0, float(budget) * 2
    for _ in range(60):  # bisection on c: the cost is monotone in c
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sum(n * t for n, t in plan(mid)) <= budget else (lo, mid)
    return plan(lo)


def start_pool(n_people: int, budget: int, num_questions: int) -> int:
    """n0: all N when round 1 can ask each T_MIN questions, else N halved until it can."""
    n0 = n_people
    while n0 > 2 and schedule(n0, budget, num_questions)[0][1] < T_MIN:
        n0 = math.ceil(n0 / 2)
    return n0


class SequentialHalving:
    """The rounds, the survivors, their paired answers so far, the elimination record."""

    name = "halving"
    ranking_text = ("round reached (sequential halving), then cumulative accuracy shrunk toward "
                    "field/era (empirical Bayes) within the round a person left in")

    def __init__(self, field_index: np.ndarray, era_index: np.ndarray, k: int, b: int,
                 budget: int, num_questions: int, rng: np.random.Generator) -> None:
        n = len(field_index)
        self.groups = [np.asarray(field_index), np.asarray(era_index)]
        self.chunk = max(1, k * b)  # prompts per engine call, at most (one person at least)
        self.cap = float(b)  # the EB prior is worth at most B answers (as in ttts)
        n0 = start_pool(n, budget, num_questions)
        self.plan = np.asarray(schedule(n0, budget, num_questions), dtype=np.int64)  # (R, 2)
        pool = np.sort(rng.choice(n, size=n0, replace=False)) if n0 < n else np.arange(n)
        self.alive = pool  # (n_r,) rows of this round's survivors
        self.s, self.n = np.zeros(n), np.zeros(n)  # (N,) cumulative correct / answered
        self.reached = np.full(n, -1)  # (N,) last round played (-1: not in the pool)
        self.reached[pool] = 0
        self.score = np.zeros(n)  # (N,) shrunk accuracy when the person left (or now)
        self.round, self.next = 0, 0  # the round and the first survivor not yet asked
        self.questions = np.zeros(0, dtype=np.int64)  # (t_r,) this round's questions
        self.asked = np.zeros(num_questions, dtype=bool)  # (Q,) used by an earlier round

    @property
    def finished(self) -> bool:
        return self.round >= len(self.plan) or len(self.alive) <= 1

    def propose(self, rng: np.random.Generator, num_questions: int
                ) -> tuple[np.ndarray, np.ndarray] | None:
        """(rows, question indices): the next chunk of this round's survivors and the round's
        questions (drawn at the start of the round, fresh ones first); None when done."""
        while not self.finished and self.plan[self.round, 1] == 0:
            self._end_round(rng)  # no question left for this round: decide on what is known
        if self.finished:
            return None
        t = int(self.plan[self.round, 1])
        if self.next == 0:
            fresh = np.flatnonzero(~self.asked)
            self.questions = rng.choice(fresh, size=min(t, len(fresh)), replace=False)
            self.asked[self.questions] = True
        per_call = max(1, self.chunk // max(len(self.questions), 1))
        rows = self.alive[self.next:self.next + per_call]
        return rows, self.questions

    def observe(self, rows: np.ndarray, questions: np.ndarray, correct: np.ndarray,
                rng: np.random.Generator) -> None:
        """correct (S, t_r) for the chunk just proposed; the round ends after its last chunk."""
        np.add.at(self.s, rows, correct.sum(axis=1))
        np.add.at(self.n, rows, correct.shape[1])
        self.next += len(rows)
        if self.next >= len(self.alive):
            self._end_round(rng)

    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        """(a (N,), b (N,)): the Beta posteriors under the field/era EB prior; their means are
        the shrunk scores the rounds pick on."""
        a0, b0, _ = eb_prior(self.s, self.n, self.groups, cap=self.cap)
        return a0 + self.s, b0 + self.n - self.s

    def _end_round(self, rng: np.random.Generator) -> None:
        a, b = self.posterior()
        shrunk = a / (a + b)  # (N,)
        alive = self.alive
        self.score[alive] = shrunk[alive]
        self.reached[alive] = self.round
        order = rng.permutation(len(alive))  # ties broken at random
        order = order[np.argsort(-shrunk[alive][order], kind="stable")]
        keep = np.sort(order[: math.ceil(len(alive) / 2)])
        self.alive = alive[keep]
        self.reached[self.alive] = self.round + 1
        self.round, self.next = self.round + 1, 0

    # --- what the run reports -----------------------------------------------------------------
    def ranking(self) -> np.ndarray:
        """(N,) rows, best first: later round reached first, then the shrunk score."""
        return np.lexsort((-self.score, -self.reached))

    def best_probs(self, rng: np.random.Generator, draws: int = 200) -> np.ndarray:
        """(N,) P(best among the tried) under the shrunk Beta posteriors (pooling.best_probs):
        the same model the rounds pick on, over everyone asked, not only the last round."""
        a, b = self.posterior()
        return pooling.best_probs(a, b, self.n > 0, rng, draws)

    def news(self, iteration: int, every: int) -> bool:
        """Is there a new finished round to measure P(best) on (after this observe)?"""
        return self.next == 0

    def stats(self) -> dict[str, float]:
        return {"round": float(self.round), "survivors": float(len(self.alive))}

    def state(self) -> dict[str, np.ndarray]:
        return {"hv_s": self.s, "hv_n": self.n, "hv_reached": self.reached, "hv_score": self.score,
                "hv_alive": self.alive, "hv_round": np.asarray(self.round),
                "hv_next": np.asarray(self.next), "hv_questions": self.questions,
                "hv_asked": self.asked, "hv_plan": self.plan}

    def load_state(self, st: dict[str, np.ndarray]) -> None:
        """A checkpoint of this or an older version (whose answer matrices, hv_matrix, hv_new
        and hv_last_*, fed the old final-round bootstrap and are not needed any more)."""
        self.s, self.n = np.array(st["hv_s"], float), np.array(st["hv_n"], float)
        self.reached, self.score = np.array(st["hv_reached"]), np.array(st["hv_score"], float)
        self.alive, self.round = np.array(st["hv_alive"]), int(st["hv_round"])
        self.next, self.questions = int(st["hv_next"]), np.array(st["hv_questions"])
        self.asked, self.plan = np.array(st["hv_asked"], bool), np.array(st["hv_plan"])
