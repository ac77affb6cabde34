"""Polars queries over a run's tables: LazyFrame in, LazyFrame out, no printing, no reading
(tables come from runs.scan; the caller collects at the edge). Used by evaluate/heldout.py
(training rewards and training answers of learned people), evaluate/compare.py (the eval table
as a paired (P, Q) matrix) and report/page.py (curves, top people, mass by field/era, evals).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from prefixopt.errors import PrefixoptError


def ordered_sum(name: str) -> pl.Expr:
    """A group's float sum, for agg(), that is the same bit for bit on every run. polars adds a
    group's float values in an order that depends on its threads (376 of 1,000 repeats of one
    group_by mean differed in the last bit on a 2-core box), so one run's report, built twice,
    differed; a group keeps its rows in input order (polars' group_by contract), so summing
    them as one list adds them in the same order every time."""
    return pl.col(name).implode().list.sum()


def ordered_mean(name: str) -> pl.Expr:
    """ordered_sum / the group's size: a float mean for agg() that is the same on every run."""
    return ordered_sum(name) / pl.len()


def training_curve(iterations: pl.LazyFrame) -> pl.LazyFrame:
    """One row per iteration: reward mean/std band, baseline, entropy, top-person probability."""
    return iterations.select(
        "iteration", "mean_reward", "std_reward", "baseline", "entropy", "top_person_id",
        "top_prob",
        lo=pl.col("mean_reward") - pl.col("std_reward"),
        hi=pl.col("mean_reward") + pl.col("std_reward"),
    ).sort("iteration")


def person_train_rewards(samples: pl.LazyFrame) -> pl.LazyFrame:
    """Per sampled person: how often it was sampled and its mean training reward."""
    return (
        samples.group_by("person_id")
        .agg(
            pl.col("name").first(), pl.col("field").first(), pl.col("era").first(),
            times_sampled=pl.len().cast(pl.Int64),
            train_reward=ordered_mean("reward"),
        )
        .sort("person_id")
    )


def person_train_answers(answers: pl.LazyFrame, person_ids, benchmark: str | None = None
                         ) -> pl.LazyFrame:
    """Per (person, training question) of the given people: how often it was asked (`asked`)
    and answered right (`right`), from the answers table; only `benchmark`'s questions when
    given (a run on several benchmarks is evaluated one benchmark at a time)."""
    lf = answers.filter(pl.col("person_id").is_in([int(p) for p in person_ids]))
    if benchmark is not None and "benchmark" in lf.collect_schema().names():
        lf = lf.filter(pl.col("benchmark") == benchmark)
    return (lf.group_by("person_id", "question_id")
            .agg(asked=pl.len().cast(pl.Int64), right=pl.col("correct").cast(pl.Int64).sum())
            .sort("person_id", "question_id"))


def people_probs(people_frame: pl.DataFrame | pl.LazyFrame, probs: np.ndarray) -> pl.LazyFrame:
    """The people table with the policy's final probability per row (row-aligned)."""
    return people_frame.lazy().select("person_id", "name", "field", "era").with_columns(
        prob=pl.Series(np.asarray(probs, dtype=float)))


def top_people(people_probs_lf: pl.LazyFrame, n: int = 20) -> pl.LazyFrame:
    return people_probs_lf.sort(["prob", "person_id"], descending=[True, False]).head(n)


def mass_by(people_probs_lf: pl.LazyFrame, column: str) -> pl.LazyFrame:
    """Probability mass per field/era against that group's share of the pool; ratio > 1 is
    over-representation (the 'does the distribution cluster by field' answer)."""
    return (
        people_probs_lf.group_by(column)
        .agg(people=pl.len(), mass=ordered_sum("prob"))
        .with_columns(pool_share=pl.col("people") / pl.col("people").sum())
        .with_columns(ratio=pl.col("mass") / pl.col("pool_share"))
        .sort(["mass", column], descending=[True, False])
    )


def context_field_mass(people_frame: pl.DataFrame, context_probs, contexts) -> pl.LazyFrame:
    """context x field probability mass of a contextual policy (context_probs (C, N), contexts
    (C,) names): one row per (context, field) with mass, pool share and ratio."""
    return pl.concat([
        mass_by(people_probs(people_frame, probs), "field").with_columns(context=pl.lit(name))
        for name, probs in zip(contexts, context_probs, strict=True)
    ]).sort(["context", "field"])


def eval_prefixes(rows: pl.LazyFrame) -> pl.LazyFrame:
    """One row per prefix of an eval table, in evaluation order."""
    return (
        rows.group_by("prefix_index")
        .agg(pl.col("prefix_kind").first(), pl.col("prefix").first(),
             pl.col("person_id").first(), questions=pl.len())
        .sort("prefix_index")
    )


def eval_long(rows: pl.LazyFrame) -> pl.LazyFrame:
    """prefix_index, question_id, correct sorted so that a reshape gives the (P, Q) matrix."""
    return rows.select("prefix_index", "question_id", "correct").sort(
        ["prefix_index", "question_id"])


def correct_matrix(rows: pl.LazyFrame) -> tuple[pl.DataFrame, np.ndarray]:
    """The eval table as prefix info (P rows) and a (P, Q) correctness matrix whose columns are
    the same questions for every prefix (checked: the comparison is paired)."""
    meta = eval_prefixes(rows).collect()
    long = eval_long(rows).collect()
    p, q = len(meta), int(meta["questions"][0]) if len(meta) else 0
    paired = bool((meta["questions"] == q).all())
    qids = long["question_id"].to_numpy().reshape(p, q) if paired else None  # (P, Q)
    if not paired or not (qids == qids[:1]).all():
        raise PrefixoptError("eval rows are not paired: every prefix must answer the same "
                             "questions")
    correct = long["correct"].to_numpy().reshape(p, q)  # (P, Q) bool
    return meta.drop("questions"), correct


def question_clusters(rows: pl.DataFrame) -> np.ndarray | None:
    """(Q,) cluster label per question in correct_matrix's column order (sorted question ids),
    or None when the questions do not cluster (no `cluster` column, or all null)."""
    if "cluster" not in rows.columns or rows["cluster"].null_count() == len(rows):
        return None
    per_q = rows.select("question_id", "cluster").unique("question_id").sort("question_id")
    return per_q["cluster"].fill_null("-").to_numpy()


def eval_accuracy(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Accuracy per prefix straight from the rows (a cross-check of the summary table)."""
    return (
        rows.group_by("prefix_index", "prefix_kind", "prefix")
        .agg(n=pl.len(), correct=pl.col("correct").sum(), accuracy=pl.col("correct").mean(),
             parsed_rate=pl.col("parsed").mean())
        .sort("prefix_index")
    )


def kind_accuracy(rows: pl.LazyFrame) -> pl.LazyFrame:
    """Mean accuracy per prefix kind (learned, none, random, handwritten, named)."""
    return (
        rows.group_by("prefix_kind")
        .agg(prefixes=pl.col("prefix_index").n_unique(), accuracy=pl.col("correct").mean())
        .sort("prefix_kind")
    )


def field_mass_side_by_side(masses: dict[str, pl.LazyFrame]) -> pl.LazyFrame:
    """field x run table of probability mass, from mass_by(..., 'field') per run label."""
    frames = [lf.select("field", pl.col("mass").alias(label if label != "field" else "field "
                                                      "(run)")) for label, lf in masses.items()]
    out = frames[0]
    for f in frames[1:]:
        out = out.join(f, on="field", how="full", coalesce=True)
    return out.fill_null(0.0).sort("field")


def aligned_probs(a: pl.LazyFrame, b: pl.LazyFrame) -> pl.LazyFrame:
    """Two runs' people_probs joined on person_id (a person missing from one run has 0)."""
    return (
        a.select("person_id", prob_a="prob")
        .join(b.select("person_id", prob_b="prob"), on="person_id", how="full", coalesce=True)
        .fill_null(0.0)
        .sort("person_id")
    )


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
