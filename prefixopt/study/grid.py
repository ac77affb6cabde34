"""`prefixopt study SPEC.toml`: a grid of runs (study/spec.py) under studies/<name>/runs/<cell>,
each a normal run directory (train -> own evals -> transfer evals `transfer_<benchmark>`), with
ONE engine per model reused by every run and eval of that model, a manifest.json recording each
cell's status after every change, `--resume` (done cells skipped, a half-done cell resumed
exactly by pipeline.run_job) and one study report at the end (study/page.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from prefixopt import budget
from prefixopt.engines import build
from prefixopt.engines.score_cache import ScoreCache
from prefixopt.learn.job import TrainJob, prepare_train
from prefixopt import pipeline
from prefixopt.benchmarks import get_task
from prefixopt.config import EngineConfig, EvalConfig
from prefixopt.errors import PrefixoptError
from prefixopt.study.estimate import record_cell_estimate, study_estimate
from prefixopt.study.manifest import manifest_path, read_manifest, write_manifest
from prefixopt.study.spec import STUDY_EVAL_KEYS, Cell, StudyConfig, cells, spec_dict
from prefixopt.learn import simulate
from prefixopt.evaluate.heldout import eval_name
from prefixopt.study.page import build_study_report

STATUSES = ("pending", "running", "done", "failed", "interrupted")


@dataclass
class StudyPlan:
    """A study whose every cell is checked and loaded; only the engines are missing."""

    spec: StudyConfig
    study_dir: Path
    cells: list[Cell]
    jobs: dict[str, TrainJob]  # cell id -> job
    evals: dict[str, dict[str, EvalConfig]]  # cell id -> {evaluated-on benchmark: eval}
    scenario: Any = None  # simulate.Scenario of a synthetic study
    meta: dict[str, Any] | None = None  # its config.json entry (simulate.scenario_meta)
    estimate: dict[str, Any] | None = None  # study_estimate, once (the header and manifest)


def cell_evals(spec: StudyConfig, job: TrainJob) -> dict[str, EvalConfig]:
    """The run's own evals (one per trained benchmark) and, with transfer on, `transfer_<b>`
    on every other benchmark of the matrix. Every run is evaluated with the study's eval seed,
    so all runs answer the same held-out questions and a matrix row pools its seeds question
    by question."""
    opts = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.eval.items()
            if k not in STUDY_EVAL_KEYS}
    # every run is evaluated with the study's eval seed: the same held-out questions for all
    out = {e.task.benchmark: e for e in pipeline.eval_configs_for(job, seed=spec.eval_seed, **opts)}
    base = next(iter(out.values()))
    for b in spec.eval_benchmarks():
        if b not in out:  # a scoring the target does not allow falls back to its default
            scoring = job.cfg.task.scoring if job.cfg.task.scoring in get_task(b).scorings else None
            out[b] = dataclasses.replace(base, name=f"transfer_{b}", eval_split=None,
                                         task=dataclasses.replace(job.cfg.task, benchmark=b,
                                                                  scoring=scoring))
    return out


def prepare(spec: StudyConfig, *, resume: bool = False) -> StudyPlan:
    """Check every cell (prepare_train, the evals' checks, the planted scenario) and the
    study directory against --resume, before any engine; create nothing."""
    study_dir = Path(spec.output_dir) / spec.name
    if manifest_path(study_dir).is_file() and not resume:
        raise PrefixoptError(f"study {study_dir} exists; continue it with --resume, or give "
                             "the spec another name")
    if resume:
        old = read_manifest(study_dir)["spec"]
        new = spec_dict(spec)
        changed = sorted(k for k in new if k != "output_dir" and old.get(k) != new[k])
        if changed:
            raise PrefixoptError(f"--resume: the spec differs from the one {study_dir} was "
                                 f"started with ({', '.join(changed)}); give it another name")
    syn = spec.synthetic
    grid = cells(spec, int(syn.get("seed", 0)))
    plan_jobs, evals = {}, {}
    for cell in grid:
        run_dir = study_dir / "runs" / cell.id
        again = run_dir if (run_dir / "config.json").is_file() else None
        job = prepare_train(cell.cfg, resume=again, create=False)
        plan_jobs[cell.id] = job
        evals[cell.id] = cell_evals(spec, job)
        for ecfg in evals[cell.id].values():
            pipeline.check_eval_for(job, ecfg)
    plan = StudyPlan(spec, study_dir, grid, plan_jobs, evals)
    if spec.engine == "synthetic":
        _plant(plan)
    return plan


def _plant(plan: StudyPlan) -> None:
    """The study's planted scenario (simulate's scenarios) over the runs' one people table."""

    syn, people = plan.spec.synthetic, next(iter(plan.jobs.values())).people
    if len({j.people.fingerprint for j in plan.jobs.values()}) > 1:
        raise PrefixoptError("a synthetic study plants one scenario: every cell needs the same "
                             "people table (no people or exclude_* axis)")
    base, delta = float(syn.get("base_accuracy", 0.5)), float(syn.get("delta", 0.1))
    if not 0 < base < 1 or not 0 < base + delta < 1:
        raise PrefixoptError(f"[synthetic] base_accuracy {base} + delta {delta} must stay "
                             "inside (0, 1)")
    seed = int(syn.get("seed", 0))
    plan.scenario = simulate.scenario_for(
        people, list(syn.get("planted_field", [])) or None, syn.get("planted_people"), delta,
        base, seed, plan.spec.all_benchmarks())
    plan.meta = simulate.scenario_meta(plan.scenario, people, base,
                                       float(syn.get("difficulty_sd", 1.0)), seed)


