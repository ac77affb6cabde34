"""Held-out evaluation: the run's top-k learned people against no prefix, R random people and
hand-written prompts, all prefixes x questions scored in ONE engine call, then compared on the
same questions (Wilson CIs, paired bootstrap + exact McNemar vs no prefix, Holm across prefixes,
group contrasts, the winner's-curse gap). Tables go to eval/<name>.parquet via runs.write_eval.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from prefixopt import analysis, runs, stats
from prefixopt.config import EngineConfig, EvalConfig, TaskConfig, from_dict
from prefixopt.errors import PrefixoptError
from prefixopt.records import NO_PERSON, Question

KINDS = ("none", "learned", "random", "handwritten", "named")
GENERIC_PROMPT = "You are a helpful assistant."
EXPERT_PROMPTS = {  # one domain-expert prompt per benchmark
    "mmlu": "You are an expert with deep knowledge of every academic subject.",
    "gsm8k": "You are an expert mathematician.",
    "arc_easy": "You are an expert scientist.",
    "arc_challenge": "You are an expert scientist.",
    "hellaswag": "You are an expert in everyday situations and common sense.",
}


@dataclass(frozen=True)
class Prefix:
    kind: str  # none | learned | random | handwritten | named
    label: str  # what the table shows: "(none)", a person's name, or the prompt text
    person_id: int  # NO_PERSON for none / hand-written prompts
    system: str | None  # the system message (None: no system message at all)
    row: int = -1  # the person's row in the people table (-1 for none / hand-written)


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


def eval_name(split: str, num_questions: int | None, seed: int) -> str:
    """A file-name-safe, unambiguous token for an eval: 'validation[:50%]' ->
    'validation_start-50pct', 'validation[50%:]' -> 'validation_50pct-end'."""
    s = split.replace("%", "pct")
    m = re.fullmatch(r"(\w+)\[([^:\]]*):([^\]]*)\]", s)
    if m:
        s = f"{m[1]}_{m[2] or 'start'}-{m[3] or 'end'}"
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_") or "split"
    return s if num_questions is None else f"{s}_n{num_questions}_seed{seed}"


def config_for_run(run_dir: str | Path, **overrides: Any) -> EvalConfig:
    """An EvalConfig whose engine and task settings are the run's own (config.json)."""
    saved = runs.read_config(run_dir)["config"]
    engine = from_dict(EngineConfig, saved["engine"]) if "engine" in saved else EngineConfig()
    task = from_dict(TaskConfig, saved["task"]) if "task" in saved else TaskConfig()
    return replace(EvalConfig(engine=engine, task=task, people=saved.get("people")), **overrides)


def build_prefixes(
    cfg: EvalConfig, people, probs: np.ndarray | None, rng: np.random.Generator
) -> list[Prefix]:
    """none, top-k learned (by final probability), R random people, hand-written, named."""
    from prefixopt.prompts import persona

    template = cfg.task.prefix_template

    def person(kind: str, row: int) -> Prefix:
        name = people.names[row]
        return Prefix(kind, name, int(people.person_id[row]), persona(template, name), row)

    out = [Prefix("none", "(none)", NO_PERSON, None)]
    if probs is not None and cfg.top_k > 0:
        top = np.argsort(-probs, kind="stable")[: cfg.top_k]  # (k,) rows, most probable first
        out += [person("learned", int(r)) for r in top]
    if people is not None and cfg.num_random > 0:
        n = len(people.names)
        out += [person("random", int(r)) for r in rng.choice(n, min(cfg.num_random, n), False)]
    if cfg.handwritten:
        expert = EXPERT_PROMPTS.get(cfg.task.benchmark)
        texts = [GENERIC_PROMPT] + ([expert] if expert else []) + list(cfg.prompts)
        out += [Prefix("handwritten", t, NO_PERSON, t) for t in dict.fromkeys(texts)]
    for name in cfg.people_names:
        out.append(person("named", _find_person(people, name)))
    return out


