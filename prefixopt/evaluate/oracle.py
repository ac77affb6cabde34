"""The oracle ceiling's perturbation-only null and a confidence router, from an eval table.
oracle_null: the ceiling of no prefix + k neutral paraphrases (evaluate/paraphrases.py), with a
bootstrap interval over questions, beside the same ceiling of k learned and k random people.
router: per question the answer of the most confident of no prefix and the learned top-k (a
rule fixed in advance), tested paired against no prefix like every prefix. Pure numpy/polars.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from prefixopt import analysis, stats

NULL_KIND = "paraphrase"  # the prefix kind of the paraphrase rows (prefixes.build_prefixes)
# The router's rule, fixed before any held-out question is seen: no parameter is fitted.
RULE = ("per question the answer of the most confident of no prefix and the learned top-k "
        "(confidence: the chosen answer's log-probability minus the runner-up's, as the "
        "ensemble's); ties and missing confidences go to no prefix, then the better-ranked person")


def confidence_matrix(rows: pl.DataFrame) -> np.ndarray | None:
    """(P, Q) confidence per prefix x question in correct_matrix's order (prefix_index, then
    question_id); NaN where missing. None without a confidence column (old tables)."""
    if "confidence" not in rows.columns:
        return None
    long = rows.select("prefix_index", "question_id", "confidence").sort(
        ["prefix_index", "question_id"])
    p = rows["prefix_index"].n_unique()
    return long["confidence"].cast(pl.Float64).fill_null(np.nan).to_numpy().reshape(p, -1)


def _ci(d: np.ndarray, rng: np.random.Generator, num_samples: int) -> list[float]:
    lo, hi = stats.bootstrap_mean_ci(d, rng, num_samples)
    return [lo, hi]


def oracle_null(kinds: np.ndarray, labels: list[str], correct: np.ndarray,
                rng: np.random.Generator, num_samples: int) -> dict[str, Any] | None:
    """kinds (P,), labels (P,), correct (P, Q). The ceiling of no prefix + the k paraphrases
    (k = min(#learned, #paraphrases)): accuracy, its 95% bootstrap interval over questions
    (ceiling_ci95), diff_vs_no_prefix with its interval (ci95); p_value None (a ceiling is a
    maximum over prefixes, not a test). verdict: "persona" when no prefix + k learned people
    reach a ceiling above the null's interval, else "perturbation" (verdict_random: the same
    for k random people, None with fewer than k). None without paraphrase or learned rows."""
    kinds = np.asarray(kinds)
    none = correct[kinds == "none"][0].astype(bool)  # (Q,)
    para, learned = correct[kinds == NULL_KIND], correct[kinds == "learned"]  # (k_, Q)
    random = correct[kinds == "random"]
    k = min(len(para), len(learned))
    if not k:
        return None

    def any_right(block: np.ndarray) -> np.ndarray:  # (Q,) no prefix or one of block right
        return np.vstack([none, block[:k]]).any(axis=0).astype(float)

    null, mine = any_right(para), any_right(learned)
    other = any_right(random) if len(random) >= k else None
    ceiling_ci = _ci(null, rng, num_samples)
    diff_ci = _ci(null - none, rng, num_samples)
    gap_ci = _ci(mine - null, rng, num_samples)  # learned ceiling minus the null's, paired

    def verdict(c: float | None) -> str | None:
        return None if c is None else "persona" if c > ceiling_ci[1] else "perturbation"

    ceiling_random = None if other is None else float(other.mean())
    return {"k": k, "paraphrases": [str(x) for x in np.asarray(labels)[kinds == NULL_KIND][:k]],
            "accuracy": float(null.mean()), "ceiling_ci95": ceiling_ci,
            "diff_vs_no_prefix": float((null - none).mean()), "ci95": diff_ci, "p_value": None,
            "no_prefix_accuracy": float(none.mean()),
            "ceiling_learned": float(mine.mean()), "ceiling_random": ceiling_random,
            "learned_minus_null": float((mine - null).mean()), "learned_minus_null_ci95": gap_ci,
            "verdict": verdict(float(mine.mean())), "verdict_random": verdict(ceiling_random),
            # every paraphrase answered exactly as no prefix (an engine that ignores a
            # person-free system prompt, as the synthetic one does): the null is degenerate
            "identical_to_no_prefix": bool((para[:k] == none).all())}


def route(correct: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """correct, confidence (1 + k, Q), no prefix first, then the learned people best first.
    Per question the row with the highest confidence (NaN counts as -inf; ties: the first
    row). Returns the chosen answers' correctness (Q,) and the chosen row (Q,)."""
    conf = np.nan_to_num(np.asarray(confidence, float), nan=-np.inf)
    pick = np.argmax(conf, axis=0)  # (Q,) first maximum: no prefix wins ties
    return correct[pick, np.arange(correct.shape[1])].astype(bool), pick


def _routed(none: np.ndarray, block: np.ndarray, none_conf: np.ndarray, conf: np.ndarray,
            rng: np.random.Generator, num_samples: int) -> dict[str, Any]:
    chosen, pick = route(np.vstack([none, block]), np.vstack([none_conf, conf]))
    c = stats.compare_to_none(chosen, none, rng, num_samples)
    return {"accuracy": c.accuracy, "diff_vs_no_prefix": c.diff,
            "ci95": [c.diff_low, c.diff_high], "p_value": c.p_value, "n": c.n,
            "share_no_prefix": float((pick == 0).mean())}


def router(kinds: np.ndarray, correct: np.ndarray, confidence: np.ndarray | None,
           rng: np.random.Generator, num_samples: int) -> dict[str, Any] | None:
    """The confidence router over no prefix + the learned top-k (RULE), compared paired with
    no prefix (stats.compare_to_none: paired bootstrap ci95 and exact McNemar p_value); and the
    same rule over no prefix + k paraphrases (`null`: what routing among harmless rewordings
    gives). None without learned people or confidences (generation)."""
    kinds = np.asarray(kinds)
    learned = kinds == "learned"
    if confidence is None or not learned.any():
        return None
    none_row = np.flatnonzero(kinds == "none")[0]
    none, none_conf = correct[none_row].astype(bool), confidence[none_row]
    if np.isnan(none_conf).all() or np.isnan(confidence[learned]).all():
        return None
    out = {"k": int(learned.sum()), "rule": RULE,
           **_routed(none, correct[learned], none_conf, confidence[learned], rng, num_samples)}
    para = np.flatnonzero(kinds == NULL_KIND)[: int(learned.sum())]
    out["null"] = (None if not len(para) else {"k": len(para), **_routed(
        none, correct[para], none_conf, confidence[para], rng, num_samples)})
    return out


def from_rows(rows: pl.DataFrame, seed: int, num_samples: int
              ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(oracle_null, router) of an eval table, each with its own Generator from the eval's
    seed (stats.stats_rng(seed + 2), (seed + 3)), so that report recomputes the same numbers."""
    meta, correct = analysis.correct_matrix(rows.lazy())  # (P,), (P, Q)
    kinds = meta["prefix_kind"].to_numpy()
    null = oracle_null(kinds, meta["prefix"].to_list(), correct, stats.stats_rng(seed + 2),
                       num_samples)
    routed = router(kinds, correct, confidence_matrix(rows), stats.stats_rng(seed + 3),
                    num_samples)
    return null, routed
