"""`prefixopt run`: train -> eval -> report in one process with ONE engine (the quickstart).
Takes train's options and eval's as `--eval-*`; `--resume RUN` finishes a half-done run: the
rest of its training, its evaluation unless one of that name exists, and the report.
"""

from __future__ import annotations

from typing import Any

import typer

from prefixopt import budget
from prefixopt.commands import estimate
from prefixopt.commands.common import err_console, out_console, print_json
from prefixopt.commands.enginelog import engine_session
from prefixopt.commands.evaluate import print_eval
from prefixopt.commands.options import EVAL, JOB, MDE, TRAIN, eval_options, with_options
from prefixopt.commands.train import print_train, progress_bar, train_job
from prefixopt.learn.job import training_resumes
from prefixopt import pipeline


def register(app: typer.Typer) -> None:
    @app.command("run")
    @with_options(TRAIN, EVAL, JOB, MDE)
    def run_(ctx: typer.Context, **values: Any) -> None:
        """Train, evaluate on held-out questions and write the report, on one engine."""

        job = train_job(ctx, values)  # every check of train and eval before the engine
        ecfgs = pipeline.eval_configs_for(job, **eval_options(values))
        inputs = [pipeline.check_eval_for(job, ecfg) for ecfg in ecfgs]
        quiet = values["json_out"]
        est, notes = header_notes(job, ecfgs, inputs, values["mde"])

        def stage(name: str) -> None:
            if not quiet and name != "train":
                err_console.print(f"[dim]run:[/] {name}", highlight=False)

        if not pipeline.needs_engine(job, ecfgs):  # trained and evaluated: only the report is left
            out = pipeline.run_job(job, ecfgs, None, 0.0, None, stage)
        else:
            first = "eval" if pipeline.train_done(job) else "train"  # what starts the engine
            with engine_session("run", job.cfg.engine, job.run_dir,
                                values["verbose"], model_path=job.model_path, notes=notes,
                                evaluations=estimate.evaluations(est),
                                resumes=training_resumes(job),
                                people=job.people, seed=job.cfg.seed) as (eng, s), \
                    progress_bar(job.cfg.iterations, "train", quiet) as update:
                budget.record_start(job.run_dir, first, s)
                out = pipeline.run_job(job, ecfgs, eng, s, update, stage)
            out["dtype"] = eng.info().get("dtype")
        out["budget"] = budget.of_run(job.run_dir)
        if quiet:
            out.pop("eval_results", None)
            print_json(out)
            return
        if not out["train"].get("skipped"):
            print_train(out["train"])
        for result in out.pop("eval_results"):
            print_eval(result)
        if out["report"] is not None:
            out_console.print(f"report: {out['report']['report_md']}", highlight=False)
        err_console.print(f"engine start {out['engine_start_s']:.0f} s (once for train, eval and "
                          f"report); files: {job.run_dir}/", highlight=False)
        err_console.print(estimate.spent_line(out["budget"]), highlight=False, soft_wrap=True)


def header_notes(job, ecfgs, inputs, mde: float | None) -> tuple[dict, list[str]]:
    """The estimate of what is left of the run (training, then the evals not yet written),
    recorded in budget.json before the engine starts, and the header's lines."""
    whole, left = budget.train_evaluations(job.cfg, job.run_dir, job.resume)
    todo = [(e, i) for e, i in zip(ecfgs, inputs, strict=True)
            if not pipeline.eval_done(job, e)]
    evals = {i.name: len(i.questions) * budget.eval_prefixes(e, len(job.people.names))
             for e, i in todo}
    first = "eval" if pipeline.train_done(job) else "train"
    est, notes = estimate.header_estimate(job.cfg.engine.kind, left, evals,
                                          [len(i.questions) for _, i in todo], mde, whole, first,
                                          job.run_dir)
    estimate.record(job.run_dir, est)
    return est, notes