def build_engine(plan: StudyPlan, ecfg: EngineConfig) -> tuple[Any, float]:
    """(engine, start seconds) for one model: the planted SyntheticEngine of a synthetic study
    (what build.synthetic_engine_for_run rebuilds from each run's config.json), else
    build.make_engine."""
    if ecfg.kind != "synthetic":
        return build.make_engine(ecfg)

    t = time.perf_counter()
    syn = plan.meta["synthetic"]
    people = next(iter(plan.jobs.values())).people
    engine = build.synthetic_engine(people, plan.scenario, syn["base_accuracy"],
                                    syn["difficulty_sd"], syn["seed"])
    return engine, time.perf_counter() - t


@contextlib.contextmanager
def default_session(plan: StudyPlan, ecfg: EngineConfig) -> Iterator[tuple[Any, float]]:
    yield build_engine(plan, ecfg)


def new_manifest(plan: StudyPlan) -> dict[str, Any]:
    old, old_budget = {}, None
    if manifest_path(plan.study_dir).is_file():
        previous = read_manifest(plan.study_dir)
        old, old_budget = {c["id"]: c for c in previous["cells"]}, previous.get("budget")
    est = study_estimate(plan)
    rows = []
    for c in plan.cells:
        status = old.get(c.id, {}).get("status", "pending")
        rows.append({"id": c.id, "group": c.group, "model": c.model, "benchmark": c.benchmark,
                     "budget": c.budget, "seed": c.seed, "options": c.options,
                     "iterations": c.cfg.iterations, "run_dir": f"runs/{c.id}",
                     "status": status, "evals": {b: _eval_name(e) for b, e in
                                                 plan.evals[c.id].items()}})
    # the first estimate (kept on --resume) and every session's engine starts (budget.of_study)
    first = {"estimated_s": {"train": est["train"], "eval": est["eval"]}, "engine_starts": []}
    return {"name": plan.spec.name, "spec": spec_dict(plan.spec), "cells": rows,
            "engine_start_s": {}, "budget": old_budget or first}


def _eval_name(ecfg: EvalConfig) -> str:
    split = ecfg.eval_split or get_task(ecfg.task.benchmark).eval_split
    return ecfg.name or eval_name(split, ecfg.num_questions, ecfg.seed)


def run_study(plan: StudyPlan, *, session: Callable | None = None,
              progress: Callable[[str, dict], None] | None = None,
              stage: Callable[[str, str], None] | None = None) -> dict[str, Any]:
    """Every cell not yet done, grouped by engine (one per model, built only if one of its
    cells needs it), then the study report. session(plan, EngineConfig) is a context manager
    yielding (engine, start_s); the CLI's routes vLLM's output to studies/<name>/engine.log."""

    t0 = time.perf_counter()
    session = session or default_session
    manifest = new_manifest(plan)
    row = {r["id"]: r for r in manifest["cells"]}
    plan.study_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(plan.study_dir, manifest)
    by_engine: dict[EngineConfig, list[Cell]] = {}
    for c in plan.cells:
        by_engine.setdefault(c.cfg.engine, []).append(c)
    for ecfg, group in by_engine.items():
        todo = [c for c in group if row[c.id]["status"] != "done"]
        if not todo:
            continue
        finished = _run_model(plan, session, ecfg, todo, manifest, progress, stage)
        gc.collect()  # the model's engine is gone (no reference left) before the next starts
        if not finished:
            return summary(plan, manifest, None, time.perf_counter() - t0)
    report = build_study_report(plan.study_dir)
    return summary(plan, manifest, report, time.perf_counter() - t0)


