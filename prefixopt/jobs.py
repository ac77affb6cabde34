"""What a command does around its engine, in this order: check every option that can be judged
without a model and load the inputs (`prepare_train`, `evaluate.eval_inputs`), create the run
directory, build the ONE engine of the job (`make_engine`), then run. `run_job` is `prefixopt
run`: train -> eval -> report on that one engine, resumable at every stage. No engine is built
before every check has passed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from prefixopt import runs
from prefixopt.benchmarks import get_task
from prefixopt.config import EngineConfig, EvalConfig, TrainConfig
from prefixopt.errors import PrefixoptError
from prefixopt.records import Question

ENGINE_KINDS = ("vllm", "synthetic", "openai")


@dataclass
class TrainJob:
    """A training run whose every input is checked and loaded; only the engine is missing."""

    cfg: TrainConfig
    mode: str | dict[str, str]  # letter | cloze | generate, or one per benchmark
    questions: list[Question]
    people: Any  # prefixopt.people.People
    fewshot: Any  # prefixopt.prompts.FewShot: none of them a training or held-out question
    run_dir: Path
    resume: bool
    # benchmark -> its whole training split (the few-shot examples not taken out)
    train_split: dict[str, list[Question]] = field(default_factory=dict)


def check_engine(cfg: EngineConfig) -> None:
    """The engine options: its kind, the dtype, the model (path or cached hub id)."""
    from prefixopt.device import DTYPES
    from prefixopt.models import locate

    if cfg.kind not in ENGINE_KINDS:
        raise PrefixoptError(f"--engine {cfg.kind!r} is not one of: {', '.join(ENGINE_KINDS)}")
    if cfg.kind == "vllm":
        if cfg.dtype not in DTYPES:
            raise PrefixoptError(f"--dtype {cfg.dtype!r} is not one of: {', '.join(DTYPES)}")
        locate(cfg.model)
    if cfg.kind == "openai":
        from prefixopt.engines.openai_engine import APIS

        if not cfg.base_url or not cfg.base_url.startswith(("http://", "https://")):
            raise PrefixoptError("--engine openai needs --base-url http(s)://HOST:PORT/v1 (what "
                                 "`prefixopt serve` prints, or the hosted API's base URL)")
        if cfg.api not in APIS:
            raise PrefixoptError(f"--api {cfg.api!r} is not one of: {', '.join(APIS)}")
        if cfg.max_concurrency < 1 or cfg.max_retries < 0 or cfg.request_timeout <= 0:
            raise PrefixoptError("--max-concurrency must be >= 1, --max-retries >= 0 and "
                                 "--request-timeout > 0")
    elif cfg.base_url:
        raise PrefixoptError(f"--base-url is for --engine openai, not --engine {cfg.kind}")


def prepare_train(cfg: TrainConfig, *, resume: str | Path | None = None,
                  create: bool = True) -> TrainJob:
    """Check everything (options, benchmark x scoring, template, people, split vs B, few-shot,
    model, the run directory) and load the inputs; create the run directory last."""
    from prefixopt.benchmarks import load_split
    from prefixopt.heldout import training_fewshot
    from prefixopt.iteration import QuestionPlan, benchmark_names
    from prefixopt.learners import validate as validate_learner
    from prefixopt.people import load_people
    from prefixopt.prompts import persona
    from prefixopt.scoring import resolve_scoring
    from prefixopt.train import check_inputs, validate

    validate(cfg)
    validate_learner(cfg)
    check_engine(cfg.engine)
    names = benchmark_names(cfg.task.benchmark)  # (M,)
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
    mode = modes[names[0]] if len(set(modes.values())) == 1 else modes
    return TrainJob(cfg, mode, questions, people, fewshot, run_dir, resume is not None, split)


def make_engine(cfg: EngineConfig, *, people=None, seed: int = 0,
                run_dir: str | Path | None = None) -> tuple[Any, float]:
    """(engine, seconds it took to start). vllm: the in-process vLLM engine. synthetic: the
    planted engine a simulate run recorded, else everyone at 0.5 (plumbing tests)."""
    t = time.perf_counter()
    if cfg.kind == "synthetic":
        planted = run_dir is not None and (Path(run_dir) / "config.json").is_file() and (
            "synthetic" in runs.read_config(run_dir))
        if planted or people is None:  # a simulate run's own engine (or why there is none)
            engine = synthetic_engine_for_run(run_dir)
        else:
            from prefixopt.engines.synthetic import SyntheticEngine

            engine = SyntheticEngine(people, np.full(len(people.person_id), 0.5), seed=seed)
    elif cfg.kind == "openai":
        from prefixopt.engines.openai_engine import build_openai_engine

        engine = build_openai_engine(cfg)
    else:
        from prefixopt.engines.vllm_engine import build_engine

        engine = build_engine(cfg)
    return engine, time.perf_counter() - t


def synthetic_engine_for_run(run_dir: str | Path):
    """Rebuild the planted engine a `simulate` run trained against, from config.json's
    "synthetic" entry: base_accuracy, difficulty_sd, seed, delta, planted_person_ids."""
    from prefixopt.engines.synthetic import SyntheticEngine

    meta = runs.read_config(run_dir)
    syn = meta.get("synthetic")
    if not syn:
        raise PrefixoptError(f"{run_dir} has no planted scenario in config.json (the "
                             "'synthetic' entry `prefixopt simulate` records); evaluate it with "
                             "--engine vllm")
    people = runs.run_people(run_dir)
    base = float(syn.get("base_accuracy", 0.5))

    def planted_accuracy(ids: list[int]) -> np.ndarray:  # (N,)
        planted = np.isin(people.person_id, np.asarray(ids, np.int64))
        return np.where(planted, base + float(syn.get("delta", 0.0)), base)

    by_benchmark = syn.get("planted_person_ids_by_benchmark")
    if syn.get("small_effects_sd"):  # every person's own accuracy, redrawn from the seed
        from prefixopt.simulate import small_effects

        accuracy = small_effects(people, float(syn["small_effects_sd"]), base,
                                 int(syn["seed"])).accuracy
        return SyntheticEngine(people, accuracy, base, float(syn.get("difficulty_sd", 1.0)),
                               int(syn["seed"]))
    accuracy = ({b: planted_accuracy(ids) for b, ids in by_benchmark.items()} if by_benchmark
                else planted_accuracy(syn.get("planted_person_ids", [])))
    return SyntheticEngine(people, accuracy, base, float(syn.get("difficulty_sd", 1.0)),
                           int(syn.get("seed", meta.get("config", {}).get("seed", 0))))


def run_train(job: TrainJob, engine, progress: Callable | None = None,
              extra_meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The training loop on a prepared job. extra_meta goes into config.json (a study records
    its planted scenario there, so eval and resume rebuild the same synthetic engine)."""
    from prefixopt.engines.openai_client import EngineUnavailable
    from prefixopt.learners import train

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


