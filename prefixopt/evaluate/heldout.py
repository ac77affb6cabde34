"""Held-out evaluation: the run's top-k learned people against no prefix, R random people,
hand-written prompts and k neutral paraphrases, all prefixes x questions in ONE engine call, then
compared on the same questions (Wilson CIs, paired bootstrap + exact McNemar vs no prefix, Holm,
group contrasts, the winner's-curse gap, the oracle null and the router). Tables go to
eval/<name>.parquet via runs.write_eval.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from prefixopt.engines import build
from prefixopt.engines import score_cache
from prefixopt.evaluate import compare, oracle
from prefixopt import analysis, budget, runs, stats
from prefixopt.evaluate import leakage
from prefixopt.evaluate import robustness
from prefixopt.benchmarks import get_task
from prefixopt.config import EngineConfig, EvalConfig, TaskConfig, from_dict
from prefixopt.errors import PrefixoptError
from prefixopt.evaluate.prefixes import (Prefix, baseline_requests, build_prefixes, people_columns,
                                take_baseline, training_baseline)
from prefixopt.ask.prompts import FewShot
from prefixopt.records import Question
from prefixopt import benchmarks
from prefixopt.ask import scoring
from prefixopt.benchmarks import BENCHMARKS
from prefixopt.config import PROMPT_FORMATS
from prefixopt.ask.prompts import persona
from prefixopt.people import load_people
from prefixopt.evaluate import contextual
from prefixopt.ask import prompts


@dataclass
class EvalResult:
    run_dir: Path
    name: str  # eval/<name>.parquet
    split: str
    benchmark: str
    prefixes: list[Prefix]
    rows: pl.DataFrame  # one row per prefix x question
    summary: pl.DataFrame  # one row per prefix
    contrasts: list[stats.Contrast]
    timings: dict[str, float] = field(default_factory=dict)
    overlap: int = 0  # eval questions the run also trained on (only with allow_overlap)
    contexts: pl.DataFrame | None = None  # a contextual run: one row per context
    persona_placement: str = "system"  # system | user (no system role) | paragraph (harness)
    ceilings: dict[str, Any] = field(default_factory=dict)  # robustness.oracle_ceilings
    ensemble: dict[str, Any] | None = None  # robustness.ensemble: top person + no prefix
    held_out: dict[str, Any] = field(default_factory=dict)  # EvalInputs.held_out
    oracle_null: dict[str, Any] | None = None  # oracle.oracle_null: k paraphrases' ceiling
    router: dict[str, Any] | None = None  # oracle.router: most confident of none + top-k
    # the engine was a ScoreCache: {"hits", "misses"} of the eval's one call, else None
    score_cache: dict[str, int] | None = None


def eval_name(split: str, num_questions: int | None, seed: int) -> str:
    """The eval's table name: the split's slug (runs.split_slug), plus '_n<N>_seed<S>' for a
    subsample: 'validation[50%:]' -> 'validation_50pct-end', ('test', 100, 3) ->
    'test_n100_seed3'."""
    s = runs.split_slug(split)
    return s if num_questions is None else f"{s}_n{num_questions}_seed{seed}"


def config_for_run(run_dir: str | Path, **overrides: Any) -> EvalConfig:
    """An EvalConfig whose engine and task settings are the run's own (config.json)."""
    saved = runs.read_config(run_dir)["config"]
    engine = from_dict(EngineConfig, saved["engine"]) if "engine" in saved else EngineConfig()
    task = from_dict(TaskConfig, saved["task"]) if "task" in saved else TaskConfig()
    return replace(EvalConfig(engine=engine, task=task, people=saved.get("people")), **overrides)


@dataclass
class EvalInputs:
    """Everything an evaluation needs that does not depend on the run's learned policy: all of
    it is checked before an engine starts."""

    cfg: EvalConfig
    split: str
    name: str  # eval/<name>.parquet
    mode: str  # letter | cloze | generate
    questions: list[Question]  # held out: duplicates and training/few-shot twins left out
    fewshot: FewShot
    rng: np.random.Generator  # after the question subsample; random people are drawn next
    overlap: int = 0
    held_out: dict[str, Any] = field(default_factory=dict)  # what was left out, the few-shot


