"""Learner studies on the synthetic engine (`prefixopt simulate`): planted scenarios (a field,
N random people, many small effects, or nothing), the real learner (--learner) run against them,
and what it ended with (mass on the planted set, ranks, the largest field over its pool share; the
top-ranked person: planted?, simple regret). The scenario is recorded in config.json so eval and
resume rebuild the very same engine.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from prefixopt.learn.job import prepare_train
from prefixopt import runs
from prefixopt.engines import build
from prefixopt.learn.loop import train
from prefixopt.policy import entropy
from prefixopt.learn.iteration import benchmark_names
from prefixopt.runs import final_probs
from prefixopt.engines.scenarios import (Scenario, null, planted_fields, planted_people,
                                         small_effects)


# --- the study driver behind `prefixopt simulate` ---------------------------------------------
def simulate(
    cfg,  # TrainConfig; iterations are replaced by budget // (K * B)
    scenario: Scenario,
    people,
    questions,
    *,
    budget: int,
    fewshot=(),  # prompts.FewShot of the job (prepare_train), recorded for eval
    run_dir,
    base_accuracy: float = 0.5,
    difficulty_sd: float = 1.0,
    progress=None,
) -> dict:
    """Run the real train loop on planted accuracies; report mass on the planted set over time,
    its rank statistics, entropy, and the largest field's mass over its pool share."""
    import dataclasses


    per_iter = cfg.samples_per_iteration * cfg.batch_size
    cfg = dataclasses.replace(cfg, iterations=max(1, budget // per_iter))
    engine = build.synthetic_engine(people, scenario, base_accuracy, difficulty_sd, cfg.seed)
    n_fields = len(people.fields)
    field_share = np.bincount(people.field_index, minlength=n_fields) / len(people.field_index)
    pool_share = float(scenario.planted.mean())
    history = []

    def record(stats: dict) -> None:
        p = stats["probs"]  # (N,)
        field_mass = np.bincount(people.field_index, weights=p, minlength=n_fields)
        ratio = field_mass / np.maximum(field_share, 1e-12)
        history.append({
            "iteration": stats["iteration"], "evaluations": stats["evaluations"],
            "planted_mass": float(p[scenario.planted].sum()), "entropy": stats["entropy"],
            "mean_reward": stats["mean_reward"],
            "largest_field_ratio": float(ratio.max()),
        })
        if progress is not None:
            progress(stats)

    meta = scenario_meta(scenario, people, base_accuracy, difficulty_sd, cfg.seed)
    if len(fewshot):  # eval reuses exactly these examples, as after `prefixopt train`
        meta["fewshot_ids"] = {fewshot.benchmark: fewshot.ids}
    summary = train(cfg, engine, people, questions, run_dir, progress=record, fewshot=fewshot,
                    extra_meta=meta)
    p = _final_probs(run_dir)  # (N,) the policy at the last checkpoint
    ranks = np.empty(len(p), dtype=np.int64)
    ranks[np.argsort(-p, kind="stable")] = np.arange(1, len(p) + 1)  # 1 = most probable
    field_mass = np.bincount(people.field_index, weights=p, minlength=n_fields)
    ratio = field_mass / np.maximum(field_share, 1e-12)
    top_field = int(ratio.argmax())
    planted_ranks = ranks[scenario.planted]
    return {
        "scenario": scenario.name, "description": scenario.description,
        "planted_mass": float(p[scenario.planted].sum()), "pool_share": pool_share,
        "planted_mass_ratio": float(p[scenario.planted].sum() / pool_share) if pool_share else None,
        "planted_median_rank": float(np.median(planted_ranks)) if len(planted_ranks) else None,
        "planted_in_top100": int((planted_ranks <= 100).sum()),
        "entropy": float(entropy(p)), "max_entropy": float(np.log(len(p))),
        "evaluations": int(summary["evaluations"]), "iterations": cfg.iterations,
        "largest_field": people.fields[top_field],
        "largest_field_mass": float(field_mass[top_field]),
        "largest_field_ratio": float(ratio[top_field]),
        "host_s_mean": summary["host_s_mean"], "run_dir": summary["run_dir"],
        "top": summary["top"][:5], "history": history,
        **by_context(cfg, scenario, run_dir, p),
        **ranking_keys(cfg, scenario, run_dir, summary),
    }


def ranking_keys(cfg, scenario: Scenario, run_dir, summary: dict) -> dict:
    """What the learner ranked first (halving/ttts: their ranking; reinforce: its policy):
    top_planted (the top-1 person is planted), planted_in_top10 (the planted SHARE of the top
    10, a float in [0, 1]), simple_regret (best planted accuracy minus the top-1 person's),
    top_confidence: the posterior probability that the top-1 has the largest effect among the
    people the run tried, one quantity for all three learners (confidence.py, from the answers
    table; None only for a run with no finished iteration), and top_confidence_kind: "paired"
    (shared questions) or "unpaired" (--fresh-questions; confidence.KINDS)."""
    ranking = runs.final_ranking(run_dir)  # (N,) rows best first
    acc = scenario.accuracy  # (N,) planted accuracy per row
    top = int(ranking[0])
    return {"learner": cfg.learner, "ranking": runs.read_config(run_dir).get("ranking"),
            "top_planted": bool(scenario.planted[top]),
            "planted_in_top10": float(scenario.planted[ranking[:10]].mean()),
            "simple_regret": float(acc.max() - acc[top]),
            "top_confidence": summary.get("top_confidence"),
            "top_confidence_kind": summary.get("top_confidence_kind")}


def by_context(cfg, scenario: Scenario, run_dir, shared: np.ndarray) -> dict:
    """Per benchmark of the run: the mass its policy (its own context's, for --context
    benchmark; else the shared one) puts on that benchmark's planted people, and their share
    of the pool."""

    names = benchmark_names(cfg.task)
    probs = {b: shared for b in names}
    if cfg.context == "benchmark":
        ckpt = runs.load_checkpoint(run_dir)
        contexts = runs.read_config(run_dir)["contexts"]
        probs = {b: ckpt["context_probs"][contexts.index(b)] for b in names}
    return {"planted_mass_by_context": {b: float(probs[b][scenario.planted_for(b)].sum())
                                        for b in names},
            "pool_share_by_context": {b: float(scenario.planted_for(b).mean()) for b in names}}


def scenario_meta(scenario: Scenario, people, base_accuracy: float, difficulty_sd: float,
                  seed: int) -> dict:
    """The config.json entry ("synthetic") from which `prefixopt eval RUN --engine synthetic`
    and `train --resume` rebuild the very engine the run trained against
    (build.synthetic_engine_for_run reads it)."""
    planted = scenario.planted
    small = scenario.name.startswith("small:")
    tables = ([scenario.accuracy] if scenario.by_benchmark is None
              else [sc.accuracy for sc in scenario.by_benchmark.values()])
    delta = float(max(a.max() for a in tables) - base_accuracy) if planted.any() and not small \
        else 0.0
    return {"synthetic": {
        **({"small_effects_sd": float(scenario.name.removeprefix("small:"))} if small else {}),
        "scenario": scenario.name, "description": scenario.description,
        "base_accuracy": float(base_accuracy), "difficulty_sd": float(difficulty_sd),
        "seed": int(seed), "delta": delta,
        "planted_person_ids": [int(x) for x in np.asarray(people.person_id)[planted]],
        **({"planted_person_ids_by_benchmark": {
            b: [int(x) for x in np.asarray(people.person_id)[sc.planted]]
            for b, sc in scenario.by_benchmark.items()}} if scenario.by_benchmark else {}),
    }}


def _final_probs(run_dir) -> np.ndarray:
    return final_probs(run_dir)


def scenario_for(people, fields: list[str] | None, n_people: int | None, delta: float,
                 base_accuracy: float, seed: int, benchmarks: tuple[str, ...] = (),
                 small_sd: float | None = None) -> Scenario:
    """The scenario the options describe (one of field(s), N people, small effects, or null)."""
    if small_sd is not None:
        return small_effects(people, small_sd, base_accuracy, seed)
    if fields:
        return planted_fields(people, fields, benchmarks, delta, base_accuracy)
    if n_people is not None:
        rng = np.random.default_rng([seed, 1])  # the planted set, apart from the run's rng
        return planted_people(people, n_people, delta, base_accuracy, rng)
    return null(people, base_accuracy)


def run(cfg, *, planted_field: list[str] | None, planted_people: int | None, delta: float,
        base_accuracy: float, difficulty_sd: float, budget: int, out: Path | None,
        progress=None, small_effects: float | None = None) -> dict:
    """`prefixopt simulate`: check and load (prepare_train, no engine to build), plant the
    scenario, train in `out` (a new run directory) or a temporary one, summarise."""

    job = prepare_train(cfg, create=False)

    scenario = scenario_for(job.people, planted_field, planted_people, delta, base_accuracy,
                            cfg.seed, benchmark_names(cfg.task), small_effects)
    with contextlib.ExitStack() as stack:
        if out is None:
            run_dir = stack.enter_context(runs.temp_run_dir())
        else:
            run_dir = runs.create_run_dir(out.parent, out.name)
        return simulate(cfg, scenario, job.people, job.questions, budget=budget,
                        fewshot=job.fewshot,
                        run_dir=run_dir, base_accuracy=base_accuracy,
                        difficulty_sd=difficulty_sd, progress=progress)
