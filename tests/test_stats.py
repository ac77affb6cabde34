"""stats.py against reference values computed independently (by hand, in the comments)."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import binomtest

from prefixopt.evaluate import compare
from prefixopt import stats


def test_wilson_reference_values():
    # x=50, n=100, z=1.959964: centre = 0.5, half = z*sqrt(.25/100 + z^2/40000)/(1+z^2/100)
    # = 1.959964*0.050961/1.038415 = 0.096187 -> (0.4038, 0.5962)
    lo, hi = stats.wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4)
    assert hi == pytest.approx(0.5962, abs=1e-4)
    # x=0, n=10: lower bound 0, upper = z^2/(n+z^2) = 3.841459/13.841459 = 0.277533
    lo, hi = stats.wilson(0, 10)
    assert lo == pytest.approx(0.0, abs=1e-12)
    assert hi == pytest.approx(0.277533, abs=1e-5)


@pytest.mark.parametrize("x,n", [(1, 7), (62, 100), (950, 1000), (3, 3)])
def test_wilson_matches_scipy(x, n):
    ref = binomtest(x, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = stats.wilson(x, n)
    assert lo == pytest.approx(ref.low, abs=1e-9)
    assert hi == pytest.approx(ref.high, abs=1e-9)


def test_wilson_empty_is_nan():
    assert all(math.isnan(v) for v in stats.wilson(0, 0))


def _pairs(only_a: int, only_b: int, both: int = 3, neither: int = 4):
    a = [1] * only_a + [0] * only_b + [1] * both + [0] * neither
    b = [0] * only_a + [1] * only_b + [1] * both + [0] * neither
    return np.array(a, bool), np.array(b, bool)


def test_mcnemar_exact_reference_values():
    # b=10, c=2: p = 2 * P(X <= 2 | n=12, 1/2) = 2 * (1 + 12 + 66) / 4096 = 0.038574
    assert stats.mcnemar_exact(*_pairs(10, 2)) == pytest.approx(158 / 4096, rel=1e-9)
    # symmetric: swapping the two prefixes gives the same p
    assert stats.mcnemar_exact(*_pairs(2, 10)) == pytest.approx(158 / 4096, rel=1e-9)
    # b=5, c=0: p = 2 * (1/2)^5 = 0.0625
    assert stats.mcnemar_exact(*_pairs(5, 0)) == pytest.approx(0.0625, rel=1e-9)
    # equal discordant counts and no discordant pairs -> p = 1
    assert stats.mcnemar_exact(*_pairs(4, 4)) == pytest.approx(1.0)
    assert stats.mcnemar_exact(*_pairs(0, 0)) == 1.0


def test_holm_reference_values():
    # sorted: .005 (x4=.02), .01 (x3=.03), .03 (x2=.06), .04 (x1=.04 -> max with .06 = .06)
    p = np.array([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(stats.holm(p), [0.03, 0.06, 0.06, 0.02])
    # capped at 1, nan ignored (m counts only the finite p-values: m=2 here)
    out = stats.holm(np.array([0.6, np.nan, 0.7]))
    assert math.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [1.0, 1.0])
    # a single p-value is unchanged
    np.testing.assert_allclose(stats.holm(np.array([0.02])), [0.02])


def test_holm_never_smaller_than_raw_and_monotone():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=30)
    adj = stats.holm(p)
    assert np.all(adj >= p - 1e-15)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= -1e-15)


def test_bootstrap_is_seeded_and_close_to_normal_interval():
    rng = np.random.default_rng(0)
    d = rng.choice([-1.0, 0.0, 1.0], size=400, p=[0.15, 0.65, 0.2])
    a = stats.bootstrap_mean_ci(d, np.random.default_rng(7), 4000)
    b = stats.bootstrap_mean_ci(d, np.random.default_rng(7), 4000)
    assert a == b
    # normal approximation: mean +/- 1.96 * sd / sqrt(Q)
    half = 1.96 * d.std() / math.sqrt(len(d))
    assert a[0] == pytest.approx(d.mean() - half, abs=0.01)
    assert a[1] == pytest.approx(d.mean() + half, abs=0.01)
    assert stats.bootstrap_mean_ci(np.zeros(50), np.random.default_rng(0), 100) == (0.0, 0.0)


def test_compare_to_none_fields():
    a, b = _pairs(10, 2)  # 19 questions: a right on 13, b right on 5
    c = stats.compare_to_none(a, b, np.random.default_rng(0), 2000)
    assert (c.n, c.correct) == (19, 13)
    assert c.diff == pytest.approx((13 - 5) / 19)
    assert c.diff_low <= c.diff <= c.diff_high
    assert c.p_value == pytest.approx(158 / 4096)
    assert (c.ci_low, c.ci_high) == stats.wilson(13, 19)


def test_group_contrast():
    rng = np.random.default_rng(0)
    base = rng.uniform(size=(3, 300)) < 0.5
    # identical groups -> exactly zero difference and a degenerate interval
    same = stats.group_contrast("x", base, base, np.random.default_rng(0), 500)
    assert (same.diff, same.low, same.high) == (0.0, 0.0, 0.0)
    assert not same.excludes_zero
    # group a right on every question -> difference = 1 - mean(b)
    c = stats.group_contrast("y", np.ones((2, 300), bool), base, np.random.default_rng(0), 500)
    assert c.diff == pytest.approx(1 - base.mean())
    assert c.excludes_zero and (c.n_a, c.n_b) == (2, 3)


def test_winners_curse_gap():
    np.testing.assert_allclose(stats.winners_curse([0.7, 0.6], [0.55, 0.6]), [0.15, 0.0])
    # training questions 10 points easier than the held-out ones for everyone (no prefix goes
    # 0.6 -> 0.5): the raw gaps hold those 10 points, the difference of differences does not
    np.testing.assert_allclose(stats.winners_curse([0.7, 0.6], [0.55, 0.6], [0.6, 0.6], 0.5),
                               [0.05, -0.1])


def _eval_rows(correct: np.ndarray, kinds: list[str], person_ids: list[int]) -> pl.DataFrame:
    p, q = correct.shape
    return pl.DataFrame({
        "prefix_index": np.repeat(np.arange(p), q), "prefix_kind": np.repeat(kinds, q),
        "prefix": np.repeat([f"p{i}" for i in range(p)], q),
        "person_id": np.repeat(person_ids, q),
        "question_id": [f"q{j:03d}" for _ in range(p) for j in range(q)],
        "correct": correct.ravel()})


def test_random_people_are_resampled_with_the_questions():
    # 5 random people: 2 right on every question, 3 wrong on every one; no prefix and the
    # learned person wrong on every one. The questions carry no noise: all the uncertainty of
    # "random vs none" is which 5 names were drawn, i.e. the mean of 5 draws from
    # {1, 1, 0, 0, 0} = Binomial(5, 0.4) / 5, whose 2.5th and 97.5th percentiles are 0 and 0.8
    # (P(X = 0) = 0.078 > 0.025; P(X <= 3) = 0.913 < 0.975 <= P(X <= 4) = 0.990).
    # A bootstrap over questions alone gives [0.4, 0.4]: certainty about arbitrary names.
    q = 300
    correct = np.zeros((7, q), bool)
    correct[2:4] = True  # random people 2 and 3
    rows = _eval_rows(correct, ["none", "learned"] + ["random"] * 5, [-1, 7, 11, 12, 13, 14, 15])
    _, contrasts = compare.summarise(rows, stats.stats_rng(0), 10_000)
    by = {c.name: c for c in contrasts}
    rvn = by["random vs none"]
    assert rvn.diff == pytest.approx(0.4)
    assert (rvn.low, rvn.high) == (pytest.approx(0.0), pytest.approx(0.8))
    assert rvn.resampled == "questions+people" and not rvn.excludes_zero
    lvr = by["learned vs random"]
    assert (lvr.low, lvr.high) == (pytest.approx(-0.8), pytest.approx(0.0))
    assert lvr.resampled == "questions+people"
    # the learned person is what the run chose: only questions resampled (nothing to vary here)
    lvn = by["learned vs none"]
    assert (lvn.low, lvn.high, lvn.resampled) == (0.0, 0.0, "questions")


def test_questions_only_contrasts_keep_their_numbers():
    # resampling the random people draws from a child Generator, so every interval that
    # resamples only questions is the one the questions-only bootstrap gives, in any order
    rng = np.random.default_rng(4)
    correct = rng.uniform(size=(9, 200)) < 0.6
    kinds = ["none", "learned", "learned", "random", "random", "random", "handwritten",
             "handwritten", "random"]
    rows = _eval_rows(correct, kinds, [-1, 1, 2, 3, 4, 5, -1, -1, 6])
    _, contrasts = compare.summarise(rows, stats.stats_rng(3), 1000)
    ref = stats.stats_rng(3)
    for c in correct:  # summarise's per-prefix bootstraps come first
        stats.compare_to_none(c, correct[0], ref, 1000)
    k = np.asarray(kinds)
    for c in contrasts:
        a, b = c.name.split(" vs ")
        d = correct[k == a].mean(axis=0) - correct[k == b].mean(axis=0)
        lo_hi = stats.bootstrap_mean_ci(d, ref, 1000)  # what a questions-only bootstrap draws
        if c.resampled == "questions":
            assert (c.low, c.high) == lo_hi
        else:
            assert c.high - c.low > lo_hi[1] - lo_hi[0]  # people add width here


def test_jensen_shannon_reference_values():
    assert stats.jensen_shannon([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    assert stats.jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint: 1 bit
    # p=(1,0), q=(.5,.5): m=(.75,.25); KL(p||m)=log2(4/3)=.415037; KL(q||m)=.5*log2(2/3)
    # + .5*log2(2) = .207519; JSD = (.415037+.207519)/2 = .311278
    assert stats.jensen_shannon([1, 0], [0.5, 0.5]) == pytest.approx(0.311278, abs=1e-6)
    from scipy.spatial.distance import jensenshannon

    p, q = np.array([0.1, 0.2, 0.7]), np.array([0.3, 0.3, 0.4])
    assert stats.jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2)
