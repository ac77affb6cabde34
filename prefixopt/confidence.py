"""How sure a learner may be of its top person: the posterior probability that this person has
the largest effect among the people it tried, from the run's `answers` table.

Every sampled person of an iteration answered the same questions (common random numbers), so
within an iteration (and context) a person's paired difference d = its accuracy minus the mean
accuracy of the OTHER distinct people there is free of question difficulty. Per person: the mean
d over the iterations it was tried in (a person drawn twice in one iteration gave the same
answers, so it counts once). Effects get an empirical-Bayes normal prior N(mu, tau^2) fitted to
all people tried (method of moments); each person's posterior is normal; the confidence is the
share of joint posterior draws in which the top person's effect is the largest. One lucky
32-question batch is shrunk towards the crowd, a person tried hundreds of times is not, so a
clear winner scores near 1 and a tie near 1 / (people tied). Pure numpy + polars, no I/O.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl


def paired_effects(answers: pl.DataFrame) -> pl.DataFrame:
    """answers rows (iteration, sample, person_id, correct[, context]) -> one row per person
    tried against someone else: person_id, n (iterations), effect (mean paired d), ss (sum of
    squared deviations of its d from that mean)."""
    keys = ["iteration"] + (["context"] if "context" in answers.columns else [])
    per_sample = answers.group_by([*keys, "sample", "person_id"]).agg(
        pl.col("correct").cast(pl.Float64).mean().alias("r"))
    # one row per distinct person of a group: duplicates answered identically
    people = per_sample.group_by([*keys, "person_id"]).agg(pl.col("r").first())
    diffs = (people.with_columns(pl.len().over(keys).alias("k"),
                                 pl.col("r").sum().over(keys).alias("total"))
             .filter(pl.col("k") >= 2)  # a group of one person compares with nobody
             .with_columns((pl.col("r") - (pl.col("total") - pl.col("r")) / (pl.col("k") - 1))
                           .alias("d")))
    return (diffs.group_by("person_id")
            .agg(pl.len().alias("n"), pl.col("d").mean().alias("effect"),
                 ((pl.col("d") - pl.col("d").mean()) ** 2).sum().alias("ss"))
            .sort("person_id"))


def posterior(effects: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(person_id (M,), posterior mean (M,), posterior sd (M,)) of each tried person's effect."""
    pid = effects["person_id"].to_numpy()
    n = effects["n"].to_numpy().astype(float)  # (M,)
    est = effects["effect"].to_numpy()  # (M,)
    ss = effects["ss"].to_numpy()  # (M,)
    dof = float((n - 1).sum())
    # noise variance of one paired d: pooled within-person spread, else the spread of all d
    sigma2 = float(ss.sum() / dof) if dof > 0 else float(np.var(est)) if len(est) > 1 else 0.0
    sigma2 = max(sigma2, 1e-9)
    mu = float(est.mean())
    tau2 = max(float(np.var(est) - np.mean(sigma2 / n)), 1e-6)  # true spread of effects
    prec = 1.0 / tau2 + n / sigma2  # (M,)
    return pid, (mu / tau2 + n * est / sigma2) / prec, 1.0 / np.sqrt(prec)


def top_confidence(answers: pl.DataFrame, top_person_id: int, rng: np.random.Generator,
                   draws: int = 4000) -> float:
    """P(the top person has the largest effect among the people tried) in [0, 1]; 0.0 when the
    top person was never compared with anyone (nothing says it is better)."""
    effects = paired_effects(answers)
    if effects.height == 0:
        return 0.0
    pid, mean, sd = posterior(effects)
    hit = np.flatnonzero(pid == top_person_id)
    if len(hit) == 0:
        return 0.0
    t = int(hit[0])
    # only people whose posterior reaches the top person's can ever beat it in a draw
    near = np.flatnonzero(mean + 6 * sd > mean[t] - 6 * sd[t])
    near = np.union1d(near, [t])
    z = rng.standard_normal((draws, len(near)))  # (D, M')
    theta = mean[near] + z * sd[near]  # (D, M')
    return float((theta.argmax(axis=1) == int(np.searchsorted(near, t))).mean())


def run_top_confidence(run_dir: str | Path, top_person_id: int, seed: int = 0) -> float:
    """top_confidence from a run directory's answers table (seeded draws)."""
    from prefixopt import runs

    lf = runs.scan(run_dir, "answers")
    cols = ["iteration", "sample", "person_id", "correct"]
    cols += ["context"] if "context" in lf.collect_schema().names() else []
    return top_confidence(lf.select(cols).collect(), top_person_id,
                          np.random.default_rng([seed, 7]))