def eval_inputs(cfg: EvalConfig, run_dir: str | Path | None,
                side: leakage.TrainSide | None = None, flag: str = "--allow-overlap"
                ) -> EvalInputs:
    """Check the options and load the held-out questions (no engine): scoring vs benchmark,
    the split and --num-questions, the table name and an existing eval of that name, what is
    not held out (leakage.held_out against `side`, else the run's training side), the few-shot
    examples (the run's own when it recorded them)."""

    validate(cfg)
    rng = np.random.default_rng(cfg.seed)  # the one Generator: question subsample, random people
    benchmark = cfg.task.benchmark
    mode = scoring.resolve_scoring(benchmark, cfg.task.scoring)
    split = cfg.eval_split or benchmarks.default_split(benchmark, "eval")
    questions = list(benchmarks.load_split(benchmark, split, data_dir=cfg.task.data_dir,
                                           purpose="eval"))
    name = cfg.name or eval_name(split, cfg.num_questions, cfg.seed)
    if name != runs.split_slug(name):
        raise PrefixoptError(f"--name {name!r}: use letters, digits, '_', '-', '.' only")
    if run_dir is not None:
        run_dir = Path(run_dir)
        if runs.eval_path(run_dir, name, "_summary").exists() and not cfg.overwrite:
            raise PrefixoptError(f"{run_dir}/eval/{name}.parquet exists; pass --name NEW to "
                                 "keep both, or --overwrite to replace it")
        side = side or leakage.run_side(run_dir, cfg)
    side = side or leakage.TrainSide()
    fewshot, source = leakage.eval_fewshot(cfg, side)
    held = leakage.held_out(cfg, split, questions, side, fewshot, flag)
    questions = held.questions
    if cfg.num_questions is not None:
        if not 0 < cfg.num_questions <= len(questions):
            raise PrefixoptError(
                f"--num-questions must be between 1 and {len(questions)} (the held-out "
                f"questions of {split})")
        keep = np.sort(rng.choice(len(questions), cfg.num_questions, replace=False))
        questions = [questions[i] for i in keep]
    fewshot = fewshot if fewshot is not None else leakage.draw_fewshot(cfg, questions)
    held.counts.update(fewshot_source=source, fewshot_ids=fewshot.ids)
    return EvalInputs(cfg, split, name, mode, questions, fewshot, rng, held.counts["overlap"],
                      held.counts)


def validate(cfg: EvalConfig) -> None:
    """One-line errors for option values an evaluation cannot use."""

    checks = (
        (cfg.task.benchmark in BENCHMARKS,
         f"--benchmark {cfg.task.benchmark!r} is not one of: {', '.join(BENCHMARKS)}"),
        (cfg.task.prompt_format in PROMPT_FORMATS,
         f"--prompt-format must be chat or harness (got {cfg.task.prompt_format!r})"),
        (cfg.num_questions is None or cfg.num_questions >= 1,
         f"--num-questions must be >= 1 (got {cfg.num_questions})"),
        (cfg.top_k >= 0 and cfg.num_random >= 0, "--top-k and --num-random must be >= 0"),
        (cfg.bootstrap_samples >= 1,
         f"--bootstrap-samples must be >= 1 (got {cfg.bootstrap_samples})"),
        (cfg.task.num_fewshot >= 0, f"--num-fewshot must be >= 0 (got {cfg.task.num_fewshot})"),
    )
    for ok, message in checks:
        if not ok:
            raise PrefixoptError(message)
    persona(cfg.task.prefix_template, "A. Person")  # a template without {name} is one line


def eval_prefixes(cfg: EvalConfig, run_dir: str | Path | None, rng: np.random.Generator,
                  questions: Sequence[Question] = ()):
    """(prefixes, people, final probs, training rewards): the run's learned top-k, random and
    named people, hand-written prompts, and for a contextual run the contextual assignment of
    `questions`. Needs the run's final checkpoint when top_k > 0."""
    people, probs, train, ranking = None, None, None, None
    if run_dir is not None and (cfg.top_k > 0 or cfg.num_random > 0 or cfg.people_names):
        people = runs.run_people(run_dir)
        if cfg.top_k > 0:
            probs = runs.final_probs(run_dir)  # (N,) row-aligned with people
            ranking = runs.final_ranking(run_dir)  # (N,) rows best first (halving/ttts: theirs)
            train = analysis.person_train_rewards(runs.scan(run_dir, "samples")).collect()
    elif cfg.num_random > 0 or cfg.people_names:
        people = load_people(cfg.people)
    prefixes = build_prefixes(cfg, people, probs, rng, ranking)
    train = training_baseline(run_dir, cfg, prefixes, train)  # + no prefix's training questions
    if probs is not None and questions:
        found = contextual.assignment(run_dir, questions, people, cfg.task.prefix_template)
        prefixes += [found[0]] if found else []
    return prefixes, people, probs, train


