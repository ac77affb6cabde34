"""A training job: every option checked and every input loaded before an engine starts
(`prepare_train`: options, benchmark x scoring, template, people, split vs B, few-shot, model,
the run directory, created last), then the training loop on it (`run_train`) and whether its
budget is spent (`train_done`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefixopt import runs
from prefixopt.ask.prompts import persona
from prefixopt.ask.scoring import resolve_scoring
from prefixopt.benchmarks import load_split
from prefixopt.config import TrainConfig
from prefixopt.engines.build import check_engine
from prefixopt.engines.openai_client import EngineUnavailable
from prefixopt.evaluate.leakage import training_fewshot
from prefixopt.learn.iteration import QuestionPlan, benchmark_names
from prefixopt.learn.checks import check_inputs, validate
from prefixopt.learn.learners import validate as validate_learner
from prefixopt.learn.loop import train
from prefixopt.people import load_people
from prefixopt.records import Question


@dataclass
class TrainJob:
    """A training run whose every input is checked and loaded; only the engine is missing."""

    cfg: TrainConfig
    questions: list[Question]
    people: Any  # prefixopt.people.People
    fewshot: Any  # prefixopt.ask.prompts.FewShot: none of them a training or held-out question
    run_dir: Path
    resume: bool
    model_path: str = ""  # what check_engine located (--engine vllm): resolved from, once
    # benchmark -> its whole training split (the few-shot examples not taken out)
    train_split: dict[str, list[Question]] = field(default_factory=dict)


def prepare_train(cfg: TrainConfig, *, resume: str | Path | None = None,
                  create: bool = True) -> TrainJob:
    """Check everything (options, benchmark x scoring, template, people, split vs B, few-shot,
    model, the run directory) and load the inputs; create the run directory last."""

    validate(cfg)
    validate_learner(cfg)
    model_path = check_engine(cfg.engine)
    names = benchmark_names(cfg.task)  # (M,)
    modes = {b: resolve_scoring(b, cfg.task.scoring) for b in names}
    persona(cfg.task.prefix_template, "A. Person")  # no {name} placeholder: one line, now
    resumed = runs.read_config(resume) if resume is not None else None  # not a run: one line
    split = {b: load_split(b, cfg.train_split, data_dir=cfg.task.data_dir, purpose="train")
             for b in names}
    # the few-shot examples first: they leave the training questions (recorded on resume)
    fewshot, questions = training_fewshot(cfg, [q for b in names for q in split[b]], resumed)
    plan = QuestionPlan(questions, names, cfg.batch_size, cfg.benchmark_weights, cfg.context)
    for b in names:
        check_inputs(cfg, modes[b], len(plan.pools[b]), plan.counts[b], b)
    people = load_people(cfg.people, exclude_fields=cfg.exclude_fields,
                         exclude_occupations=cfg.exclude_occupations)
    if resume is not None:
        run_dir = Path(resume)
    elif create:
        run_dir = runs.create_run_dir(cfg.output_dir, cfg.run_name)
    else:
        run_dir = Path(cfg.output_dir) / (cfg.run_name or "")
    return TrainJob(cfg, questions, people, fewshot, run_dir, resume is not None, model_path,
                    split)


def run_train(job: TrainJob, engine, progress: Callable | None = None,
              extra_meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The training loop on a prepared job. extra_meta goes into config.json (a study records
    its planted scenario there, so eval and resume rebuild the same synthetic engine)."""

    if len(job.fewshot):  # eval reuses exactly these examples (heldout.run_side)
        extra_meta = {"fewshot_ids": {job.fewshot.benchmark: job.fewshot.ids},
                      **(extra_meta or {})}
    try:
        return train(job.cfg, engine, job.people, job.questions, job.run_dir, progress=progress,
                     resume=job.resume, fewshot=job.fewshot, extra_meta=extra_meta)
    except EngineUnavailable as exc:  # the iteration in flight is not written
        raise EngineUnavailable(f"{exc}; nothing of the unfinished iteration was written; when "
                                f"the server is back, rerun with --resume {job.run_dir}"
                                ) from None


def train_done(job: TrainJob) -> bool:
    if not runs.has_checkpoint(job.run_dir):
        return False
    state = runs.load_checkpoint(job.run_dir)
    if "finished" in state:  # halving / ttts: the learner says when its budget is spent
        return bool(state["finished"])
    return int(state["iteration"]) + 1 >= job.cfg.iterations


def training_resumes(job: TrainJob) -> list[Path]:
    """[the run] when its training continues steps kept from an earlier start, else []: what
    must keep that start's dtype (enginelog.engine_session, runs.check_resume_dtype)."""
    kept = job.resume and runs.has_checkpoint(job.run_dir)
    return [job.run_dir] if kept and not train_done(job) else []
