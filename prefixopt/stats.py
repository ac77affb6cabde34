"""Statistics for honest held-out comparisons: Wilson intervals for accuracies, paired
differences against no prefix (seeded paired bootstrap + exact McNemar), Holm correction across
all prefixes compared, group contrasts (learned vs random / hand-written; the random people are
resampled as well as the questions, a two-way bootstrap) and the winner's-curse gap (training
minus held-out accuracy, net of the same gap for no prefix), and `summarise`, the per-prefix
table and contrasts that eval writes and report recomputes. numpy/scipy/polars in memory, no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest, norm

from prefixopt import analysis

ALPHA = 0.05


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (nan, nan for n = 0)."""
    if n <= 0:
        return (math.nan, math.nan)
    z = float(norm.ppf(0.5 + confidence / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> float:
    """Exact (binomial) McNemar p-value for paired bools a, b (Q,): two-sided test that the
    discordant pairs split 50/50. No discordant pairs -> p = 1."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    only_a = int(np.sum(a & ~b))  # a right, b wrong
    only_b = int(np.sum(~a & b))
    n = only_a + only_b
    if n == 0:
        return 1.0
    return float(binomtest(only_a, n, 0.5, alternative="two-sided").pvalue)


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (same order as the input; nan stays nan)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.minimum(1.0, (m - np.arange(m)) * p[order])  # (m - rank) * p_(rank)
    out[order] = np.maximum.accumulate(adjusted)  # step-down: never below an earlier one
    return out


def bootstrap_mean_ci(
    d: np.ndarray,
    rng: np.random.Generator,
    num_samples: int = 10_000,
    confidence: float = 0.95,
    chunk: int = 1_000,
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(d) over questions. d (Q,) holds one paired value
    per question (e.g. correct_a - correct_b), so resampling questions keeps the pairing."""
    d = np.asarray(d, dtype=float)
    q = len(d)
    if q == 0:
        return (math.nan, math.nan)
    means = np.empty(num_samples)
    for start in range(0, num_samples, chunk):  # chunks keep the (chunk, Q) index block small
        size = min(chunk, num_samples - start)
        idx = rng.integers(0, q, size=(size, q))  # (size, Q) resampled question indices
        means[start : start + size] = d[idx].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return (float(lo), float(hi))


@dataclass(frozen=True)
class Comparison:
    """One prefix against the no-prefix baseline on the same questions."""

    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    diff: float  # accuracy - accuracy of no prefix (paired, same questions)
    diff_low: float
    diff_high: float
    p_value: float  # exact McNemar


def compare_to_none(
    correct: np.ndarray,
    none_correct: np.ndarray,
    rng: np.random.Generator,
    num_samples: int = 10_000,
) -> Comparison:
    """Accuracy + Wilson CI of one prefix, and its paired difference vs no prefix."""
    a = np.asarray(correct, dtype=bool)  # (Q,)
    b = np.asarray(none_correct, dtype=bool)  # (Q,)
    n, k = len(a), int(a.sum())
    lo, hi = wilson(k, n)
    d = a.astype(float) - b.astype(float)  # (Q,) in {-1, 0, 1}
    dlo, dhi = bootstrap_mean_ci(d, rng, num_samples)
    return Comparison(
        n=n,
        correct=k,
        accuracy=k / n if n else math.nan,
        ci_low=lo,
        ci_high=hi,
        diff=float(d.mean()) if n else math.nan,
        diff_low=dlo,
        diff_high=dhi,
        p_value=mcnemar_exact(a, b),
    )


@dataclass(frozen=True)
class Contrast:
    """Difference between the mean accuracies of two groups of prefixes."""

    name: str
    diff: float
    low: float
    high: float
    n_a: int  # prefixes in group a
    n_b: int
    # what the bootstrap resampled: "questions", or "questions+people" when a group is a draw
    # of random people (then the interval also covers which people happened to be drawn)
    resampled: str = "questions"

    @property
    def excludes_zero(self) -> bool:
        return not (self.low <= 0.0 <= self.high)


@dataclass(frozen=True)
class Group:
    """One side of a contrast: one (P_e, Q_e) block per evaluation (rows prefixes, columns that
    evaluation's questions, in order). sampled: the rows are people drawn from the pool, so the
    bootstrap resamples them too; joint: every block has the same people in the same row order
    (one draw of people per replicate serves all blocks), else each block draws its own."""

    blocks: tuple[np.ndarray, ...]
    sampled: bool = False
    joint: bool = True

    @property
    def resampled(self) -> bool:  # one person cannot show how much the choice of people matters
        return self.sampled and min(len(b) for b in self.blocks) >= 2

    def means(self) -> np.ndarray:
        """(Q,) per question the group's mean correctness, evaluations concatenated."""
        return np.concatenate([b.mean(axis=0) for b in self.blocks])

    def replicate_means(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """(size, Q) the same with the people resampled (with replacement) in each replicate."""
        out, w = [], None
        for b in self.blocks:  # b (R, Q_e)
            if w is None or not self.joint:
                pick = rng.integers(0, len(b), size=(size, len(b)))  # (size, R) people drawn
                w = np.zeros((size, len(b)))
                np.add.at(w, (np.arange(size)[:, None], pick), 1.0 / len(b))  # (size, R)
            out.append(w @ b)  # (size, Q_e)
        return np.concatenate(out, axis=1)


def two_way_ci(a: Group, b: Group, rng: np.random.Generator, num_samples: int = 10_000,
               confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of mean_q(a_q - b_q) resampling the questions and,
    independently, the people of a sampled group. The questions come from rng exactly as in
    bootstrap_mean_ci, the people from a child of rng (spawn draws nothing), so whatever rng
    draws next is what a questions-only bootstrap would leave. Resampling both ways counts
    the person x question noise twice, so the interval errs wide (Owen 2007, the pigeonhole
    bootstrap); with few people (5 by default) its people part is rough."""
    people_rng = rng.spawn(1)[0]
    fixed_a, fixed_b = a.means()[None, :], b.means()[None, :]  # (1, Q)
    q = fixed_a.shape[1]
    chunk = 1_000  # bootstrap_mean_ci's: the same question draws, chunk by chunk
    means = np.empty(num_samples)
    for start in range(0, num_samples, chunk):
        size = min(chunk, num_samples - start)
        idx = rng.integers(0, q, size=(size, q))  # (size, Q) resampled question indices
        va = a.replicate_means(people_rng, size) if a.resampled else fixed_a  # (size|1, Q)
        vb = b.replicate_means(people_rng, size) if b.resampled else fixed_b
        d = np.broadcast_to(va - vb, (size, q))  # (size, Q)
        means[start : start + size] = np.take_along_axis(d, idx, axis=1).mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return (float(lo), float(hi))


def contrast(name: str, a: Group, b: Group, rng: np.random.Generator,
             num_samples: int = 10_000) -> Contrast:
    """Mean accuracy of group a minus group b over the same questions: a paired bootstrap over
    questions, and over the people of a sampled group as well (two_way_ci)."""
    n_a = max((len(x) for x in a.blocks), default=0)
    n_b = max((len(x) for x in b.blocks), default=0)
    if not n_a or not n_b or not all(x.size for x in (*a.blocks, *b.blocks)):
        return Contrast(name, math.nan, math.nan, math.nan, n_a, n_b)
    d = a.means() - b.means()  # (Q,) per-question difference of group means
    if a.resampled or b.resampled:
        lo, hi = two_way_ci(a, b, rng, num_samples)
        return Contrast(name, float(d.mean()), lo, hi, n_a, n_b, "questions+people")
    lo, hi = bootstrap_mean_ci(d, rng, num_samples)
    return Contrast(name, float(d.mean()), lo, hi, n_a, n_b)


def group_contrast(name: str, group_a: np.ndarray, group_b: np.ndarray,
                   rng: np.random.Generator, num_samples: int = 10_000,
                   sampled: tuple[bool, bool] = (False, False)) -> Contrast:
    """Mean accuracy of group a minus group b, with a paired bootstrap over questions (and over
    the people of a group marked sampled, (a, b)). group_a (Pa, Q), group_b (Pb, Q): rows are
    prefixes, columns the SAME questions."""
    a = np.atleast_2d(np.asarray(group_a, dtype=float))
    b = np.atleast_2d(np.asarray(group_b, dtype=float))
    return contrast(name, Group((a,), sampled[0]), Group((b,), sampled[1]), rng, num_samples)


def winners_curse(train_accuracy: np.ndarray, heldout_accuracy: np.ndarray,
                  none_train: np.ndarray | None = None, none_heldout: float | None = None
                  ) -> np.ndarray:
    """Per learned person (K,): training minus held-out accuracy, less the same gap for no
    prefix on the same training and held-out questions (a difference of differences: the raw
    gap also holds the splits' difference in difficulty, ARC train vs test, MMLU validation vs
    test; no prefix was not selected, so what remains is selection). A positive gap is the
    expected winner's curse. Without the no-prefix figures: the raw gap."""
    raw = np.asarray(train_accuracy, dtype=float) - np.asarray(heldout_accuracy, dtype=float)
    if none_train is None or none_heldout is None:
        return raw
    return raw - (np.asarray(none_train, dtype=float) - float(none_heldout))


correct_matrix = analysis.correct_matrix  # the eval table as a paired (P, Q) matrix
question_clusters = analysis.question_clusters
jensen_shannon = analysis.jensen_shannon  # between two learned distributions


def stats_rng(seed: int) -> np.random.Generator:
    """The bootstrap's Generator for an eval with this seed (eval and report share it)."""
    return np.random.default_rng([seed, 1])
