"""What a command does around its engine, in this order: check every option that can be judged
without a model and load the inputs (`prepare_train`, `heldout.eval_inputs`), create the run
directory, build the ONE engine of the job (`make_engine`), then run. `run_job` is `prefixopt
run`: train -> eval -> report on that one engine, resumable at every stage. No engine is built
before every check has passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from prefixopt import runs
from prefixopt.benchmarks import get_task
from prefixopt.config import EvalConfig
from prefixopt.evaluate.variants import per_benchmark
from prefixopt.evaluate import heldout
from prefixopt.evaluate.leakage import TrainSide
from prefixopt.evaluate.prefixes import build_prefixes
from prefixopt.evaluate.heldout import eval_name
from prefixopt.evaluate import export
from prefixopt.learn.job import TrainJob, run_train, train_done
from prefixopt.report.page import build_report


def eval_configs_for(job: TrainJob, **options: Any) -> list[EvalConfig]:
    """The evaluations of a training job: its engine, task and people, plus the eval options;
    one per benchmark of the run (named <benchmark>_<split...> when there are several)."""

    cfg = job.cfg
    options.setdefault("seed", cfg.seed)  # a study gives all its runs one eval seed
    return per_benchmark(EvalConfig(engine=cfg.engine, task=cfg.task, people=cfg.people,
                                    **options))


def check_eval_for(job: TrainJob, ecfg: EvalConfig):
    """Before the engine: the eval's own checks, and a held-out split that cannot overlap the
    training split (the run will train on questions of its split) unless allowed; the same
    held-out questions as the eval after training (heldout.held_out)."""

    # an eval of that name in a resumed run is skipped by run_job, not an error; the run's
    # training side is the job's (config.json may not hold it yet): what run_side reads later
    probe = replace(ecfg, overwrite=True)
    side = TrainSide(tuple(job.train_split.get(ecfg.task.benchmark, ())),
                     job.fewshot if len(job.fewshot) else None, job.cfg.task.num_fewshot,
                     from_run=True)
    inputs = heldout.eval_inputs(probe, job.run_dir if job.resume else None, side,
                                  flag="--eval-allow-overlap")
    if ecfg.people_names:  # unknown names fail now, not after training
        build_prefixes(replace(ecfg, top_k=0, num_random=0), job.people, None,
                       np.random.default_rng(0))
    return inputs


def eval_done(job: TrainJob, ecfg: EvalConfig) -> bool:
    """An eval of this name exists in the run (and --eval-overwrite was not asked for)."""

    split = ecfg.eval_split or get_task(ecfg.task.benchmark).eval_split
    name = ecfg.name or eval_name(split, ecfg.num_questions, ecfg.seed)
    return not ecfg.overwrite and runs.eval_path(job.run_dir, name, "_summary").exists()


def needs_engine(job: TrainJob, ecfgs: list[EvalConfig]) -> bool:
    """False for a resumed run whose training and evals are all done: only the report is left."""
    return not (job.resume and train_done(job) and all(eval_done(job, e) for e in ecfgs))


def run_job(job: TrainJob, ecfgs: list[EvalConfig], engine, engine_start_s: float,
            progress: Callable | None = None, stage: Callable[[str], None] = lambda s: None,
            *, extra_meta: dict[str, Any] | None = None, report: bool = True,
            eval_engine: Any = None) -> dict[str, Any]:
    """`prefixopt run`: train (or finish training), evaluate on held-out questions (each eval
    whose tables exist is skipped: a resumed run picks up where it stopped), then the report;
    one engine throughout. extra_meta: see run_train; report=False leaves the run's report out
    (a study writes one report for all its runs). eval_engine: what the evals score on instead
    of `engine` (a study's engines.score_cache around it; training always uses `engine`)."""

    stage("train")
    summary = (run_train(job, engine, progress, extra_meta) if not train_done(job)
               else {"skipped": True})
    summary["engine_start_s"] = engine_start_s
    if summary.get("interrupted"):
        return {"run_dir": str(job.run_dir), "train": summary, "eval": None, "report": None,
                "engine_start_s": engine_start_s}
    results = []
    for ecfg in ecfgs:
        stage(f"eval {ecfg.task.benchmark}")
        if eval_done(job, ecfg):
            continue
        # the held-out questions again (same seed, same subsample), now against the answers
        inputs = heldout.eval_inputs(replace(ecfg, overwrite=True), job.run_dir)
        prefixes = heldout.eval_prefixes(ecfg, job.run_dir, inputs.rng, inputs.questions)
        results.append(heldout.score_prefixes(inputs, prefixes, job.run_dir,
                                               engine if eval_engine is None else eval_engine,
                                               {"engine_start_s": engine_start_s}))
    stage("report")
    report = build_report([job.run_dir], None) if report else None
    evals = [export.result_json(r) for r in results]
    return {"run_dir": str(job.run_dir), "train": summary,
            "eval": (evals[0] if len(ecfgs) == 1 else evals) if evals else {"skipped": True},
            "pooled": [export.contrast_json(c) for c in export.pooled(results)]
            if len(results) > 1 else None,
            "eval_results": results, "report": report, "engine_start_s": engine_start_s}
