"""Batched top-two Thompson sampling (Russo 2016; TRIPLE, NeurIPS 2024) over the people table with
Beta posteriors: person i's accuracy ~ Beta(a0_i + s_i, b0_i + n_i - s_i), the prior from field and
era by empirical Bayes (pooling.eb_prior, capped at B answers). Each iteration picks K distinct
people (per slot: the leader of its own posterior draw with probability beta, else the best other
person of a second, independent draw), who all answer the same B questions. Pure numpy.
"""

from __future__ import annotations

import numpy as np

from prefixopt.learn import pooling
from prefixopt.learn.pooling import beta_mean_sd, eb_prior


class TopTwoThompson:
    """Counts per person, the EB prior, the batched top-two draw, the ranking and P(best)."""

    name = "ttts"
    ranking_text = ("posterior mean under the field/era empirical-Bayes Beta prior, people tried "
                    "first (the untried follow by prior mean)")

    def __init__(self, field_index: np.ndarray, era_index: np.ndarray, k: int, b: int,
                 iterations: int, beta: float = 0.5) -> None:
        self.groups = [np.asarray(field_index), np.asarray(era_index)]
        n = len(field_index)
        self.k, self.b, self.iterations, self.beta = k, b, iterations, beta
        self.s = np.zeros(n)  # (N,) correct answers per person
        self.n = np.zeros(n)  # (N,) answers per person
        self.done = 0  # iterations observed

    # --- the posterior ------------------------------------------------------------------------
    def posterior(self) -> tuple[np.ndarray, np.ndarray]:
        a0, b0, _ = eb_prior(self.s, self.n, self.groups, cap=float(self.b))
        return a0 + self.s, b0 + self.n - self.s  # (N,), (N,)

    def propose(self, rng: np.random.Generator, num_questions: int
                ) -> tuple[np.ndarray, np.ndarray] | None:
        """(rows (K,), question indices (B,)) or None when the iterations are spent. Draws are
        moment-matched normals of the Beta posteriors (numpy's Beta sampler is ~4x slower;
        with a prior worth >= 2 answers the difference does not change who leads)."""
        if self.done >= self.iterations:
            return None
        a, b = self.posterior()
        mean, sd = (x.astype(np.float32) for x in beta_mean_sd(a, b))  # (N,) float32: speed
        k = min(self.k, len(a))
        # (2K, N): row 2s is slot s's leader draw, row 2s+1 its challenger draw; no row serves
        # two slots (a challenger's draw reused as the next leader's would tie the two picks)
        theta = rng.standard_normal((2 * k, len(a)), dtype=np.float32)
        theta *= sd
        theta += mean
        chosen: list[int] = []
        coin = rng.random(k)  # (K,)
        for slot in range(k):
            theta[:, chosen] = -np.inf  # the people chosen for this call are out
            leader = int(np.argmax(theta[2 * slot]))
            pick = leader
            if coin[slot] >= self.beta:  # the challenger: best of its own draw, leader aside
                draw = theta[2 * slot + 1]  # (N,) a view: restored below
                saved, draw[leader] = draw[leader], -np.inf
                pick = int(np.argmax(draw))
                pick = leader if not np.isfinite(draw[pick]) else pick
                draw[leader] = saved
            chosen.append(pick)
        questions = rng.choice(num_questions, size=min(self.b, num_questions), replace=False)
        return np.asarray(chosen), questions

    def observe(self, rows: np.ndarray, questions: np.ndarray, correct: np.ndarray,
                rng: np.random.Generator | None = None) -> None:
        """correct (K, B): the answers of this iteration; the counts take every one of them."""
        np.add.at(self.s, rows, correct.sum(axis=1))
        np.add.at(self.n, rows, correct.shape[1])
        self.done += 1

    @property
    def finished(self) -> bool:
        return self.done >= self.iterations

    # --- what the run reports -----------------------------------------------------------------
    def ranking(self) -> np.ndarray:
        """(N,) rows, best first: tried people by posterior mean, then the untried."""
        a, b = self.posterior()
        mean = a / (a + b)
        return np.lexsort((-mean, self.n == 0))  # tried (False) first, then by mean

    def best_probs(self, rng: np.random.Generator, draws: int = 200) -> np.ndarray:
        """(N,) P(best among the tried) under the Beta posteriors (pooling.best_probs)."""
        a, b = self.posterior()
        return pooling.best_probs(a, b, self.n > 0, rng, draws)

    def news(self, iteration: int, every: int) -> bool:
        """Measure P(best) every `every` iterations (and at the end)."""
        return (iteration + 1) % every == 0

    def stats(self) -> dict[str, float]:
        return {"people_tried": float((self.n > 0).sum())}

    def state(self) -> dict[str, np.ndarray]:
        return {"ttts_s": self.s, "ttts_n": self.n, "ttts_done": np.asarray(self.done)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.s = np.asarray(state["ttts_s"], float).copy()
        self.n = np.asarray(state["ttts_n"], float).copy()
        self.done = int(state["ttts_done"])