def _find_person(people, name: str) -> int:
    lowered = [n.casefold() for n in people.names]
    if name.casefold() in lowered:
        return lowered.index(name.casefold())
    import difflib

    close = difflib.get_close_matches(name, people.names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; browse with `prefixopt people`"
    raise PrefixoptError(f"no person named {name!r} in the people table{hint}")


def check_overlap(run_dir: Path, questions: Sequence[Question], split: str, allow: bool) -> int:
    """Question ids the run trained on that are also in the eval split (refused unless allowed)."""
    try:
        seen = runs.scan(run_dir, "answers").select("question_id").unique().collect()
    except PrefixoptError:
        return 0  # no training answers (an eval-only directory): nothing to overlap with
    n = len(set(seen["question_id"].to_list()) & {q.question_id for q in questions})
    if n and not allow:
        raise PrefixoptError(
            f"eval split {split!r} shares {n} of its {len(questions)} questions with the "
            f"questions {run_dir} trained on, so it is not held out; choose another "
            "--eval-split or pass --allow-overlap"
        )
    return n


def correct_matrix(rows: pl.LazyFrame) -> tuple[pl.DataFrame, np.ndarray]:
    """The eval table as prefix info (P rows) and a (P, Q) correctness matrix whose columns are
    the same questions for every prefix (checked: the comparison is paired)."""
    meta = analysis.eval_prefixes(rows).collect()
    long = analysis.eval_long(rows).collect()
    p, q = len(meta), int(meta["questions"][0]) if len(meta) else 0
    paired = bool((meta["questions"] == q).all())
    qids = long["question_id"].to_numpy().reshape(p, q) if paired else None  # (P, Q)
    if not paired or not (qids == qids[:1]).all():
        raise PrefixoptError("eval rows are not paired: every prefix must answer the same questions")
    correct = long["correct"].to_numpy().reshape(p, q)  # (P, Q) bool
    return meta.drop("questions"), correct


def stats_rng(seed: int) -> np.random.Generator:
    """The bootstrap's Generator for an eval with this seed (eval and report share it)."""
    return np.random.default_rng([seed, 1])


def summarise(
    rows: pl.DataFrame, rng: np.random.Generator, num_samples: int
) -> tuple[pl.DataFrame, list[stats.Contrast]]:
    """Per-prefix accuracy + comparison with no prefix (Holm across prefixes), and the group
    contrasts. `rows` is the eval table; every prefix answered the same questions."""
    meta, correct = correct_matrix(rows.lazy())  # (P,) prefix info, (P, Q) bool
    kinds = meta["prefix_kind"].to_list()
    if "none" not in kinds:
        raise PrefixoptError("an evaluation needs the no-prefix baseline")
    none = correct[kinds.index("none")]  # (Q,)
    comps = [stats.compare_to_none(c, none, rng, num_samples) for c in correct]
    pvals = np.array([math.nan if k == "none" else c.p_value for k, c in zip(kinds, comps)])
    p_holm = stats.holm(pvals)  # across every prefix compared with none
    summary = meta.with_columns(
        pl.Series("n", [c.n for c in comps]),
        pl.Series("correct", [c.correct for c in comps]),
        pl.Series("accuracy", [c.accuracy for c in comps]),
        pl.Series("ci_low", [c.ci_low for c in comps]),
        pl.Series("ci_high", [c.ci_high for c in comps]),
        pl.Series("diff_vs_none", [c.diff for c in comps]),
        pl.Series("diff_low", [c.diff_low for c in comps]),
        pl.Series("diff_high", [c.diff_high for c in comps]),
        pl.Series("p_value", pvals),
        pl.Series("p_holm", p_holm),
        pl.Series("significant", np.nan_to_num(p_holm, nan=1.0) < stats.ALPHA),
    )
    return summary, contrasts(kinds, correct, rng, num_samples)


def contrasts(
    kinds: Sequence[str], correct: np.ndarray, rng: np.random.Generator, num_samples: int
) -> list[stats.Contrast]:
    """learned vs none / random / hand-written: difference of group mean accuracies (Q-paired)."""
    kinds_arr = np.asarray(kinds)
    group = {k: correct[kinds_arr == k] for k in ("learned", "none", "random", "handwritten")}
    out = []
    for a, b in (("learned", "none"), ("learned", "random"), ("learned", "handwritten"),
                 ("random", "none"), ("handwritten", "none")):
        if len(group[a]) and len(group[b]):
            out.append(stats.group_contrast(f"{a} vs {b}", group[a], group[b], rng, num_samples))
    return out


def evaluate(
    cfg: EvalConfig,
    run_dir: str | Path | None = None,
    engine=None,
    *,
    engine_factory: Callable[[], Any] | None = None,
) -> EvalResult:
    """Evaluate and write eval/<name>.parquet (+ _summary). With run_dir None (named people or
    baselines only) a new directory is created under cfg.output_dir. engine: an Engine; else
    engine_factory() builds one (timed separately), else the vLLM engine from cfg.engine."""
    from prefixopt import benchmarks, prompts, scoring

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    rng = np.random.default_rng(cfg.seed)  # the one Generator: question subsample, random people
    benchmark = cfg.task.benchmark
    split = cfg.eval_split or benchmarks.default_split(benchmark, "eval")
    questions = list(benchmarks.load_split(benchmark, split, data_dir=cfg.task.data_dir,
                                           purpose="eval"))
    name = cfg.name or eval_name(split, cfg.num_questions, cfg.seed)
    if name != eval_name(name, None, 0):
        raise PrefixoptError(f"--name {name!r}: use letters, digits, '_', '-', '.' only")
    overlap = 0
    if run_dir is not None:
        run_dir = Path(run_dir)
        if (run_dir / "eval" / f"{name}_summary.parquet").exists() and not cfg.overwrite:
            raise PrefixoptError(f"{run_dir}/eval/{name}.parquet exists; pass --name NEW to "
                                 "keep both, or --overwrite to replace it")
        overlap = check_overlap(run_dir, questions, split, cfg.allow_overlap)
    if cfg.num_questions is not None:
        if not 0 < cfg.num_questions <= len(questions):
            raise PrefixoptError(
                f"--num-questions must be between 1 and {len(questions)} (the size of {split})"
            )
        keep = np.sort(rng.choice(len(questions), cfg.num_questions, replace=False))
        questions = [questions[i] for i in keep]

    people, probs, train = None, None, None
    if run_dir is not None and (cfg.top_k > 0 or cfg.num_random > 0 or cfg.people_names):
        people = runs.run_people(run_dir)
        if cfg.top_k > 0:
            probs = runs.final_probs(run_dir)  # (N,) row-aligned with people
            train = analysis.person_train_rewards(runs.scan(run_dir, "samples")).collect()
    elif cfg.num_random > 0 or cfg.people_names:
        from prefixopt.people import load_people

        people = load_people(cfg.people)
    prefixes = build_prefixes(cfg, people, probs, rng)
    timings["load_s"] = time.perf_counter() - t0

    if engine is None:
        t = time.perf_counter()
        if engine_factory is not None:
            engine = engine_factory()
        else:
            from prefixopt.engine import build_engine

            engine = build_engine(cfg.engine)
        timings["engine_start_s"] = time.perf_counter() - t

    t = time.perf_counter()
    mode = scoring.resolve_scoring(benchmark, cfg.task.scoring)
    fewshot = ()
    if cfg.task.num_fewshot > 0:
        fewshot = prompts.fewshot_examples(benchmark, cfg.task.num_fewshot, cfg.seed,
                                           cfg.task.data_dir, [q.question_id for q in questions])
    requests = prompts.build_grid(engine, [(p.person_id, p.system) for p in prefixes], questions,
                                  scoring=mode, prompt_format=cfg.task.prompt_format,
                                  fewshot=fewshot)  # person-major: P blocks of Q requests
    timings["render_s"] = time.perf_counter() - t
    t = time.perf_counter()
    responses, answers = scoring.score(engine, requests, mode)  # ONE engine call, all prefixes
    timings["score_s"] = time.perf_counter() - t
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
        "person_id": [p.person_id for p in prefixes for _ in range(q)],
        "question_id": [x.question_id for _ in prefixes for x in questions],
        "correct": [a.correct for a in answers],
        "parsed": [a.parsed for a in answers],
        "pred": [a.pred for a in answers],
        "gold": [a.gold for a in answers],
        "margin": [a.margin for a in answers],
        "rule": [a.rule for a in answers],
    }, schema_overrides={"prefix_index": pl.Int64, "person_id": pl.Int64, "pred": pl.String})
    # the statistics get their own Generator derived from the seed, so that `report` can
    # recompute exactly the same intervals and contrasts from the saved tables
    summary, groups = summarise(rows, stats_rng(cfg.seed), cfg.bootstrap_samples)
    summary = _add_people_columns(summary, prefixes, people, probs, train)
    summary = summary.with_columns(acc_norm=pl.Series(
        [None if acc_norm is None else float(acc_norm[i]) for i in summary["prefix_index"]],
        dtype=pl.Float64))
    summary = summary.with_columns(bootstrap_seed=pl.lit(cfg.seed, pl.Int64),
                                   bootstrap_samples=pl.lit(cfg.bootstrap_samples, pl.Int64),
                                   split=pl.lit(split), benchmark=pl.lit(benchmark))
    timings["stats_s"] = time.perf_counter() - t

    if run_dir is None:
        run_dir = runs.create_run_dir(cfg.output_dir, cfg.run_name)
        runs.write_config(run_dir, cfg, {"kind": "eval"})
    runs.write_eval(run_dir, name, rows, summary)
    timings["wall_s"] = time.perf_counter() - t0
    return EvalResult(run_dir, name, split, benchmark, prefixes, rows, summary, groups,
                      timings, overlap)


