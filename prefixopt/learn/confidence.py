"""What a run's `top_confidence` is: one documented kind per way of computing it (KINDS; every
summary and config.json carry `top_confidence_kind`), and REINFORCE's own: the posterior
probability that its top person has the largest effect among the people it tried, from the
run's `answers` table.
How: the comment below the docstring (paired and unpaired fits, the EB prior).
"""

from __future__ import annotations

# REINFORCE, kind "paired" (shared questions, the default): every sampled person of an iteration
# answered the same questions (common random numbers), so a person's accuracy there = the
# questions' ease + its effect + noise: per person an effect fitted with one ease per iteration
# (and context) over the iterations it was tried in beside someone else (a person drawn twice in
# one iteration gave the same answers: it counts once). Kind "unpaired" (--fresh-questions): each
# sample had its own questions, so there is no ease to share: effects are fitted against one mean
# (per context) and every sample counts, its questions' difficulty left in the noise (the same
# budget gives a less sure answer). Effects get an empirical-Bayes normal prior N(mu, tau^2)
# fitted to all people tried (method of moments); each person's posterior is normal; the
# confidence is the share of joint posterior draws in which the top person's effect is the
# largest. One lucky 32-question batch is shrunk towards the crowd, a person tried hundreds of
# times is not, so a clear winner scores near 1 and a tie near 1 / (people tied).
# Pure numpy + polars, no I/O.

from pathlib import Path

import numpy as np
import polars as pl
from prefixopt import runs

KINDS = {
    "paired": "reinforce: posterior P(the top person has the largest effect among the people "
              "tried), empirical-Bayes normal effects fitted on shared questions (one ease per "
              "iteration) from the answers table",
    "unpaired": "reinforce --fresh-questions: the same posterior probability, effects fitted "
                "against one mean (questions not shared: their difficulty is noise)",
    "beta_posterior": "halving, ttts: posterior P(the top-ranked person has the highest accuracy "
                      "among the people tried) under the learner's field/era empirical-Bayes "
                      "Beta posteriors (the shrunk scores it ranks by; pooling.best_probs)",
}


def kind_for(common_questions: bool) -> str:
    """REINFORCE's top_confidence_kind for a run with (or without) shared questions."""
    return "paired" if common_questions else "unpaired"


def shared_questions(answers: pl.DataFrame) -> bool:
    """Did every sample of each iteration (and context) answer the same question set?"""
    keys = ["iteration"] + (["context"] if "context" in answers.columns else [])
    sets = (answers.group_by([*keys, "sample"])
            .agg(pl.col("question_id").cast(pl.String).sort().str.join("\x1f").hash().alias("q"))
            .group_by(keys).agg(pl.col("q").n_unique().alias("m")))
    return bool(sets.height == 0 or sets["m"].max() == 1)


def observations(answers: pl.DataFrame, paired: bool) -> pl.DataFrame:
    """answers rows (iteration, sample, person_id, correct[, context]) -> the model's rows: g
    (group: an iteration and context when paired, a context when not), person_id, r (accuracy);
    groups of one person dropped (they compare with nobody); sorted, so a fit is reproducible."""
    ctx = ["context"] if "context" in answers.columns else []
    per = answers.group_by(["iteration", *ctx, "sample", "person_id"]).agg(
        pl.col("correct").cast(pl.Float64).mean().alias("r"))
    if paired:  # one row per distinct person of a group: duplicates answered identically
        keys = ["iteration", *ctx]
        per = per.group_by([*keys, "person_id"]).agg(pl.col("r").first())
    else:  # every sample its own questions: each counts
        keys = ctx or ["_all"]
        per = per if ctx else per.with_columns(_all=pl.lit(0))
    per = (per.with_columns(pl.col("person_id").n_unique().over(keys).alias("k"))
           .filter(pl.col("k") >= 2)
           .with_columns(pl.struct(keys).rank("dense").alias("g") - 1))
    return per.select("g", "person_id", "r").sort("g", "person_id", "r")


def paired_effects(answers: pl.DataFrame, sweeps: int = 200,
                   paired: bool | None = None) -> pl.DataFrame:
    """One row per person tried beside someone else: person_id, n (observations), effect, and
    the residual variance of one accuracy (column sigma2, the same on every row). paired None:
    shared_questions(answers) decides (question_id needed then).

    Model: accuracy of person p in group g = a_g + theta_p + noise, a_g the group's questions'
    ease, fitted by alternating means (Gauss-Seidel on the people x groups graph). Plain
    differences to the group mean would charge everyone tried beside a strong person with that
    person's strength."""
    paired = shared_questions(answers) if paired is None else paired
    rows = observations(answers, paired)
    if rows.height == 0:
        return pl.DataFrame(schema={"person_id": pl.Int64, "n": pl.Int64,
                                    "effect": pl.Float64, "sigma2": pl.Float64})
    rows = rows.with_columns(pl.col("person_id").rank("dense").alias("p") - 1)
    g, p = rows["g"].to_numpy().astype(np.int64), rows["p"].to_numpy().astype(np.int64)
    r = rows["r"].to_numpy()  # (R,) one accuracy per observation
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
                   draws: int = 4000, paired: bool | None = None) -> float:
    """P(the top person has the largest effect among the people tried) in [0, 1]; 0.0 when the
    top person was never compared with anyone (nothing says it is better). paired: see
    paired_effects."""
    effects = paired_effects(answers, paired=paired)
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


def run_confidence(run_dir: str | Path, top_person_id: int, seed: int = 0
                   ) -> tuple[float, str]:
    """(top_confidence, top_confidence_kind) of a REINFORCE run directory, from its answers
    table (seeded draws); paired or not as its config says (common_questions; old runs: the
    answers table shows it)."""

    lf = runs.scan(run_dir, "answers")
    cols = ["iteration", "sample", "person_id", "question_id", "correct"]
    cols += ["context"] if "context" in lf.collect_schema().names() else []
    answers = lf.select(cols).collect()
    common = runs.read_config(run_dir).get("config", {}).get("common_questions")
    paired = shared_questions(answers) if common is None else bool(common)
    value = top_confidence(answers, top_person_id, np.random.default_rng([seed, 7]),
                           paired=paired)
    return value, kind_for(paired)


def run_top_confidence(run_dir: str | Path, top_person_id: int, seed: int = 0) -> float:
    """top_confidence of a REINFORCE run directory (run_confidence's value)."""
    return run_confidence(run_dir, top_person_id, seed)[0]
