"""How sure a learner may be of its top person: the posterior probability that this person has
the largest effect among the people it tried, from the run's `answers` table.

Every sampled person of an iteration answered the same questions (common random numbers), so
a person's accuracy there = the questions' ease + its effect + noise: per person an effect
fitted with one ease per iteration (and context) over the iterations it was tried in beside
someone else (a person drawn twice in one iteration gave the same answers: it counts once).
Effects get an empirical-Bayes normal prior N(mu, tau^2) fitted to
all people tried (method of moments); each person's posterior is normal; the confidence is the
share of joint posterior draws in which the top person's effect is the largest. One lucky
32-question batch is shrunk towards the crowd, a person tried hundreds of times is not, so a
clear winner scores near 1 and a tie near 1 / (people tied). Pure numpy + polars, no I/O.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl


def paired_effects(answers: pl.DataFrame, sweeps: int = 200) -> pl.DataFrame:
    """answers rows (iteration, sample, person_id, correct[, context]) -> one row per person
    tried beside someone else: person_id, n (iterations), effect, and the residual variance of
    one accuracy (column sigma2, the same on every row).

    Model: accuracy of person p in group g (an iteration, or its context) = a_g + theta_p +
    noise, a_g the group's questions' ease, fitted by alternating means (Gauss-Seidel on the
    people x groups graph). Plain differences to the group mean would charge everyone tried
    beside a strong person with that person's strength."""
    keys = ["iteration"] + (["context"] if "context" in answers.columns else [])
    per_sample = answers.group_by([*keys, "sample", "person_id"]).agg(
        pl.col("correct").cast(pl.Float64).mean().alias("r"))
    # one row per distinct person of a group: duplicates answered identically
    rows = (per_sample.group_by([*keys, "person_id"]).agg(pl.col("r").first())
            .with_columns(pl.len().over(keys).alias("k"))
            .filter(pl.col("k") >= 2)  # a group of one person compares with nobody
            .with_columns(pl.struct(keys).rank("dense").alias("g") - 1,
                          pl.col("person_id").rank("dense").alias("p") - 1))
    if rows.height == 0:
        return pl.DataFrame(schema={"person_id": pl.Int64, "n": pl.Int64,
                                    "effect": pl.Float64, "sigma2": pl.Float64})
    g, p = rows["g"].to_numpy().astype(np.int64), rows["p"].to_numpy().astype(np.int64)
    r = rows["r"].to_numpy()  # (R,) one accuracy per (group, person)
    n_g, n_p = np.bincount(g), np.bincount(p)  # (G,), (M,)
    theta = np.zeros(len(n_p))  # (M,)
    for _ in range(sweeps):
        ease = np.bincount(g, weights=r - theta[p]) / n_g  # (G,)
        theta = np.bincount(p, weights=r - ease[g]) / n_p  # (M,)
        theta -= theta.mean()  # the model fixes theta only up to a constant
    resid = r - ease[g] - theta[p]  # (R,)
    dof = max(len(r) - len(n_g) - len(n_p) + 1, 1)
    pid = np.zeros(len(n_p), dtype=np.int64)
    pid[p] = rows["person_id"].to_numpy()
    return pl.DataFrame({"person_id": pid, "n": n_p, "effect": theta,
                         "sigma2": np.full(len(n_p), float((resid**2).sum() / dof))})


def posterior(effects: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(person_id (M,), posterior mean (M,), posterior sd (M,)) of each tried person's effect:
    a normal prior N(mu, tau^2) fitted to all of them (method of moments), each estimate's
    variance sigma2 / n."""
    pid = effects["person_id"].to_numpy()
    n = effects["n"].to_numpy().astype(float)  # (M,)
    est = effects["effect"].to_numpy()  # (M,)
    sigma2 = max(float(effects["sigma2"][0]), 1e-9)  # one accuracy's noise variance
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