def _add_people_columns(summary, prefixes, people, probs, train) -> pl.DataFrame:
    """name/field/era of person prefixes, final probability, and for learned people the
    training-time reward beside the held-out accuracy (the winner's-curse gap)."""
    def col(values):
        return [values(p) if p.row >= 0 and people is not None else None for p in prefixes]

    out = summary.with_columns(
        pl.Series("field", col(lambda p: people.fields[people.field_index[p.row]]), pl.String),
        pl.Series("era", col(lambda p: people.eras[people.era_index[p.row]]), pl.String),
        pl.Series("final_prob", [float(probs[p.row]) if probs is not None and p.row >= 0
                                 else None for p in prefixes], pl.Float64),
    )
    if train is None:
        return out.with_columns(train_reward=pl.lit(None, pl.Float64),
                                times_sampled=pl.lit(None, pl.Int64),
                                curse_gap=pl.lit(None, pl.Float64))
    return (
        out.join(train.select("person_id", "train_reward", "times_sampled"), on="person_id",
                 how="left")
        .with_columns(
            pl.when(pl.col("prefix_kind") == "learned").then(pl.col(c)).alias(c)
            for c in ("train_reward", "times_sampled"))
        .with_columns(curse_gap=pl.col("train_reward") - pl.col("accuracy"))
        .sort("prefix_index")
    )


