"""The eval table compared: every prefix against no prefix on the same questions (paired
bootstrap + exact McNemar, Holm across prefixes, the paraphrase null a family of its own; where
questions share a subject, the more cautious of McNemar and a cluster bootstrap), and the group
contrasts. eval writes it, report recomputes it from the saved rows.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from prefixopt import analysis, stats
from prefixopt.errors import PrefixoptError
from prefixopt.evaluate.robustness import cluster_bootstrap, contrasts


def summarise(
    rows: pl.DataFrame, rng: np.random.Generator, num_samples: int
) -> tuple[pl.DataFrame, list[stats.Contrast]]:
    """Per-prefix accuracy + comparison with no prefix (Holm across prefixes), and the group
    contrasts. `rows` is the eval table; every prefix answered the same questions."""
    meta, correct = analysis.correct_matrix(rows.lazy())  # (P,) prefix info, (P, Q) bool
    kinds = meta["prefix_kind"].to_list()
    if "none" not in kinds:
        raise PrefixoptError("an evaluation needs the no-prefix baseline")
    none = correct[kinds.index("none")]  # (Q,)
    comps = [stats.compare_to_none(c, none, rng, num_samples) for c in correct]
    pvals = np.array([math.nan if k == "none" else c.p_value
                      for k, c in zip(kinds, comps, strict=True)])
    clusters = analysis.question_clusters(rows)  # (Q,) or None
    extra = []
    if clusters is not None:  # questions that share a subject: whole clusters resampled, and
        # the decision uses these
        boot = [cluster_bootstrap(c.astype(float) - none, clusters, rng, num_samples)
                for c in correct]
        pvals_cluster = np.array([math.nan if k == "none" else b[2]
                                  for k, b in zip(kinds, boot, strict=True)])
        extra = [pl.Series("diff_low_cluster", [b[0] for b in boot]),
                 pl.Series("diff_high_cluster", [b[1] for b in boot]),
                 pl.Series("p_cluster", pvals_cluster)]
        pvals = np.fmax(pvals, pvals_cluster)  # the more cautious of McNemar and clustered
    # Holm across every prefix compared with none, but the paraphrase null's rows: they are a
    # control, not a claim, and get their own Holm family (the others' p_holm stay as without)
    null = np.array([k == "paraphrase" for k in kinds])
    p_holm = stats.holm(np.where(null, math.nan, pvals))
    p_holm[null] = stats.holm(pvals[null])
    fields = ("n", "correct", "accuracy", "ci_low", "ci_high", "diff", "diff_low", "diff_high")
    summary = meta.with_columns(
        *(pl.Series("diff_vs_none" if f == "diff" else f, [getattr(c, f) for c in comps])
          for f in fields),
        pl.Series("p_value", [math.nan if k == "none" else c.p_value
                              for k, c in zip(kinds, comps, strict=True)]),
        *extra,
        pl.Series("p_holm", p_holm),
        pl.Series("significant", np.nan_to_num(p_holm, nan=1.0) < stats.ALPHA),
    )
    return summary, contrasts(kinds, correct, rng, num_samples)
