"""Planning before any engine starts: how many held-out questions one paired comparison (a
prefix vs no prefix on the same questions) needs to detect a difference in accuracy, which
difference a given number of questions can detect, and how long a run's training budget and
eval take at a measured throughput. Pure numpy/scipy; `prefixopt plan` is the command.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

from prefixopt.errors import PrefixoptError

DEFAULT_DISCORDANCE = 0.15  # share of questions where a prefix and no prefix disagree (see docs)
LEARNER_BUDGET = 50_000  # docs/learner_study.md: ~50,000 question evaluations find a field effect
ENGINE_START_S = 35.0  # README "Machines": a warm engine start, 30-37 s on an idle 2-core CPU
# Question evaluations (one question, one prefix, ARC-Easy cloze 0-shot, SmolLM2-135M) per second
# in one batched engine call: `prefixopt bench` way (a), 512 in 57.1 s on the 2-core AVX-512 BF16
# kind (docs/speed.md "Speed"); 512 in 132.5 s (3.86/s) on the 2-core AVX2-only Zen 2 kind,
# float32 (docs/engine_speed.md, 2026-12-07). The AVX-512 kind without bf16 is not measured.
EVALS_PER_S_BF16 = 9.0
EVALS_PER_S_OTHER = 3.86
# What `prefixopt eval` scores by default: no prefix + top 5 learned + 5 random + 2 hand-written
# + 5 paraphrases (the oracle null, one per learned person).
DEFAULT_EVAL_PREFIXES = 18


def check_inputs(mde: float, discordance: float, power: float, alpha: float,
                 comparisons: int = 1) -> None:
    """Raise PrefixoptError (one line naming the flag and the fix) for a value out of range."""
    if not 0 < mde < 1:
        raise PrefixoptError(f"--mde {mde:g} is not in (0, 1): give the smallest accuracy "
                             "difference to detect as a fraction, e.g. --mde 0.03")
    if not mde < discordance <= 1:
        raise PrefixoptError(
            f"--discordance {discordance:g} is not in (mde, 1] = ({mde:g}, 1]: the share of "
            "questions where the two prefixes disagree is at least their accuracy difference; "
            f"pass a larger value (default {DEFAULT_DISCORDANCE}) or --pilot RUN_DIR")
    for flag, value in (("--power", power), ("--alpha", alpha)):
        if not 0 < value < 1:
            raise PrefixoptError(f"{flag} {value:g} is not in (0, 1): pass a probability, "
                                 "e.g. --power 0.8 --alpha 0.05")
    if comparisons < 1:
        raise PrefixoptError(f"--comparisons {comparisons} is below 1: pass the number of "
                             "prefixes compared with no prefix (Holm), e.g. --comparisons 12")


def mcnemar_questions_float(mde: float, discordance: float, power: float = 0.8,
                            alpha: float = 0.05) -> float:
    """Questions for a two-sided paired (McNemar) test of accuracy difference `mde` when a
    share `discordance` of the questions is discordant (Connor 1987, Biometrics 43:207-211;
    the textbook normal approximation):
    n = (z_{1-alpha/2} sqrt(d) + z_{power} sqrt(d - mde^2))^2 / mde^2."""
    check_inputs(mde, discordance, power, alpha)
    z_a, z_b = norm.ppf(1 - alpha / 2), norm.ppf(power)
    root = z_a * math.sqrt(discordance) + z_b * math.sqrt(discordance - mde**2)
    return float(root**2 / mde**2)


def mcnemar_questions(mde: float, discordance: float, power: float = 0.8,
                      alpha: float = 0.05) -> int:
    """mcnemar_questions_float rounded up to whole questions."""
    return math.ceil(mcnemar_questions_float(mde, discordance, power, alpha) - 1e-9)


def detectable_mde(n: int, discordance: float, power: float = 0.8,
                   alpha: float = 0.05) -> float | None:
    """The smallest accuracy difference n paired questions detect (the inverse of
    mcnemar_questions_float); None when n is too few for any difference up to `discordance`."""
    def excess(m: float) -> float:
        return mcnemar_questions_float(m, discordance, power, alpha) - n

    top = discordance * (1 - 1e-12)
    if n <= 0 or excess(top) > 0:
        return None
    return float(brentq(excess, 1e-6, top, xtol=1e-9))


def holm_alpha(alpha: float, comparisons: int) -> float:
    """The alpha of Holm's first (strictest) step over `comparisons` tests: alpha / N."""
    return alpha / comparisons


def discordance_of(a: Iterable[bool], b: Iterable[bool]) -> float:
    """Share of questions where two paired correctness vectors disagree."""
    x, y = np.asarray(list(a), dtype=bool), np.asarray(list(b), dtype=bool)
    if x.shape != y.shape or x.size == 0:
        raise PrefixoptError("pilot: the two prefixes must answer the same, non-empty questions")
    return float(np.mean(x != y))


