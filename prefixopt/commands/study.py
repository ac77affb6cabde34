"""`prefixopt study SPEC.toml [--resume] [--json]`: the spec -> a checked plan (every cell,
eval and the planted scenario, before any engine) -> study.run_study with one engine per model
(vLLM's output in studies/<name>/engine.log) -> a progress bar over every cell's iterations
and the cells' statuses; `--json` lists every cell with its run directory and status.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from prefixopt import plan as planning
from prefixopt.commands import estimate
from prefixopt.commands.common import err_console, out_console, print_json
from prefixopt.commands.enginelog import engine_session
from prefixopt.commands.options import STUDY, with_options
from prefixopt.learn.job import training_resumes
from prefixopt.study import grid as st
from prefixopt.study.spec import load_spec


SPEC = [inspect.Parameter("spec", inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[
    Path, typer.Argument(help="The study spec (TOML; see README 'Studies').")])]


@with_options(SPEC, STUDY)
def study(ctx: typer.Context, **values: Any) -> None:
    """Grids of runs: models x benchmarks x budgets x seeds x learner options, one engine per
    model, then one study report (transfer matrix, budget curves, distributions)."""

    v = SimpleNamespace(**values)
    spec = v.spec
    output_dir, engine, data_dir = v.output_dir, v.engine, v.data_dir
    resume, verbose, json_out = v.resume, v.verbose, v.json_out
    cfg = load_spec(spec)
    if output_dir is not None:
        cfg = dataclasses.replace(cfg, output_dir=output_dir)
    if engine is not None:
        cfg = dataclasses.replace(cfg, engine=engine)
    overrides = {"base_url": v.base_url, "max_concurrency": v.max_concurrency}
    cfg = dataclasses.replace(cfg, train={**cfg.train, **{k: v for k, v in overrides.items()
                                                          if v is not None}})
    if data_dir is not None and "data_dir" not in cfg.train:
        cfg = dataclasses.replace(cfg, train={**cfg.train, "data_dir": data_dir})
    plan = st.prepare(cfg, resume=resume)  # every check before any engine
    if not json_out:
        err_console.print(f"study {cfg.name}: {len(plan.cells)} cells -> {plan.study_dir}/",
                          highlight=False)
    est = st.study_estimate(plan)  # the manifest records it before any cell starts
    estimate.print_lines(estimate.estimate_lines(est, planning.job_warnings(
        est["min_train_budget"], est["min_eval_questions"], v.mde)))
    session = (None if cfg.engine == "synthetic"
               else _vllm_session(verbose, estimate.evaluations(est)))
    with _progress(plan, json_out) as (progress, stage):
        out = st.run_study(plan, session=session, progress=progress, stage=stage)
    if json_out:
        print_json(out)
    else:
        _print(out, spec)
    if not out["complete"]:  # stopped by Ctrl-C: the manifest says where
        raise typer.Exit(130)


def _print(out: dict[str, Any], spec: Path) -> None:
    for c in out["cells"]:
        out_console.print(f"{c['status']:>11}  {c['id']}  {c['run_dir']}", highlight=False,
                          soft_wrap=True)
    if out["report"] is not None:
        out_console.print(f"report: {out['report']['report_md']}", highlight=False)
    else:
        err_console.print(f"stopped; continue with: prefixopt study {spec} --resume",
                          highlight=False)
    err_console.print(f"{out['wall_s']:.1f} s; engine start per model: "
                      + ", ".join(f"{m} {s:.1f} s" for m, s in out["engine_start_s"].items()),
                      highlight=False)
    err_console.print(estimate.spent_line(out["budget"]), highlight=False, soft_wrap=True)


def _vllm_session(verbose: bool, evaluations: int):
    """Each model's one engine; eager or compiled by the study's question evaluations left
    (all models together, at least each model's share: a study of several models may compile
    one that has less to do)."""
    def session(plan, ecfg) -> contextlib.AbstractContextManager:
        resumes = [d for c in plan.cells if c.cfg.engine == ecfg
                   for d in training_resumes(plan.jobs[c.id])]  # this engine's half-trained runs
        return engine_session("study", ecfg, plan.study_dir, verbose, evaluations=evaluations,
                              resumes=resumes)

    return session


@contextlib.contextmanager
def _progress(plan, quiet: bool):
    """One bar over every cell's training question evaluations (its budget: every learner spends
    it, while the number of iterations differs, halving's rounds make short ones); the
    description names the cell and its stage."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    if quiet:
        yield (None, None)
        return
    done_before: dict[str, int] = {}
    total = 0
    for c in plan.cells:
        done_before[c.id] = total
        total += c.budget
    if not err_console.is_terminal:  # a log file (a study run in the background for hours)
        yield _log_lines(plan, done_before, total)
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=err_console, transient=False) as bar:
        task = bar.add_task("study", total=total)

        def progress(cell: str, stats: dict[str, Any]) -> None:
            bar.update(task, completed=done_before[cell] + stats["evaluations"],
                       description=f"{cell} train")

        def stage(cell: str, name: str) -> None:
            bar.update(task, description=f"{cell} {name}")
            if name == "train":  # a skipped or finished training still counts
                bar.update(task, completed=done_before[cell])

        yield progress, stage
        bar.update(task, completed=total, description="study report")


LOG_EVERY_S = 60.0  # a study's progress line in a log file, at most this often


def _log_lines(plan, done_before: dict[str, int], total: int) -> tuple:
    """(progress, stage) that print one plain, timestamped line per stage and at most one per
    LOG_EVERY_S while training, with the training time left at this session's pace: a live bar
    in a log file would be one line written at exit (or thousands of redraws)."""
    first: list[tuple[float, int]] = []  # (time, evaluations done) at the first report
    last = [-LOG_EVERY_S]

    def say(text: str) -> None:
        err_console.print(f"[{time.strftime('%H:%M:%S')}] {text}", highlight=False,
                          soft_wrap=True)

    def progress(cell: str, stats: dict[str, Any]) -> None:
        now, done = time.monotonic(), done_before[cell] + stats["evaluations"]
        first[:] = first or [(now, done)]
        if now - last[0] < LOG_EVERY_S:
            return
        last[0] = now
        left = st.hours_left(first[0], now, done, total)
        eta = (f", ~{left:.1f} h of training left at this session's pace"
               if left is not None else "")
        say(f"{cell} train: iteration {stats['iteration'] + 1}, "
            f"{stats['evaluations']:,} question evaluations; study {done:,}/{total:,} "
            f"training evaluations{eta}")

    def stage(cell: str, name: str) -> None:
        say(f"{cell} {name}")

    return progress, stage


def register(app: typer.Typer) -> None:
    app.command("study")(study)
