"""Statistics for honest held-out comparisons: Wilson intervals for accuracies, paired
differences against no prefix (seeded paired bootstrap + exact McNemar), Holm correction across
all prefixes compared, group contrasts (learned vs random / hand-written) and the winner's-curse
gap between training reward and held-out accuracy, and `summarise`, the per-prefix table and
contrasts that eval writes and report recomputes. numpy/scipy/polars in memory, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.stats import binomtest, norm

from prefixopt import analysis
from prefixopt.errors import PrefixoptError

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

    @property
    def excludes_zero(self) -> bool:
        return not (self.low <= 0.0 <= self.high)


def group_contrast(
    name: str,
    group_a: np.ndarray,
    group_b: np.ndarray,
    rng: np.random.Generator,
    num_samples: int = 10_000,
) -> Contrast:
    """Mean accuracy of group a minus group b, with a paired bootstrap over questions.
    group_a (Pa, Q), group_b (Pb, Q): rows are prefixes, columns the SAME questions."""
    a = np.atleast_2d(np.asarray(group_a, dtype=float))
    b = np.atleast_2d(np.asarray(group_b, dtype=float))
    if a.size == 0 or b.size == 0:
        return Contrast(name, math.nan, math.nan, math.nan, len(a) if a.size else 0,
                        len(b) if b.size else 0)
    d = a.mean(axis=0) - b.mean(axis=0)  # (Q,) per-question difference of group means
    lo, hi = bootstrap_mean_ci(d, rng, num_samples)
    return Contrast(name, float(d.mean()), lo, hi, a.shape[0], b.shape[0])


def winners_curse(train_reward: np.ndarray, heldout_accuracy: np.ndarray) -> np.ndarray:
    """Per learned person: training-time reward minus held-out accuracy (K,). A positive mean
    gap is the expected winner's curse: the people picked for high noisy training scores regress
    toward the mean on new questions."""
    return np.asarray(train_reward, dtype=float) - np.asarray(heldout_accuracy, dtype=float)


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (0 = identical, 1 = disjoint) between two
    distributions over the same people (aligned arrays; each is renormalised)."""
    p = np.asarray(p, dtype=float) / np.sum(p)
    q = np.asarray(q, dtype=float) / np.sum(q)
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return 0.5 * kl(p) + 0.5 * kl(q)


def correct_matrix(rows: pl.LazyFrame) -> tuple[pl.DataFrame, np.ndarray]:
    """The eval table as prefix info (P rows) and a (P, Q) correctness matrix whose columns are
    the same questions for every prefix (checked: the comparison is paired)."""
    meta = analysis.eval_prefixes(rows).collect()
    long = analysis.eval_long(rows).collect()
    p, q = len(meta), int(meta["questions"][0]) if len(meta) else 0
    paired = bool((meta["questions"] == q).all())
    qids = long["question_id"].to_numpy().reshape(p, q) if paired else None  # (P, Q)
    if not paired or not (qids == qids[:1]).all():
        raise PrefixoptError("eval rows are not paired: every prefix must answer the same questions")
    correct = long["correct"].to_numpy().reshape(p, q)  # (P, Q) bool
    return meta.drop("questions"), correct


def question_clusters(rows: pl.DataFrame) -> np.ndarray | None:
    """(Q,) cluster label per question in correct_matrix's column order (sorted question ids),
    or None when the questions do not cluster (no `cluster` column, or all null)."""
    if "cluster" not in rows.columns or rows["cluster"].null_count() == len(rows):
        return None
    per_q = rows.select("question_id", "cluster").unique("question_id").sort("question_id")
    return per_q["cluster"].fill_null("-").to_numpy()


def stats_rng(seed: int) -> np.random.Generator:
    """The bootstrap's Generator for an eval with this seed (eval and report share it)."""
    return np.random.default_rng([seed, 1])


