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
    engine start). A resumed study runs at its own measured pace (budget.measured_pace, per
    model); with the score cache on, an eval that an earlier cell of the same model ran on the
    same questions is counted as its learned people only (the baselines are served). Computed
    once per plan."""
    if plan.estimate is not None:
        return plan.estimate
    done = set()
    if manifest_path(plan.study_dir).is_file():
        done = {c["id"] for c in read_manifest(plan.study_dir)["cells"] if c["status"] == "done"}
    todo = [c for c in plan.cells if c.id not in done]
    kind = plan.cells[0].cfg.engine.kind
    pace = {e: budget.measured_pace(plan.jobs[c.id].run_dir for c in plan.cells
                                    if c.cfg.engine == e)
            for e in {c.cfg.engine for c in todo}}
    scored = {(c.cfg.engine, b, _eval_name(e)) for c in plan.cells if c.id in done
              for b, e in plan.evals[c.id].items()}  # evals whose baselines the cache holds
    cells_est, train_n, eval_n, questions, budgets = {}, 0, 0, [], []
    for c in todo:
        job = plan.jobs[c.id]
        whole, left = budget.train_evaluations(job.cfg, job.run_dir, job.resume)
        evals = {}
        for b, ecfg in plan.evals[c.id].items():
            key = (c.cfg.engine, b, _eval_name(ecfg))
            cached = plan.spec.score_cache and key in scored
            scored.add(key)  # a later cell's eval finds this one's baselines in the cache
            if pipeline.eval_done(job, ecfg):
                continue
            n = ecfg.num_questions or len(pipeline.check_eval_for(job, ecfg).questions)
            questions.append(n)
            people = len(job.people.names)
            evals[_eval_name(ecfg)] = n * (min(ecfg.top_k, people) if cached
                                           else budget.eval_prefixes(ecfg, people))
        one = budget.estimate(kind, left, sum(evals.values()), None, pace[c.cfg.engine])
        rate = one["evals_per_s"]
        cells_est[c.id] = {**one, "eval": {
            n: None if rate is None else v / rate for n, v in evals.items()}}
        train_n, eval_n = train_n + left, eval_n + sum(evals.values())
        budgets.append(whole)
    est = _total(kind, list(cells_est.values()), train_n, eval_n, len(pace))
    est.update(cells={i: {"train": e["train"], "eval": e["eval"]} for i, e in cells_est.items()},
               min_eval_questions=min(questions, default=0),
               min_train_budget=min(budgets, default=None))
    plan.estimate = est
    return est


def _total(kind: str, cells: list[dict[str, Any]], train_n: int, eval_n: int,
           models: int) -> dict[str, Any]:
    """The study's estimate: the cells' seconds summed, one engine start per model (in train);
    evals_per_s the study's overall rate and its source (the plan's or the measured pace)."""
    est = budget.estimate(kind, train_n, eval_n, "train" if cells else None)
    if cells and all(c["evals_per_s"] is not None for c in cells):
        train = sum(c["train"] or 0.0 for c in cells)
        evals = sum(sum(v for v in c["eval"].values() if v is not None) for c in cells)
        rates = {c["evals_per_s"] for c in cells}
        sources = list(dict.fromkeys(c["source"] for c in cells))
        est.update(train=train + models * planning.ENGINE_START_S, eval=evals,
                   evals_per_s=rates.pop() if len(rates) == 1 else
                   round((train_n + eval_n) / max(train + evals, 1e-9), 2),
                   source="; ".join(sources))
    est["engine_start_s"] = models * planning.ENGINE_START_S if est["train"] is not None else 0.0
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