def eval_configs_for(job: TrainJob, **options: Any) -> list[EvalConfig]:
    """The evaluations of a training job: its engine, task and people, plus the eval options;
    one per benchmark of the run (named <benchmark>_<split...> when there are several)."""
    from prefixopt.eval_variants import per_benchmark

    cfg = job.cfg
    options.setdefault("seed", cfg.seed)  # a study gives all its runs one eval seed
    return per_benchmark(EvalConfig(engine=cfg.engine, task=cfg.task, people=cfg.people,
                                    **options))


def check_eval_for(job: TrainJob, ecfg: EvalConfig):
    """Before the engine: the eval's own checks, and a held-out split that cannot overlap the
    training split (the run will train on questions of its split) unless allowed; the same
    held-out questions as the eval after training (heldout.held_out)."""
    from prefixopt import evaluate
    from prefixopt.heldout import TrainSide
    from prefixopt.prefixes import build_prefixes

    # an eval of that name in a resumed run is skipped by run_job, not an error; the run's
    # training side is the job's (config.json may not hold it yet): what run_side reads later
    probe = replace(ecfg, overwrite=True)
    side = TrainSide(tuple(job.train_split.get(ecfg.task.benchmark, ())),
                     job.fewshot if len(job.fewshot) else None, job.cfg.task.num_fewshot,
                     from_run=True)
    inputs = evaluate.eval_inputs(probe, job.run_dir if job.resume else None, side,
                                  flag="--eval-allow-overlap")
    if ecfg.people_names:  # unknown names fail now, not after training
        build_prefixes(replace(ecfg, top_k=0, num_random=0), job.people, None,
                       np.random.default_rng(0))
    return inputs


def train_done(job: TrainJob) -> bool:
    ckpt = job.run_dir / "checkpoints" / "latest.npz"
    if not ckpt.is_file():
        return False
    state = runs.load_checkpoint(job.run_dir)
    if "finished" in state:  # halving / ttts: the learner says when its budget is spent
        return bool(state["finished"])
    return int(state["iteration"]) + 1 >= job.cfg.iterations


def eval_done(job: TrainJob, ecfg: EvalConfig) -> bool:
    """An eval of this name exists in the run (and --eval-overwrite was not asked for)."""
    from prefixopt.evaluate import eval_name

    split = ecfg.eval_split or get_task(ecfg.task.benchmark).eval_split
    name = ecfg.name or eval_name(split, ecfg.num_questions, ecfg.seed)
    return not ecfg.overwrite and (job.run_dir / "eval" / f"{name}_summary.parquet").exists()


def needs_engine(job: TrainJob, ecfgs: list[EvalConfig]) -> bool:
    """False for a resumed run whose training and evals are all done: only the report is left."""
    return not (job.resume and train_done(job) and all(eval_done(job, e) for e in ecfgs))


def run_job(job: TrainJob, ecfgs: list[EvalConfig], engine, engine_start_s: float,
            progress: Callable | None = None, stage: Callable[[str], None] = lambda s: None,
            *, extra_meta: dict[str, Any] | None = None, report: bool = True) -> dict[str, Any]:
    """`prefixopt run`: train (or finish training), evaluate on held-out questions (each eval
    whose tables exist is skipped: a resumed run picks up where it stopped), then the report;
    one engine throughout. extra_meta: see run_train; report=False leaves the run's report out
    (a study writes one report for all its runs)."""
    from prefixopt import eval_summary, evaluate
    from prefixopt.report import build_report

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
        inputs = evaluate.eval_inputs(replace(ecfg, overwrite=True), job.run_dir)
        prefixes = evaluate.eval_prefixes(ecfg, job.run_dir, inputs.rng, inputs.questions)
        results.append(evaluate.score_prefixes(inputs, prefixes, job.run_dir, engine,
                                               {"engine_start_s": engine_start_s}))
    stage("report")
    report = build_report([job.run_dir], None) if report else None
    evals = [eval_summary.result_json(r) for r in results]
    return {"run_dir": str(job.run_dir), "train": summary,
            "eval": (evals[0] if len(ecfgs) == 1 else evals) if evals else {"skipped": True},
            "pooled": [eval_summary.contrast_json(c) for c in eval_summary.pooled(results)]
            if len(results) > 1 else None,
            "eval_results": results, "report": report, "engine_start_s": engine_start_s}
