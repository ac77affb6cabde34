"""A study's estimate before it starts (budget.estimate at the plan's throughput): the cells not
yet done, their training left and their evals not yet written, one engine start per model; each
cell's share goes into its run's budget.json when the cell starts.
"""

from __future__ import annotations

from typing import Any

from prefixopt import budget, pipeline
from prefixopt import plan as planning
from prefixopt.benchmarks import get_task
from prefixopt.evaluate.heldout import eval_name
from prefixopt.study.manifest import manifest_path, read_manifest


def _eval_name(ecfg: Any) -> str:
    split = ecfg.eval_split or get_task(ecfg.task.benchmark).eval_split
    return ecfg.name or eval_name(split, ecfg.num_questions, ecfg.seed)


def study_estimate(plan: Any) -> dict[str, Any]:
    """budget.estimate of the cells not yet done (their training left, their evals not yet
    written) and one engine start per model, counted in train; per cell under "cells" (no
    engine start). Computed once per plan."""
    if plan.estimate is not None:
        return plan.estimate
    done = set()
    if manifest_path(plan.study_dir).is_file():
        done = {c["id"] for c in read_manifest(plan.study_dir)["cells"] if c["status"] == "done"}
    todo = [c for c in plan.cells if c.id not in done]
    kind = plan.cells[0].cfg.engine.kind
    cells_est, train_n, eval_n, questions, budgets = {}, 0, 0, [], []
    for c in todo:
        job = plan.jobs[c.id]
        whole, left = budget.train_evaluations(job.cfg, job.run_dir, job.resume)
        evals = {}
        for ecfg in plan.evals[c.id].values():
            if pipeline.eval_done(job, ecfg):
                continue
            n = ecfg.num_questions or len(pipeline.check_eval_for(job, ecfg).questions)
            questions.append(n)
            evals[_eval_name(ecfg)] = n * budget.eval_prefixes(ecfg, len(job.people.names))
        one = budget.estimate(kind, left, sum(evals.values()), None)
        rate = one["evals_per_s"]
        cells_est[c.id] = {"train": one["train"], "eval": {
            n: None if rate is None else v / rate for n, v in evals.items()}}
        train_n, eval_n = train_n + left, eval_n + sum(evals.values())
        budgets.append(whole)
    est = budget.estimate(kind, train_n, eval_n, "train" if todo else None)
    models = len({c.cfg.engine for c in todo})
    if est["train"] is not None:  # one engine start per model, not one
        est["train"] += (models - 1) * planning.ENGINE_START_S
    est.update(engine_start_s=models * planning.ENGINE_START_S if est["train"] is not None
               else 0.0, cells=cells_est, min_eval_questions=min(questions, default=0),
               min_train_budget=min(budgets, default=None))
    plan.estimate = est
    return est


def record_cell_estimate(plan: Any, c: Any) -> None:
    """A cell's first estimates into its run's budget.json, before its work starts."""
    one = study_estimate(plan)["cells"].get(c.id)
    if one is None:  # done when the study started
        return
    run_dir = plan.jobs[c.id].run_dir
    budget.record_estimate(run_dir, "train", one["train"])  # a resumed cell keeps its first
    for name, seconds in one["eval"].items():
        budget.record_estimate(run_dir, f"eval/{name}", seconds)