def run(cfg: EvalConfig, run_dir: str | Path | None) -> EvalResult:
    """The command's entry point: pick the engine (vLLM from cfg.engine, or the synthetic
    engine a `simulate` run was trained against) and evaluate."""
    if cfg.engine_kind == "synthetic":
        if run_dir is None:
            raise PrefixoptError("--engine synthetic needs the RUN directory of a simulate run")
        return evaluate(cfg, run_dir, engine_factory=lambda: synthetic_engine_for_run(run_dir))
    if cfg.engine.model == "synthetic":
        raise PrefixoptError(f"{run_dir} was trained on the synthetic engine; pass --engine "
                             "synthetic, or --model MODEL to evaluate its people on a real model")
    return evaluate(cfg, run_dir)


def result_json(result: EvalResult) -> dict[str, Any]:
    return {
        "run_dir": str(result.run_dir),
        "eval": result.name,
        "split": result.split,
        "benchmark": result.benchmark,
        "num_questions": int(result.summary["n"][0]),
        "overlap": result.overlap,
        "prefixes": result.summary.drop("bootstrap_seed").to_dicts(),
        "contrasts": [
            {"name": c.name, "diff": c.diff, "low": c.low, "high": c.high,
             "excludes_zero": c.excludes_zero, "n_a": c.n_a, "n_b": c.n_b}
            for c in result.contrasts
        ],
        "any_learned_significant": bool(
            result.summary.filter(pl.col("prefix_kind") == "learned")["significant"].any()),
        "timings": result.timings,
    }


def synthetic_engine_for_run(run_dir: str | Path):
    """Rebuild the planted engine a `simulate` run trained against, from config.json's
    "synthetic" entry: base_accuracy, difficulty_sd, seed, delta, planted_person_ids."""
    from prefixopt.synthetic import SyntheticEngine

    meta = runs.read_config(run_dir)
    syn = meta.get("synthetic")
    if not syn:
        raise PrefixoptError(f"{run_dir} has no planted scenario in config.json (the "
                             "'synthetic' entry `prefixopt simulate` records); evaluate it with "
                             "--engine vllm")
    people = runs.run_people(run_dir)
    base = float(syn.get("base_accuracy", 0.5))
    planted = np.isin(people.person_id, np.asarray(syn.get("planted_person_ids", []), np.int64))
    accuracy = np.where(planted, base + float(syn.get("delta", 0.0)), base)  # (N,)
    return SyntheticEngine(people, accuracy, base, float(syn.get("difficulty_sd", 1.0)),
                           int(syn.get("seed", meta.get("config", {}).get("seed", 0))))