def default_evals_per_s(bf16_cpu: bool) -> tuple[float, str]:
    """The documented throughput for this CPU kind and where it comes from."""
    if bf16_cpu:
        return EVALS_PER_S_BF16, "documented: 2-core AVX-512 BF16 CPU, bench way (a)"
    return EVALS_PER_S_OTHER, "measured: 2-core AVX2 CPU (no native bf16), bench way (a), float32"


def estimate_seconds(budget: int | None, eval_evaluations: int, evals_per_s: float,
                     engine_start_s: float = ENGINE_START_S) -> dict[str, float | None]:
    """Wall time of one engine start, `budget` training evaluations and the eval's."""
    train = None if budget is None else budget / evals_per_s
    evals = eval_evaluations / evals_per_s
    return {"estimated_train_s": train, "estimated_eval_s": evals,
            "estimated_s": engine_start_s + (train or 0.0) + evals}


def make_plan(*, mde: float, discordance: float, power: float, alpha: float,
              comparisons: int, available: int | None, eval_questions: int | None,
              eval_prefixes: int, budget: int | None, evals_per_s: float) -> dict[str, Any]:
    """Everything `prefixopt plan` reports, as one JSON-ready dict (see docs/planning.md)."""
    check_inputs(mde, discordance, power, alpha, comparisons)
    for flag, value, low in (("--eval-questions", eval_questions, 1),
                             ("--eval-prefixes", eval_prefixes, 1), ("--budget", budget, 0)):
        if value is not None and value < low:
            raise PrefixoptError(f"{flag} {value} is below {low}: pass a whole number >= {low}")
    if not evals_per_s > 0:
        raise PrefixoptError(f"--evals-per-s {evals_per_s:g} must be > 0: pass the measured "
                             "question evaluations per second")
    test_alpha = holm_alpha(alpha, comparisons)
    needed = mcnemar_questions(mde, discordance, power, test_alpha)
    feasible = None if available is None else needed <= available
    size = eval_questions or (needed if available is None else min(needed, available))
    plan: dict[str, Any] = {
        "mde": mde, "discordance": discordance, "power": power, "alpha": alpha,
        "comparisons": comparisons, "alpha_per_test": test_alpha,
        "questions_needed": needed, "available_questions": available, "feasible": feasible,
        "eval_questions": size, "eval_prefixes": eval_prefixes,
        "detectable_mde": detectable_mde(size, discordance, power, test_alpha),
        "budget": budget, "evals_per_s": evals_per_s, "engine_start_s": ENGINE_START_S,
    }
    plan.update(estimate_seconds(budget, size * eval_prefixes, evals_per_s))
    plan["warnings"] = plan_warnings(plan)
    return plan


def plan_warnings(plan: dict[str, Any]) -> list[str]:
    """One line per problem: an eval too small for the MDE, a budget below a learner's need."""
    out = []
    if plan["feasible"] is False:
        out.append(f"not feasible: {plan['questions_needed']:,} questions needed to detect "
                   f"{plan['mde']:g}, the split has only {plan['available_questions']:,}")
    if plan["eval_questions"] < plan["questions_needed"]:
        mde = plan["detectable_mde"]
        can = f"it detects only {mde:.3f}" if mde is not None else "it detects no difference"
        out.append(f"an eval of {plan['eval_questions']:,} questions cannot detect "
                   f"--mde {plan['mde']:g} ({can} at power {plan['power']:g})")
    if plan["budget"] is not None and plan["budget"] < LEARNER_BUDGET:
        out.append(f"--budget {plan['budget']:,} is below the ~{LEARNER_BUDGET:,} question "
                   "evaluations docs/learner_study.md found a learner needs to find a field")
    return out


def job_warnings(budget: int | None, eval_questions: int | None, mde: float | None,
                 comparisons: int = 1) -> list[str]:
    """The header warnings of train, run, study and eval (plan_warnings): an eval of
    `eval_questions` that cannot detect `mde` (only when an MDE is asked for; one comparison
    at the default discordance, power 0.8, alpha 0.05), a training budget below a learner's
    need (budget None: no training)."""
    if mde is None or not eval_questions:
        return plan_warnings({"feasible": None, "eval_questions": 0, "questions_needed": 0,
                              "budget": budget})
    if not 0 < mde < DEFAULT_DISCORDANCE:
        raise PrefixoptError(f"--mde {mde:g} is not in (0, {DEFAULT_DISCORDANCE}): the header "
                             f"checks it at the default discordance {DEFAULT_DISCORDANCE}; size "
                             "other cases with `prefixopt plan --mde X --discordance D`")
    return make_plan(mde=mde, discordance=DEFAULT_DISCORDANCE, power=0.8, alpha=0.05,
                     comparisons=comparisons, available=None, eval_questions=eval_questions,
                     eval_prefixes=1, budget=budget, evals_per_s=1.0)["warnings"]
