"""The estimate lines of a job's header (train, run, study, eval), before its engine starts: the
wall time at this machine's planned throughput (prefixopt/plan.py through budget.estimate), the
question-evaluation budget and plan's warnings (an eval too small for --mde, a training budget
below a learner's need); the first estimate is kept in the run's budget.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefixopt import budget, plan
from prefixopt.commands.common import err_console


def estimate_lines(est: dict[str, Any], warnings: list[str]) -> list[str]:
    """The header's lines: one for the estimate, one per warning (rich markup)."""
    tr, ev = est["train_evaluations"], est["eval_evaluations"]
    evals = (f"{(tr or 0) + ev:,} question evaluations (train "
             + (f"{tr:,}" if tr is not None else "none") + f", eval {ev:,})")
    if est["evals_per_s"] is None:
        line = f"estimate: {evals}; wall time not estimated ({est['source']})"
    else:
        total = (est["train"] or 0.0) + (est["eval"] or 0.0)
        line = (f"estimate: ~{total:,.0f} s for {evals}, engine start "
                f"{est['engine_start_s']:.0f} s included, at {est['evals_per_s']:.3g} question "
                f"evaluations/s ({est['source']})")
    return [line, *(f"[yellow]warning:[/] {w}" for w in warnings)]


def header_estimate(kind: str, train_evaluations: int | None, evals: dict[str, int],
                    eval_questions: list[int], mde: float | None, train_budget: int | None,
                    starts_engine_in: str | None, run_dir: str | Path | None = None
                    ) -> tuple[dict[str, Any], list[str]]:
    """(estimate, header lines) of a job: evals maps each eval name to its question
    evaluations; train_budget is the run's whole training budget (the learner warning);
    run_dir: a resumed run, whose finished iterations give the pace (budget.measured_pace)."""
    pace = budget.measured_pace([run_dir]) if run_dir is not None else None
    est = budget.estimate(kind, train_evaluations, sum(evals.values()), starts_engine_in, pace)
    rate = est["evals_per_s"]
    est["per_eval"] = {n: None if rate is None else v / rate for n, v in evals.items()}
    if rate is not None and starts_engine_in == "eval" and evals:  # the first eval starts it
        first = next(iter(evals))
        est["per_eval"][first] += plan.ENGINE_START_S
    warnings = plan.job_warnings(train_budget, min(eval_questions, default=0), mde)
    return est, estimate_lines(est, warnings)


def evaluations(est: dict[str, Any]) -> int:
    """The job's question evaluations left (training + evals) in an estimate."""
    return (est["train_evaluations"] or 0) + est["eval_evaluations"]


def record(run_dir: str | Path | None, est: dict[str, Any]) -> None:
    """The first estimates into budget.json (kept there when the run is resumed)."""
    if run_dir is None:
        return
    if est["train_evaluations"] is not None:
        budget.record_estimate(run_dir, "train", est["train"])
    for name, seconds in est["per_eval"].items():
        budget.record_estimate(run_dir, f"eval/{name}", seconds)


def print_lines(lines: list[str]) -> None:
    for line in lines:
        err_console.print(line, highlight=False, soft_wrap=True)


def spent_line(b: dict[str, Any]) -> str:
    """One line after a job: what the run has spent so far against its first estimate."""
    est = "not estimated" if b["estimated_s"] is None else f"estimated {b['estimated_s']:,.0f} s"
    return (f"budget: {b['spent_s']:,.1f} s spent ({est}), {b['question_evaluations']:,} "
            f"question evaluations (train {b['train']['question_evaluations']:,}, eval "
            f"{b['eval']['question_evaluations']:,}), {b['computed_tokens']:,} prompt tokens "
            f"computed + {b['cached_tokens']:,} cached")
