"""The learner study of docs/learner_study.md (issue 12, item 2): reinforce, halving and ttts on
the synthetic engine, scenarios x budgets x seeds; per run P(top-1 planted), the planted share of
the top 10, simple regret, top_confidence with its kind, and under the null the held-out eval's
false-positive rate. Rows are appended to a JSONL file and done rows are skipped, so the study
runs in parts (subsets by --learners/--scenarios/--budgets/--seeds), on at most 2 processes.

    nice -n 10 .venv/bin/python scripts/learner_study.py --learners halving ttts --jobs 2
    .venv/bin/python scripts/learner_study.py --summarize        # the Markdown tables
    .venv/bin/python scripts/learner_study.py --settings         # today's REINFORCE settings

ttts's schedule does not depend on the budget (the budget only stops its loop), so one run per
seed is extended budget by budget (`resume` with more iterations: identical to separate runs, see
tests/test_learners.py). halving's schedule is budget-dependent: one run per budget. reinforce:
one run per budget unless --reinforce-extend (valid only while its schedule ignores the budget).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from prefixopt.engines import build
from prefixopt.engines import scenarios
from prefixopt import runs


from prefixopt.learn import learners, loop

from prefixopt.learn import simulate
from prefixopt.benchmarks import load_split
from prefixopt.config import TrainConfig
from prefixopt.engines.synthetic import SyntheticEngine
from prefixopt.people import load_people

D = TrainConfig()
BASE = 0.5
SCENARIOS = {  # name -> (kind, value, delta)
    "field": ("field", "Philosophy", 0.10),  # (a) today's: 281 philosophers at +10
    "needles20": ("people", 5, 0.20),  # (b) 5 random people at +20
    "needles10": ("people", 5, 0.10),  # (b) ... at +10
    "null": ("null", None, 0.0),  # (c)
    "small": ("small", 0.02, 0.0),  # (d) every person ~ N(0.5, 2 points)
}
BUDGETS = (50_000, 200_000, 500_000, 1_000_000)
STATE: dict = {}  # per worker process: people and questions, loaded once


def scenario(name: str, seed: int, people):
    kind, value, delta = SCENARIOS[name]
    if kind == "field":
        return scenarios.planted_field(people, value, delta, BASE)
    if kind == "people":
        return simulate.scenario_for(people, None, value, delta, BASE, seed)
    if kind == "small":
        return scenarios.small_effects(people, value, BASE, seed)
    return scenarios.null(people, BASE)


def init(people_path: str | None) -> None:
    STATE["people"] = load_people(people_path)
    STATE["questions"] = load_split(D.task.benchmark, None, purpose="train")


def measure(cfg, sc, run_dir: Path, summary: dict, budget: int, null_eval: bool) -> dict:
    p = runs.final_probs(run_dir)
    row = {"budget": budget, "evaluations": int(summary["evaluations"]),
           "planted_mass": float(p[sc.planted].sum()),
           **simulate.ranking_keys(cfg, sc, run_dir, summary)}
    if null_eval:  # held-out eval of the learned top 5 on the whole ARC-Easy test split
        from prefixopt.evaluate import heldout

        ecfg = heldout.config_for_run(run_dir, bootstrap_samples=1000, seed=cfg.seed,
                                       name=f"test_b{budget}", overwrite=True)
        res = heldout.evaluate(ecfg, run_dir, build.synthetic_engine_for_run(run_dir))
        learned = res.summary.filter(res.summary["prefix_kind"] == "learned")
        row["eval_learned_sig"] = bool(learned["significant"].any())
        row["eval_winner"] = bool((learned["significant"] & (learned["diff_vs_none"] > 0)).any())
    return row


def task(learner: str, scen: str, seed: int, budgets: list[int], extend: bool) -> list[dict]:
    """Every budget of one (learner, scenario, seed), ascending; rows with their seconds."""
    people, questions = STATE["people"], STATE["questions"]
    sc = scenario(scen, seed, people)
    base = dataclasses.replace(D, learner=learner, seed=seed)
    per_iter = base.samples_per_iteration * base.batch_size
    meta = simulate.scenario_meta(sc, people, BASE, 1.0, seed)
    out = []
    with runs.temp_run_dir() as tmp:
        for i, budget in enumerate(sorted(budgets)):
            t0 = time.perf_counter()
            cfg = dataclasses.replace(base, iterations=max(1, budget // per_iter))
            run_dir = tmp / ("run" if extend else f"b{budget}")
            engine = SyntheticEngine(people, sc.engine_accuracy(), BASE, 1.0, seed)
            summary = loop.train(cfg, engine, people, questions, run_dir,
                                     resume=extend and i > 0, extra_meta=meta)
            row = measure(cfg, sc, run_dir, summary, budget, scen == "null")
            out.append({"learner": learner, "scenario": scen, "seed": seed, **row,
                        "seconds": time.perf_counter() - t0, "extended": extend and i > 0})
    return out


def done_keys(path: Path) -> set[tuple]:
    if not path.is_file():
        return set()
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {(r["learner"], r["scenario"], r["seed"], r["budget"]) for r in rows}


def seeds_of(spec: str) -> list[int]:
    """"0-19" -> 0..19; "3,5" -> [3, 5]."""
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def run_grid(args) -> None:
    path = Path(args.out)
    done = done_keys(path)
    todo = []
    for learner in args.learners:
        extend = learner == "ttts" or (learner == "reinforce" and args.reinforce_extend)
        for scen in args.scenarios:
            for seed in seeds_of(args.seeds):
                left = [b for b in args.budgets if (learner, scen, seed, b) not in done]
                if left:  # an extended run redoes its smaller budgets (cheap next to the largest)
                    todo.append((learner, scen, seed,
                                 [b for b in args.budgets if b <= max(left)] if extend else left,
                                 extend))
    print(f"{len(todo)} tasks; appending to {path}", flush=True)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=min(args.jobs, 2), initializer=init,
                             initargs=(args.people,)) as pool:
        futures = [pool.submit(task, *t) for t in todo]
        for n, fut in enumerate(as_completed(futures), 1):
            rows = [r for r in fut.result()
                    if (r["learner"], r["scenario"], r["seed"], r["budget"]) not in done]
            with path.open("a") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in rows)
            r = rows[-1] if rows else {}
            print(f"[{n}/{len(todo)} {time.perf_counter() - t0:.0f} s] {r.get('learner')} "
                  f"{r.get('scenario')} seed {r.get('seed')}", flush=True)


def summarize(path: Path) -> None:
    """The Markdown table of a rows file. Unlike values get their own columns: the planted mass
    of REINFORCE's policy vs of halving/ttts's P(best); top_confidence per kind
    (confidence.KINDS: "paired" REINFORCE, "beta_posterior" halving/ttts; the study runs the
    defaults, so no "unpaired" rows: such rows show "-"). Bandit rows
    written before top_confidence_kind existed (their P(best) and top_confidence meant something
    else) keep their ranking columns and show "-" there, in rows of their own ("(old)")."""
    import polars as pl

    rows = pl.read_ndjson(path)
    for col, dtype in (("eval_winner", pl.Boolean), ("top_confidence_kind", pl.String)):
        if col not in rows.columns:
            rows = rows.with_columns(pl.lit(None, dtype).alias(col))
    # REINFORCE rows from before the kind were computed as "paired" is today (same fit)
    kind = pl.col("top_confidence_kind").fill_null(
        pl.when(pl.col("learner") == "reinforce").then(pl.lit("paired")).otherwise(pl.lit("old")))
    rows = rows.with_columns(kind=kind, policy=pl.col("learner") == "reinforce")
    new = pl.col("kind") != "old"

    def med(c: str, when: pl.Expr) -> pl.Expr:
        return pl.col(c).filter(when).median()

    table = (rows.group_by("learner", "scenario", "budget", new.alias("new"))
             .agg(seeds=pl.len(), p_top1=pl.col("top_planted").mean(),
                  top10=pl.col("planted_in_top10").mean(),
                  regret=(pl.col("simple_regret") * 100).mean(),
                  mass_policy=med("planted_mass", pl.col("policy")),
                  mass_pbest=med("planted_mass", ~pl.col("policy") & new),
                  paired=med("top_confidence", pl.col("kind") == "paired"),
                  beta=med("top_confidence", pl.col("kind") == "beta_posterior"),
                  fpr=pl.col("eval_winner").mean(), seconds=pl.col("seconds").mean())
             .sort("scenario", "budget", "learner", "new"))
    print("| scenario | budget | learner | seeds | P(top-1 planted) | planted share of top 10 "
          "| simple regret (points) | planted mass of the policy (reinforce), median "
          "| planted mass of P(best) (halving, ttts), median "
          "| top_confidence, paired (reinforce), median "
          "| top_confidence, beta_posterior (halving, ttts), median | null eval FPR | s/run |")
    print("| --- | ---: | --- |" + " ---: |" * 10)

    def fmt(v, f: str) -> str:
        return "-" if v is None else format(v, f)

    for r in table.iter_rows(named=True):
        print(f"| {r['scenario']} | {r['budget']:,} | {r['learner']}{'' if r['new'] else ' (old)'} "
              f"| {r['seeds']} | {fmt(r['p_top1'], '.2f')} | {fmt(r['top10'], '.2f')} "
              f"| {fmt(r['regret'], '.2f')} | {fmt(r['mass_policy'], '.3f')} "
              f"| {fmt(r['mass_pbest'], '.3f')} | {fmt(r['paired'], '.2f')} "
              f"| {fmt(r['beta'], '.2f')} | {fmt(r['fpr'], '.3f')} | {fmt(r['seconds'], '.0f')} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--learners", nargs="+", default=list(learners.LEARNERS),
                    choices=learners.LEARNERS)
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    ap.add_argument("--budgets", nargs="+", type=int, default=list(BUDGETS))
    ap.add_argument("--seeds", default="0-19", help="0-19, or 3,5,7")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (at most 2)")
    ap.add_argument("--out", default="learner_study_rows.jsonl", help="JSONL, appended to")
    ap.add_argument("--people", default=None, help="people CSV (default notable_people_10k.csv)")
    ap.add_argument("--reinforce-extend", action="store_true",
                    help="extend one reinforce run over the budgets (only if its schedule "
                         "does not depend on the budget)")
    ap.add_argument("--summarize", action="store_true", help="print the tables of --out")
    ap.add_argument("--settings", action="store_true",
                    help="today's REINFORCE settings table (scripts/learner_settings.py)")
    args = ap.parse_args()
    if args.settings:
        os.execv(sys.executable, [sys.executable,
                                     str(Path(__file__).with_name("learner_settings.py"))])
    if args.summarize:
        summarize(Path(args.out))
        return
    run_grid(args)


if __name__ == "__main__":
    main()