def _run_model(plan: StudyPlan, session: Callable, ecfg: EngineConfig, todo: list[Cell],
               manifest: dict[str, Any], progress, stage) -> bool:
    """The cells of one model on its ONE engine; False when a cell was interrupted."""
    row = {r["id"]: r for r in manifest["cells"]}
    with session(plan, ecfg) as (engine, start_s):
        manifest["engine_start_s"][ecfg.model] = start_s
        manifest["budget"]["engine_starts"].append({"model": ecfg.model, "s": start_s})
        evals = eval_engine(plan, ecfg, engine)
        return all(_run_cell(plan, c, row[c.id], manifest, engine, start_s, progress, stage,
                             evals) for c in todo)  # all() stops at the first interrupted cell


def eval_engine(plan: StudyPlan, ecfg: EngineConfig, engine) -> Any:
    """What the study's evals score on: the model's engine behind a ScoreCache whose shards
    live in studies/<name>/score_cache/ (`[eval] score_cache = false`: the engine itself).
    Training never sees the cache."""
    if not plan.spec.score_cache:
        return engine
    identity = {"engine_config": dataclasses.asdict(ecfg), "synthetic": plan.meta}
    return ScoreCache(engine, plan.study_dir / "score_cache", identity)


def _run_cell(plan: StudyPlan, c: Cell, row: dict[str, Any], manifest: dict[str, Any], engine,
              start_s: float, progress, stage, evals=None) -> bool:
    """One cell on its model's engine; False when training was interrupted (Ctrl-C)."""
    job, ecfgs = plan.jobs[c.id], list(plan.evals[c.id].values())
    if isinstance(evals, ScoreCache) and stage is not None:  # a line per scored chunk of an eval
        evals.on_chunk = _chunk_lines(c.id, stage)
    row.update(status="running", error=None)
    write_manifest(plan.study_dir, manifest)
    record_cell_estimate(plan, c)
    t = time.perf_counter()
    try:
        out = pipeline.run_job(job, ecfgs, engine, start_s,
                           (lambda s: progress(c.id, s)) if progress else None,
                           (lambda s: stage(c.id, s)) if stage else (lambda s: None),
                           extra_meta=plan.meta, report=False, eval_engine=evals)
    except BaseException as exc:  # recorded, then raised: a killed study resumes from here
        row.update(status="interrupted" if isinstance(exc, KeyboardInterrupt) else "failed",
                   error=f"{type(exc).__name__}: {exc}"[:500])
        write_manifest(plan.study_dir, manifest)
        raise
    if out["train"].get("interrupted"):
        row["status"] = "interrupted"
        write_manifest(plan.study_dir, manifest)
        return False
    row.update(status="done", wall_s=time.perf_counter() - t)
    cached = [r.score_cache for r in out.get("eval_results", []) if r.score_cache is not None]
    if cached:  # the cell's evals: requests served from the study's score cache / scored
        row["score_cache"] = {k: sum(c[k] for c in cached) for k in ("hits", "misses")}
    write_manifest(plan.study_dir, manifest)
    return True


def hours_left(start: tuple[float, int], now: float, done: int, total: int) -> float | None:
    """Hours until `total` at the pace since `start` = (monotonic time, done then); None before
    any progress since then. The study's log lines (training and eval chunks) say this."""
    t0, d0 = start
    return (total - done) * (now - t0) / (done - d0) / 3600 if done > d0 else None


def _chunk_lines(cell: str, stage: Callable[[str, str], None]) -> Callable[[int, int], None]:
    """on_chunk for a cell's evals: '<cell> eval: 4,096/18,000 question evaluations scored, ~1.2 h
    left', the pace measured from the call's first chunk (hours of one engine call, otherwise
    silent)."""
    first: list[tuple[float, int]] = []  # (time, scored) at the call's first chunk

    def on_chunk(done: int, total: int) -> None:
        now = time.monotonic()
        if not first or done <= first[0][1]:  # a new call
            first[:] = [(now, done)]
        left = hours_left(first[0], now, done, total)
        eta = f", ~{left:.1f} h left" if left is not None and done < total else ""
        stage(cell, f"eval: {done:,}/{total:,} question evaluations scored{eta}")

    return on_chunk


def summary(plan: StudyPlan, manifest: dict[str, Any], report: dict | None,
            wall_s: float) -> dict[str, Any]:
    """The --json payload: every cell with its run directory and status, the report."""
    cells_out = [{**r, "run_dir": str(plan.study_dir / r["run_dir"])}
                 for r in manifest["cells"]]
    counts = {s: sum(r["status"] == s for r in cells_out) for s in STATUSES}
    return {"study": plan.spec.name, "study_dir": str(plan.study_dir),
            "manifest": str(manifest_path(plan.study_dir)), "cells": cells_out,
            "counts": counts, "complete": counts["done"] == len(cells_out),
            "engine_start_s": manifest["engine_start_s"], "report": report, "wall_s": wall_s,
            "budget": budget.of_study(plan.study_dir, manifest)}
