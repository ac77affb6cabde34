"""Does `prefixopt eval` fool its user? Null vs planted detection rates across seeds.

For each seed: train with `simulate` (the real train loop on the synthetic engine) under
--null and under a planted +delta field, then evaluate the run's top-k learned people against
no prefix, random people and hand-written prompts on held-out questions (several question
counts), with the same planted engine. Counts how often eval declares a Holm-significant
learned-vs-none difference. Results: docs/eval_study.md.

    .venv/bin/python scripts/eval_study.py --seeds 40 --questions 250 500 1000 2376
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import polars as pl

from prefixopt.engines import scenarios
from prefixopt import benchmarks, runs

from prefixopt.evaluate import heldout

from prefixopt.learn import simulate
from prefixopt.config import TrainConfig
from prefixopt.engines import synthetic
from prefixopt.people import load_people


def one_seed(args, people, train_qs, scenario_name: str, seed: int) -> list[dict]:
    if scenario_name == "null":
        scenario = scenarios.null(people, args.base)
    else:
        scenario = scenarios.planted_field(people, args.field, args.delta, args.base)
    cfg = TrainConfig(seed=seed, output_dir=str(args.out), run_name=f"{scenario_name}-{seed}")
    run_dir = runs.create_run_dir(args.out, cfg.run_name)
    sim = simulate.simulate(cfg, scenario, people, train_qs, budget=args.budget, run_dir=run_dir,
                             base_accuracy=args.base, difficulty_sd=args.difficulty_sd)
    # the same planted engine simulate trained against (same seed): held-out questions are new
    engine = synthetic.SyntheticEngine(people, scenario.accuracy, args.base, args.difficulty_sd,
                                       seed)
    out = []
    for n in args.questions:
        ecfg = heldout.config_for_run(run_dir, num_questions=None if n >= args.full else n,
                                       bootstrap_samples=args.bootstrap, seed=seed)
        res = heldout.evaluate(ecfg, run_dir, engine)
        s = res.summary
        learned = s.filter(pl.col("prefix_kind") == "learned")
        others = s.filter(pl.col("prefix_kind").is_in(["random", "handwritten"]))
        lvn = next(c for c in res.contrasts if c.name == "learned vs none")
        out.append({
            "scenario": scenario_name, "seed": seed, "questions": int(s["n"][0]),
            "planted_mass": sim["planted_mass"], "largest_field": sim["largest_field"],
            "learned_in_planted": int(np.isin(learned["person_id"].to_numpy(),
                                              people.person_id[scenario.planted]).sum()),
            "learned_sig": bool(learned["significant"].any()),
            "learned_sig_positive": bool((learned["significant"]
                                          & (learned["diff_vs_none"] > 0)).any()),
            "others_sig": bool(others["significant"].any()),
            "group_excludes_zero": lvn.excludes_zero,
            "group_diff": lvn.diff,
            "learned_mean_diff": float(learned["diff_vs_none"].mean()),
            "min_p_holm_learned": float(learned["p_holm"].min()),
        })
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="seeds are first-seed .. first-seed + seeds - 1 (to split the work)")
    ap.add_argument("--budget", type=int, default=50_000, help="question evaluations per run")
    ap.add_argument("--questions", type=int, nargs="+", default=[250, 500, 1000, 2376])
    ap.add_argument("--benchmark", default="arc_easy")
    ap.add_argument("--field", default="Science")
    ap.add_argument("--delta", type=float, default=0.10)
    ap.add_argument("--base", type=float, default=0.5)
    ap.add_argument("--difficulty-sd", type=float, default=1.0)
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path("runs/eval_study"))
    ap.add_argument("--scenarios", nargs="+", default=["null", "field"])
    ap.add_argument("--keep", action="store_true", help="keep the run directories")
    ap.add_argument("--from-logs", type=Path, nargs="+",
                    help="only tabulate the JSON rows printed by earlier (parallel) runs")
    args = ap.parse_args()
    if args.from_logs:
        rows = [json.loads(line) for f in args.from_logs for line in f.read_text().splitlines()
                if line.startswith('{"scenario"')]
        print(tabulate(rows))
        return

    people = load_people()
    train_qs = benchmarks.load_split(args.benchmark, None, purpose="train")
    args.full = len(benchmarks.load_split(args.benchmark, None, purpose="eval"))
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; remove it or pass another --out")
    t0 = time.perf_counter()
    rows = []
    for scenario_name in args.scenarios:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for row in one_seed(args, people, train_qs, scenario_name, seed):
                rows.append(row)
                print(json.dumps(row), flush=True)
    table = tabulate(rows)
    print(table)
    print(json.dumps({"elapsed_s": time.perf_counter() - t0, "table": table.to_dicts()},
                     indent=1))
    if not args.keep:
        shutil.rmtree(args.out)


def tabulate(rows: list[dict]) -> pl.DataFrame:
    """Rates per scenario and question count over the seeds."""
    pl.Config.set_tbl_cols(20)
    pl.Config.set_tbl_width_chars(250)
    return (
        pl.DataFrame(rows).group_by("scenario", "questions")
        .agg(seeds=pl.len(),
             any_sig_rate=(pl.col("learned_sig") | pl.col("others_sig")).mean(),
             learned_sig_rate=pl.col("learned_sig").mean(),
             learned_sig_positive_rate=pl.col("learned_sig_positive").mean(),
             others_sig_rate=pl.col("others_sig").mean(),
             group_ci_excludes_zero_rate=pl.col("group_excludes_zero").mean(),
             mean_learned_diff=pl.col("learned_mean_diff").mean(),
             mean_planted_mass=pl.col("planted_mass").mean(),
             learned_in_planted=pl.col("learned_in_planted").mean())
        .sort("scenario", "questions", descending=[True, False])
    )


if __name__ == "__main__":
    main()