def summarise(
    rows: pl.DataFrame, rng: np.random.Generator, num_samples: int
) -> tuple[pl.DataFrame, list[Contrast]]:
    """Per-prefix accuracy + comparison with no prefix (Holm across prefixes), and the group
    contrasts. `rows` is the eval table; every prefix answered the same questions."""
    meta, correct = correct_matrix(rows.lazy())  # (P,) prefix info, (P, Q) bool
    kinds = meta["prefix_kind"].to_list()
    if "none" not in kinds:
        raise PrefixoptError("an evaluation needs the no-prefix baseline")
    none = correct[kinds.index("none")]  # (Q,)
    comps = [compare_to_none(c, none, rng, num_samples) for c in correct]
    pvals = np.array([math.nan if k == "none" else c.p_value for k, c in zip(kinds, comps)])
    clusters = question_clusters(rows)  # (Q,) or None
    extra = []
    if clusters is not None:  # questions that share a subject: whole clusters resampled, and
        from prefixopt.robustness import cluster_bootstrap  # the decision uses these

        boot = [cluster_bootstrap(c.astype(float) - none, clusters, rng, num_samples)
                for c in correct]
        pvals_cluster = np.array([math.nan if k == "none" else b[2]
                                  for k, b in zip(kinds, boot)])
        extra = [pl.Series("diff_low_cluster", [b[0] for b in boot]),
                 pl.Series("diff_high_cluster", [b[1] for b in boot]),
                 pl.Series("p_cluster", pvals_cluster)]
        pvals = np.fmax(pvals, pvals_cluster)  # the more cautious of McNemar and clustered
    p_holm = holm(pvals)  # across every prefix compared with none
    summary = meta.with_columns(
        pl.Series("n", [c.n for c in comps]),
        pl.Series("correct", [c.correct for c in comps]),
        pl.Series("accuracy", [c.accuracy for c in comps]),
        pl.Series("ci_low", [c.ci_low for c in comps]),
        pl.Series("ci_high", [c.ci_high for c in comps]),
        pl.Series("diff_vs_none", [c.diff for c in comps]),
        pl.Series("diff_low", [c.diff_low for c in comps]),
        pl.Series("diff_high", [c.diff_high for c in comps]),
        pl.Series("p_value", [math.nan if k == "none" else c.p_value
                              for k, c in zip(kinds, comps)]),
        *extra,
        pl.Series("p_holm", p_holm),
        pl.Series("significant", np.nan_to_num(p_holm, nan=1.0) < ALPHA),
    )
    return summary, contrasts(kinds, correct, rng, num_samples)


def contrasts(
    kinds: Sequence[str], correct: np.ndarray, rng: np.random.Generator, num_samples: int
) -> list[Contrast]:
    """learned vs none / random / hand-written: difference of group mean accuracies (Q-paired)."""
    kinds_arr = np.asarray(kinds)
    group = {k: correct[kinds_arr == k]
             for k in ("learned", "none", "random", "handwritten", "contextual")}
    group["top learned"] = group["learned"][:1]  # the global top person (contextual runs)
    out = []
    for a, b in (("learned", "none"), ("learned", "random"), ("learned", "handwritten"),
                 ("random", "none"), ("handwritten", "none"), ("contextual", "none"),
                 ("contextual", "top learned")):
        if len(group[a]) and len(group[b]):
            out.append(group_contrast(f"{a} vs {b}", group[a], group[b], rng, num_samples))
    return out


def pooled_contrasts(evals: Sequence[pl.DataFrame], rng: np.random.Generator,
                     num_samples: int) -> list[Contrast]:
    """The group contrasts over the questions of several evaluations together (a run trained on
    several benchmarks, one eval each): per question the mean correctness of each group, then
    a paired bootstrap over all questions. Groups missing from an eval are left out."""
    per_kind: dict[str, list[np.ndarray]] = {}
    for rows in evals:
        meta, correct = correct_matrix(rows.lazy())  # (P,), (P, Q)
        kinds = np.asarray(meta["prefix_kind"].to_list())
        for kind in set(kinds):
            per_kind.setdefault(kind, []).append(correct[kinds == kind].mean(axis=0))  # (Q,)
    whole = {k: np.concatenate(v) for k, v in per_kind.items() if len(v) == len(evals)}
    out = []
    for a, b in (("learned", "none"), ("learned", "random"), ("random", "none"),
                 ("handwritten", "none"), ("contextual", "none")):
        if a in whole and b in whole:
            out.append(group_contrast(f"pooled {a} vs {b}", whole[a], whole[b], rng,
                                      num_samples))
    return out