def evaluate(cfg: EvalConfig, run_dir: str | Path | None = None, engine=None) -> EvalResult:
    """Evaluate and write eval/<name>.parquet (+ _summary). With run_dir None (named people or
    baselines only) a new directory is created under cfg.output_dir. engine: an Engine, else
    the one cfg.engine describes (engines.build.make_engine), built after every check has passed."""
    t0 = time.perf_counter()
    inputs = eval_inputs(cfg, run_dir)
    prefixes = eval_prefixes(cfg, run_dir, inputs.rng, inputs.questions)
    timings = {"load_s": time.perf_counter() - t0}
    if engine is None:
        engine, timings["engine_start_s"] = build.make_engine(cfg.engine, run_dir=run_dir)
    return score_prefixes(inputs, prefixes, run_dir, engine, timings)


def score_prefixes(inputs: EvalInputs, prefixes_etc, run_dir: str | Path | None, engine,
                   timings: dict[str, float]) -> EvalResult:
    """All prefixes x questions in ONE engine call, the statistics, the tables written."""

    t = time.perf_counter()
    prefixes_etc, requests = build_requests(inputs, prefixes_etc, engine)
    timings["render_s"] = time.perf_counter() - t
    t = time.perf_counter()
    responses, answers = scoring.score(engine, requests, inputs.mode)  # ONE engine call
    timings["score_s"] = time.perf_counter() - t
    result = finish(inputs, prefixes_etc, requests, responses, answers, run_dir, engine, timings)
    result.score_cache = score_cache.counts(engine, responses)  # None without a cache
    return result


def build_requests(inputs: EvalInputs, prefixes_etc, engine) -> tuple[tuple, list]:
    """The person-major P x Q requests (a contextual assignment last, one person per question);
    returns prefixes_etc with the prefixes in that order, and the requests."""

    prefixes, people, probs, train = prefixes_etc
    fixed = [p for p in prefixes if not p.assignment]  # prefix_kind order: fixed ones first
    prefixes = fixed + [p for p in prefixes if p.assignment]
    cfg, questions = inputs.cfg, inputs.questions
    render = {"scoring": inputs.mode, "prompt_format": cfg.task.prompt_format,
              "fewshot": inputs.fewshot}
    requests = prompts.build_grid(engine, [(p.person_id, p.system) for p in fixed], questions,
                                  **render)  # person-major: P blocks of Q requests
    for p in prefixes[len(fixed):]:  # a contextual assignment: its own person per question
        requests += [prompts.build_grid(engine, [head], [x], **render)[0]
                     for head, x in zip(p.assignment, questions, strict=True)]
    extra, train = baseline_requests(train, engine, inputs.fewshot)  # winner's-curse baseline
    return (prefixes, people, probs, train), requests + extra  # ... goes last


