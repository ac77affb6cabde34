"""analysis.py queries on small hand-made frames (LazyFrame in, LazyFrame out)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from prefixopt.evaluate import compare
from prefixopt import analysis, stats

from prefixopt.evaluate import heldout
from prefixopt.errors import PrefixoptError

PEOPLE = pl.DataFrame({
    "person_id": [10, 11, 12, 13],
    "name": ["Ada", "Bo", "Cy", "Di"],
    "field": ["Science", "Science", "Arts", "Sports"],
    "era": ["Modern", "Modern", "Ancient", "Modern"],
})


def test_mass_by_field_against_pool_share():
    pp = analysis.people_probs(PEOPLE, np.array([0.5, 0.3, 0.15, 0.05]))
    got = analysis.mass_by(pp, "field").collect()
    assert got["field"].to_list() == ["Science", "Arts", "Sports"]
    np.testing.assert_allclose(got["mass"], [0.8, 0.15, 0.05])
    np.testing.assert_allclose(got["pool_share"], [0.5, 0.25, 0.25])
    np.testing.assert_allclose(got["ratio"], [1.6, 0.6, 0.2])
    assert analysis.top_people(pp, 2).collect()["name"].to_list() == ["Ada", "Bo"]


def test_float_aggregates_are_the_same_on_every_collect():
    """polars' grouped float sum depends on thread timing (a study and its resumed twin wrote
    report/field_mass tables that differed in the last bit, in CI); the report's float
    aggregates must not: 40 collects of each on 20,000 rows in 17 groups, split into chunks,
    are identical (the plain polars sum differed in ~4 of 10 repeats on this 2-core box)."""
    rng = np.random.default_rng(0)
    n = 20_000
    people = pl.concat([pl.DataFrame({
        "person_id": np.arange(i, i + 500), "name": ["x"] * 500,
        "field": [f"f{j}" for j in rng.integers(0, 17, 500)], "era": ["Modern"] * 500})
        for i in range(0, n, 500)], rechunk=False)  # 40 chunks, as a concatenated table
    probs = rng.dirichlet(np.full(n, 0.1))  # (N,)
    samples = pl.DataFrame({"person_id": rng.integers(0, 17, n), "name": "x", "field": "f",
                            "era": "e", "reward": rng.integers(0, 7, n) / 7})
    mass = [analysis.mass_by(analysis.people_probs(people, probs), "field").collect()
            for _ in range(40)]
    rewards = [analysis.person_train_rewards(samples.lazy()).collect() for _ in range(40)]
    assert all(m.equals(mass[0]) for m in mass) and all(r.equals(rewards[0]) for r in rewards)
    fields = people["field"].to_numpy()
    want = {f: probs[fields == f].sum() for f in np.unique(fields)}
    np.testing.assert_allclose(mass[0]["mass"], [want[f] for f in mass[0]["field"]], rtol=1e-12)
    np.testing.assert_allclose(rewards[0]["train_reward"], samples.group_by("person_id").agg(
        pl.col("reward").mean()).sort("person_id")["reward"], rtol=1e-12)


def test_person_train_rewards():
    samples = pl.LazyFrame({
        "iteration": [0, 0, 1, 1], "person_id": [10, 12, 10, 10],
        "name": ["Ada", "Cy", "Ada", "Ada"], "field": ["Science", "Arts", "Science", "Science"],
        "era": ["Modern", "Ancient", "Modern", "Modern"], "reward": [0.5, 0.25, 0.75, 1.0],
    })
    got = analysis.person_train_rewards(samples).collect()
    assert got["person_id"].to_list() == [10, 12]
    assert got["times_sampled"].to_list() == [3, 1]
    np.testing.assert_allclose(got["train_reward"], [0.75, 0.25])


def test_person_train_answers_counts_repeats_per_benchmark():
    answers = pl.LazyFrame({
        "person_id": [10, 10, 10, 12, 10], "question_id": ["a/1", "a/1", "a/2", "a/1", "b/1"],
        "benchmark": ["a", "a", "a", "a", "b"], "correct": [True, False, True, True, True]})
    got = analysis.person_train_answers(answers, [10], "a").collect()
    assert got.rows() == [(10, "a/1", 2, 1), (10, "a/2", 1, 1)]
    assert len(analysis.person_train_answers(answers, [10, 12]).collect()) == 4


def _rows(correct: np.ndarray, kinds: list[str]) -> pl.DataFrame:
    p, q = correct.shape
    return pl.DataFrame({
        "prefix_index": np.repeat(np.arange(p), q), "prefix_kind": np.repeat(kinds, q),
        "prefix": np.repeat([f"p{i}" for i in range(p)], q), "person_id": np.repeat(-1, q * p),
        "question_id": [f"q{j:03d}" for _ in range(p) for j in range(q)],
        "correct": correct.ravel(), "parsed": np.ones(p * q, bool),
    })


def test_correct_matrix_and_summary_are_paired():
    rng = np.random.default_rng(0)
    correct = rng.uniform(size=(3, 40)) < 0.5
    rows = _rows(correct, ["none", "learned", "random"])
    meta, mat = stats.correct_matrix(rows.lazy())
    np.testing.assert_array_equal(mat, correct)
    assert meta["prefix_kind"].to_list() == ["none", "learned", "random"]
    summary, contrasts = compare.summarise(rows, np.random.default_rng(1), 200)
    acc = analysis.eval_accuracy(rows.lazy()).collect()
    np.testing.assert_allclose(summary["accuracy"], acc["accuracy"])
    np.testing.assert_allclose(summary["diff_vs_none"], correct.mean(1) - correct[0].mean())
    assert summary["p_holm"][0] is None or np.isnan(summary["p_holm"][0])
    assert [c.name for c in contrasts] == ["learned vs none", "learned vs random", "random vs none"]
    # a prefix that answered other questions is refused: the comparison must be paired
    bad = rows.with_columns(
        pl.when(pl.col("prefix_index") == 2).then(pl.lit("zzz")).otherwise(pl.col("question_id"))
        .alias("question_id"))
    with pytest.raises(PrefixoptError, match="paired"):
        stats.correct_matrix(bad.lazy())


def test_eval_name_is_safe_and_unambiguous():
    a = heldout.eval_name("validation[:50%]", None, 0)
    b = heldout.eval_name("validation[50%:]", None, 0)
    assert a != b and all(c.isalnum() or c in "_-." for c in a + b)
    assert heldout.eval_name("test", None, 0) == "test"
    assert heldout.eval_name("test", 100, 3) == "test_n100_seed3"


def test_field_mass_side_by_side_and_alignment():
    a = analysis.people_probs(PEOPLE, np.array([0.7, 0.1, 0.1, 0.1]))
    b = analysis.people_probs(PEOPLE.head(3), np.array([0.2, 0.2, 0.6]))
    side = analysis.field_mass_side_by_side({
        "a": analysis.mass_by(a, "field"), "b": analysis.mass_by(b, "field")}).collect()
    assert side.columns == ["field", "a", "b"]
    assert side.filter(pl.col("field") == "Sports")["b"][0] == 0.0
    al = analysis.aligned_probs(a, b).collect()
    assert al["person_id"].to_list() == [10, 11, 12, 13]
    assert al["prob_b"].to_list()[-1] == 0.0
