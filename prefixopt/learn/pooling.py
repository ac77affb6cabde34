"""Empirical-Bayes sharing through field and era for the bandit learners (halving, ttts): every
person's accuracy gets a Beta(kappa m, kappa (1 - m)) prior whose mean m is the pooled mean plus
the person's field and era offsets (each shrunk toward the pooled mean), and whose strength kappa
is the method-of-moments estimate of the between-person spread, capped; and P(best) under those
Beta posteriors (both learners' `probs`). Pure numpy.
"""

from __future__ import annotations

import numpy as np

KAPPA_MIN = 2.0  # the prior is always worth at least 2 answers


def group_means(s: np.ndarray, n: np.ndarray, index: np.ndarray, strength: float,
                overall: float) -> np.ndarray:
    """(G,) each group's accuracy shrunk toward `overall` with `strength` pseudo-answers."""
    g = int(index.max()) + 1 if len(index) else 0
    hits = np.bincount(index, weights=s, minlength=g)  # (G,)
    asked = np.bincount(index, weights=n, minlength=g)  # (G,)
    return (hits + strength * overall) / (asked + strength)


def eb_prior(s: np.ndarray, n: np.ndarray, groups: list[np.ndarray], cap: float,
             strength: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """s, n (N,): correct answers and answers per person; groups: (N,) index arrays (field,
    era). Returns (a0 (N,), b0 (N,), kappa). m = overall + sum of the groups' offsets, clipped to
    [0.02, 0.98]; kappa = mean m(1-m) / tau^2 - 1 with tau^2 the spread of the answered people's
    means around m beyond binomial noise, clipped to [KAPPA_MIN, cap]."""
    s, n = np.asarray(s, float), np.asarray(n, float)
    total = n.sum()
    overall = float(s.sum() / total) if total > 0 else 0.5
    strength = 4 * cap if strength is None else strength
    m = np.full(len(s), overall)  # (N,)
    for index in groups:
        m += group_means(s, n, index, strength, overall)[index] - overall
    m = np.clip(m, 0.02, 0.98)
    kappa = cap
    tried = n > 0
    if tried.sum() >= 10:
        p_hat = s[tried] / n[tried]
        mt = m[tried]
        tau2 = np.mean((p_hat - mt) ** 2) - np.mean(mt * (1 - mt) / n[tried])
        if tau2 > 0:
            kappa = float(np.clip(np.mean(mt * (1 - mt)) / tau2 - 1, KAPPA_MIN, cap))
    return kappa * m, kappa * (1 - m), float(kappa)


def beta_mean_sd(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of Beta(a, b), elementwise."""
    t = a + b
    return a / t, np.sqrt(a * b / (t * t * (t + 1)))


def best_probs(a: np.ndarray, b: np.ndarray, tried: np.ndarray, rng: np.random.Generator,
               draws: int = 200) -> np.ndarray:
    """(N,) P(best among the tried) under independent Beta(a, b) posteriors, by Monte Carlo
    (`draws` joint Beta draws: a moment-matched normal's upper tail is too heavy for people with
    few answers, 0.12 instead of 0.35 in tests/test_confidence.py). Every tried person whose
    posterior can reach the best one's takes part (upper 5-sd bound above the highest lower
    bound), however many: leaving anyone out would hand their wins to the others. 0 for the
    untried."""
    out = np.zeros(len(a))
    idx = np.flatnonzero(tried)
    if len(idx) == 0:
        return out
    mean, sd = beta_mean_sd(a[idx], b[idx])  # (T,)
    cand = idx[mean + 5 * sd >= (mean - 5 * sd).max()]  # (C,)
    theta = rng.beta(a[cand], b[cand], size=(draws, len(cand)))  # (D, C)
    out[cand] = np.bincount(theta.argmax(axis=1), minlength=len(cand)) / draws
    return out