def finish(inputs: EvalInputs, prefixes_etc, requests, responses, answers,
           run_dir: str | Path | None, engine, timings: dict[str, float]) -> EvalResult:
    """Judged answers -> the eval table, its statistics, the files written."""

    placement = (prompts.persona_placement(engine) if inputs.cfg.task.prompt_format == "chat"
                 else "paragraph")
    t0 = time.perf_counter()
    cfg, mode, questions = inputs.cfg, inputs.mode, inputs.questions
    prefixes, people, probs, train = prefixes_etc
    work = responses  # every response of the call, the winner's-curse baseline's too (budget)
    requests, responses, answers, train = take_baseline(train, requests, responses, answers)
    acc_norm = None  # cloze: the harness's acc_norm (log-likelihood per character), per prefix
    if mode == "cloze":
        norm = [scoring.cloze_norm_pred(r, o) == r.question.gold
                for r, o in zip(requests, responses, strict=True)]
        acc_norm = np.asarray(norm, float).reshape(len(prefixes), -1).mean(axis=1)  # (P,)

    t = time.perf_counter()
    q = len(questions)
    rows = pl.DataFrame({
        "prefix_index": np.repeat(np.arange(len(prefixes)), q),
        "prefix_kind": [p.kind for p in prefixes for _ in range(q)],
        "prefix": [p.label for p in prefixes for _ in range(q)],
        "person_id": [pid for p in prefixes for pid in (
            [a[0] for a in p.assignment] if p.assignment else [p.person_id] * q)],
        "question_id": [x.question_id for _ in prefixes for x in questions],
        "correct": [a.correct for a in answers],
        "parsed": [a.parsed for a in answers],
        "pred": [a.pred for a in answers],
        "gold": [a.gold for a in answers],
        "margin": [a.margin for a in answers],
        "rule": [a.rule for a in answers],
        "confidence": [a.confidence for a in answers],
        # questions that share a subject / passage (the Task's context): clustered intervals
        "cluster": [get_task(x.benchmark).context(x) for _ in prefixes for x in questions],
        # a chat API's letters that were not in its top list (scored -inf): how much was unseen
        **({"missing_letters": [r.missing_letters for r in responses]}
           if engine.api == "chat" else {}),
    }, schema_overrides={"prefix_index": pl.Int64, "person_id": pl.Int64, "pred": pl.String,
                         "cluster": pl.String})
    # the statistics get their own Generator derived from the seed, so that `report` can
    # recompute exactly the same intervals and contrasts from the saved tables
    summary, groups = compare.summarise(rows, stats.stats_rng(cfg.seed), cfg.bootstrap_samples)
    summary = people_columns(summary, prefixes, people, probs, train)
    summary = summary.with_columns(acc_norm=pl.Series(
        [None if acc_norm is None else float(acc_norm[i]) for i in summary["prefix_index"]],
        dtype=pl.Float64))
    summary = summary.with_columns(bootstrap_seed=pl.lit(cfg.seed, pl.Int64),
                                   bootstrap_samples=pl.lit(cfg.bootstrap_samples, pl.Int64),
                                   split=pl.lit(inputs.split), benchmark=pl.lit(cfg.task.benchmark))
    held = inputs.held_out  # what is not held out was left out: how many, and the few-shot
    summary = summary.with_columns(
        *(pl.lit(held.get(k, 0), pl.Int64).alias(f"dropped_{k}")
          for k in ("eval_duplicates", "train_duplicates", "fewshot_duplicates")),
        fewshot_source=pl.lit(held.get("fewshot_source", "none"), pl.String))
    meta, correct = stats.correct_matrix(rows.lazy())  # (P,), (P, Q)
    ceilings = robustness.oracle_ceilings(meta["prefix_kind"].to_numpy(), correct)
    ensemble = robustness.ensemble(rows, stats.stats_rng(cfg.seed + 1), cfg.bootstrap_samples)
    null, routed = oracle.from_rows(rows, cfg.seed, cfg.bootstrap_samples)  # seeds + 2, + 3
    timings["stats_s"] = time.perf_counter() - t

    if run_dir is None:
        run_dir = runs.create_run_dir(cfg.output_dir, cfg.run_name)
        runs.write_config(run_dir, cfg, {"kind": "eval", "versions": engine.info(),
                                         "persona_placement": placement})
    spent = sum(timings.get(k, 0.0) for k in ("load_s", "render_s", "score_s"))
    runs.record_eval(run_dir, inputs.name, {"split": inputs.split, **held,
                                            "num_questions": len(questions),
                                            "dtype": engine.info().get("dtype"),  # may differ
                                            "budget": budget.from_responses(
                                                work, spent + time.perf_counter() - t0)})
    runs.write_eval(run_dir, inputs.name, rows, summary)
    contexts = None
    if any(p.assignment for p in prefixes):
        labels = contextual.context_labels(run_dir, questions)
        contexts = contextual.per_context(rows, labels, questions, stats.stats_rng(cfg.seed),
                                          cfg.bootstrap_samples)
        runs.write_parquet(runs.eval_path(run_dir, inputs.name, "_contexts"), contexts)
    timings["wall_s"] = timings.get("load_s", 0.0) + timings.get("engine_start_s", 0.0) + (
        time.perf_counter() - t0)
    return EvalResult(Path(run_dir), inputs.name, inputs.split, cfg.task.benchmark, prefixes,
                      rows, summary, groups, timings, inputs.overlap, contexts, placement,
                      ceilings, ensemble, held, null, routed)
