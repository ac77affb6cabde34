"""What an evaluation reports beyond its tables: the `--json` summary of one eval, and for a
run on several benchmarks the group contrasts pooled over every benchmark's questions.
"""

from __future__ import annotations

from typing import Any

import polars as pl

from prefixopt import stats

from prefixopt.evaluate import robustness
from prefixopt.evaluate.heldout import EvalResult
from prefixopt.evaluate.prefixes import curse_summary


def pooled(results: list[EvalResult]) -> list[stats.Contrast]:
    """The group contrasts over every benchmark's questions together
    (robustness.pooled_contrasts), with the first eval's seed and bootstrap size."""
    cfg_seed = int(results[0].summary["bootstrap_seed"][0])
    n = int(results[0].summary["bootstrap_samples"][0])
    return robustness.pooled_contrasts([r.rows for r in results], stats.stats_rng(cfg_seed), n)


def contrast_json(c: stats.Contrast) -> dict[str, Any]:
    """resampled: what the interval's bootstrap drew again, "questions" or, for a contrast with
    the random people, "questions+people" (it covers which names were drawn)."""
    return {"name": c.name, "diff": c.diff, "low": c.low, "high": c.high,
            "excludes_zero": c.excludes_zero, "n_a": c.n_a, "n_b": c.n_b,
            "resampled": c.resampled}


def result_json(result: EvalResult) -> dict[str, Any]:
    return {
        "run_dir": str(result.run_dir),
        "eval": result.name,
        "split": result.split,
        "benchmark": result.benchmark,
        "num_questions": int(result.summary["n"][0]),
        "overlap": result.overlap,
        # what was left out as not held out (repeats, training twins, few-shot examples)
        "held_out": result.held_out,
        "prefixes": result.summary.drop("bootstrap_seed").to_dicts(),
        "contrasts": [contrast_json(c) for c in result.contrasts],
        # learned people: training minus held-out accuracy, net of no prefix's gap (method)
        "winners_curse": curse_summary(result.summary),
        "any_learned_significant": bool(
            result.summary.filter(pl.col("prefix_kind") == "learned")["significant"].any()),
        "timings": result.timings,
        "persona_placement": result.persona_placement,
        **result.ceilings,  # oracle_ceiling, oracle_ceiling_learned/_random, oracle_k
        "ensemble": result.ensemble,
        # the ceiling of no prefix + k paraphrases (p_value None: a ceiling is no test) and its
        # verdict ("persona" / "perturbation"); the confidence router vs no prefix (paired)
        "oracle_null": result.oracle_null,
        "router": result.router,
        # a study's eval engine (engines.score_cache): requests served from the cache / scored
        "score_cache": result.score_cache,
        "engine_start_s": result.timings.get("engine_start_s"),
        **({"contexts": result.contexts.to_dicts()} if result.contexts is not None else {}),
        "dtype": result.timings.get("dtype"),
    }
