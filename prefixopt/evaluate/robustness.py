"""What an evaluation shows beyond each prefix's difference from no prefix: the group contrasts
(learned vs random, random vs none, ...; the random people resampled with the questions, so a
claim about "random people" covers which names were drawn), pooled over several benchmarks'
evaluations too, the oracle ceiling (the share of questions some evaluated prefix gets right,
beside the same ceiling for as many random people: what noise alone gives), a persona +
no-prefix ensemble (per question the more confident answer), and cluster-bootstrap intervals
for questions that share a subject or a passage (Miller 2024). Pure numpy/polars.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl

from prefixopt.stats import Contrast, Group, compare_to_none, contrast, correct_matrix


def oracle_ceilings(kinds: np.ndarray, correct: np.ndarray) -> dict[str, Any]:
    """kinds (P,), correct (P, Q). oracle_ceiling: share of questions at least one evaluated
    prefix (no prefix included; the paraphrase null's rows not: see oracle.oracle_null) answers
    right; _learned / _random: the same for no prefix plus k learned people, and plus k random
    people, k = min(#learned, #random)."""
    kinds = np.asarray(kinds)
    none = correct[kinds == "none"]  # (1, Q)
    learned, random = correct[kinds == "learned"], correct[kinds == "random"]
    k = min(len(learned), len(random))

    def ceiling(rows: np.ndarray) -> float:
        return float(np.vstack([none, rows]).any(axis=0).mean()) if k else math.nan

    compared = correct[kinds != "paraphrase"]  # (P', Q)
    return {"oracle_ceiling": float(compared.any(axis=0).mean()), "oracle_k": k,
            "oracle_ceiling_learned": ceiling(learned[:k]),
            "oracle_ceiling_random": ceiling(random[:k]),
            "accuracy_none": float(none.mean()) if none.size else math.nan}


def ensemble(rows: pl.DataFrame, rng: np.random.Generator, num_samples: int
             ) -> dict[str, Any] | None:
    """The top learned person (else the first named one) and no prefix as one system: per
    question the answer of whichever is more confident (top-1 minus top-2 log-probability;
    ties go to no prefix), compared paired with no prefix. None when there is no such person
    or no confidence (generation)."""
    if "confidence" not in rows.columns:
        return None
    people = rows.filter(pl.col("prefix_kind").is_in(["learned", "named"]))
    if people.is_empty():
        return None
    first = people.sort(pl.col("prefix_kind") != "learned", "prefix_index")["prefix_index"][0]
    pair = (rows.filter((pl.col("prefix_index") == first) | (pl.col("prefix_kind") == "none"))
            .with_columns(side=pl.when(pl.col("prefix_kind") == "none").then(pl.lit("none"))
                          .otherwise(pl.lit("persona")))
            .pivot(on="side", index="question_id", values=["correct", "confidence"])
            .sort("question_id"))
    conf_p, conf_n = pair["confidence_persona"].to_numpy(), pair["confidence_none"].to_numpy()
    if np.isnan(conf_p).all() or np.isnan(conf_n).all():
        return None
    use_persona = np.nan_to_num(conf_p, nan=-np.inf) > np.nan_to_num(conf_n, nan=-np.inf)
    none = pair["correct_none"].to_numpy().astype(bool)  # (Q,)
    chosen = np.where(use_persona, pair["correct_persona"].to_numpy().astype(bool), none)
    c = compare_to_none(chosen, none, rng, num_samples)
    label = rows.filter(pl.col("prefix_index") == first)["prefix"][0]
    return {"persona": label, "persona_share": float(use_persona.mean()), "n": c.n,
            "accuracy": c.accuracy, "diff_vs_none": c.diff, "diff_low": c.diff_low,
            "diff_high": c.diff_high, "p_value": c.p_value}


def cluster_bootstrap(diff: np.ndarray, clusters: np.ndarray, rng: np.random.Generator,
                      num_samples: int) -> tuple[float, float, float]:
    """95% interval and two-sided p for the mean of diff (Q,) when questions come in clusters
    (Q,): whole clusters are resampled, so questions of one subject move together."""
    _, inv = np.unique(clusters, return_inverse=True)
    sums = np.bincount(inv, weights=diff)  # (C,)
    counts = np.bincount(inv).astype(float)  # (C,)
    pick = rng.integers(0, len(sums), size=(num_samples, len(sums)))  # (S, C)
    means = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)  # (S,)
    lo, hi = np.percentile(means, [2.5, 97.5])
    p = min(1.0, 2 * min(float((means <= 0).mean()), float((means >= 0).mean())))
    return float(lo), float(hi), 1.0 if not diff.any() else p


# Only the random people are a draw from the pool, standing for "arbitrary names": a claim
# about them must cover which names were drawn, so the bootstrap resamples them. The learned
# group is what the run chose (the claim is about these people), the hand-written prompts and
# a contextual assignment are fixed texts: their rows are not a sample of anything. The
# paraphrases (the oracle null) are fixed texts too; "learned vs paraphrase" and "paraphrase vs
# none" (does a prompt with no person move the model?) come last, so the other contrasts'
# bootstrap draws are what they were before the paraphrases.
SAMPLED_KINDS = ("random",)
CONTRASTS = (("learned", "none"), ("learned", "random"), ("learned", "handwritten"),
             ("random", "none"), ("handwritten", "none"), ("contextual", "none"),
             ("contextual", "top learned"), ("learned", "paraphrase"), ("paraphrase", "none"))


def contrasts(
    kinds: Sequence[str], correct: np.ndarray, rng: np.random.Generator, num_samples: int
) -> list[Contrast]:
    """learned vs none / random / hand-written: difference of group mean accuracies (Q-paired;
    the random people resampled too)."""
    kinds_arr = np.asarray(kinds)
    group = {k: Group((correct[kinds_arr == k].astype(float),), k in SAMPLED_KINDS)
             for k in ("learned", "none", "random", "handwritten", "contextual", "paraphrase")}
    # the global top person (contextual runs)
    group["top learned"] = Group((group["learned"].blocks[0][:1],))
    return [contrast(f"{a} vs {b}", group[a], group[b], rng, num_samples)
            for a, b in CONTRASTS if len(group[a].blocks[0]) and len(group[b].blocks[0])]


POOLED = (("learned", "none"), ("learned", "random"), ("random", "none"),
          ("handwritten", "none"), ("contextual", "none"))


def pooled_contrasts(evals: Sequence[pl.DataFrame], rng: np.random.Generator,
                     num_samples: int) -> list[Contrast]:
    """The group contrasts over the questions of several evaluations together (a run trained on
    several benchmarks, one eval each): per question the mean correctness of each group, then
    a paired bootstrap over all questions, and over the random people (the same people in
    every eval: one draw for all; else a draw per eval). Groups missing from an eval are left
    out."""
    blocks: dict[str, list[np.ndarray]] = {}
    ids: dict[str, list[list[int]]] = {}
    for rows in evals:
        meta, correct = correct_matrix(rows.lazy())  # (P,), (P, Q)
        kinds = np.asarray(meta["prefix_kind"].to_list())
        pids = meta["person_id"].to_numpy()
        for kind in set(kinds):
            rows_k = np.flatnonzero(kinds == kind)
            rows_k = rows_k[np.argsort(pids[rows_k], kind="stable")]  # people in id order
            blocks.setdefault(kind, []).append(correct[rows_k].astype(float))  # (P_k, Q)
            ids.setdefault(kind, []).append(pids[rows_k].tolist())
    whole = {k: Group(tuple(v), k in SAMPLED_KINDS, all(i == ids[k][0] for i in ids[k]))
             for k, v in blocks.items() if len(v) == len(evals)}
    # n_a = n_b = 1: one pooled group row each side (as the pooled contrasts always counted)
    return [replace(contrast(f"pooled {a} vs {b}", whole[a], whole[b], rng, num_samples),
                    n_a=1, n_b=1) for a, b in POOLED if a in whole and b in whole]
