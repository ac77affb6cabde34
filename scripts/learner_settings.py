"""Regenerate the REINFORCE settings table (docs/learner_study.md): the real train loop on the
synthetic engine, for the defaults, a few alternatives and the seed's settings, on the same
scenarios, seeds and budget. Prints a Markdown table (and writes JSON rows with --out).

    .venv/bin/python scripts/learner_settings.py                  # the full table (~15 min)
    .venv/bin/python scripts/learner_settings.py --null-seeds 5 --planted-seeds 2   # quick look
    ... --set group_min_people=0 --set logit_decay=0   # every row on the defaults before the fix

Every row is TrainConfig's defaults (with --set overrides) plus the row's own overrides.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np

from prefixopt.engines import scenarios
from prefixopt import runs

from prefixopt.learn import simulate
from prefixopt.benchmarks import load_split
from prefixopt.config import TrainConfig
from prefixopt.people import load_people

D = TrainConfig()
SEED_STYLE = {"optimizer": "sgd", "learning_rate": 0.01, "baseline": "ema", "ema_init": 0.0,
                  "common_questions": False, "parameterization": "tabular",
                  "samples_per_iteration": 10, "batch_size": 50}
SETTINGS = {  # name -> TrainConfig overrides (besides these, TrainConfig's defaults)
    "defaults": {},
    "adam lr 0.1": {"learning_rate": 0.1},
    "adam lr 0.02": {"learning_rate": 0.02},
    "tabular": {"parameterization": "tabular"},
    "sgd lr 10": {"optimizer": "sgd", "learning_rate": 10.0},
    "ema baseline": {"baseline": "ema"},
    "standardized advantages": {"standardize": True},
    "fresh questions": {"common_questions": False},
    "K=32 B=16": {"samples_per_iteration": 32, "batch_size": 16},
    "K=8 B=64": {"samples_per_iteration": 8, "batch_size": 64},
    "seed (sgd 0.01, ema from 0, fresh, tabular, K=10 B=50)": SEED_STYLE,
}


def override(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    return key, json.loads(value)


def run_one(cfg, scenario, people, questions, budget: int) -> dict:
    with runs.temp_run_dir() as run_dir:
        out = simulate.simulate(cfg, scenario, people, questions, budget=budget,
                                 run_dir=run_dir)
    out.pop("history")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--people", default=None, help="people CSV (default notable_people_10k.csv)")
    ap.add_argument("--field", default="Philosophy", help="planted field (~3%% of the pool)")
    ap.add_argument("--delta", type=float, default=0.10)
    ap.add_argument("--base-accuracy", type=float, default=0.5)
    ap.add_argument("--budget", type=int, default=50_000)
    ap.add_argument("--planted-seeds", type=int, default=5)
    ap.add_argument("--null-seeds", type=int, default=20)
    ap.add_argument("--only", nargs="*", help="setting names to run (default: all)")
    ap.add_argument("--out", default=None, help="write all rows as JSON here")
    ap.add_argument("--set", dest="sets", action="append", default=[], type=override,
                    help="KEY=JSON: a TrainConfig field for every row (e.g. logit_decay=0)")
    args = ap.parse_args()

    people = load_people(args.people)
    questions = load_split(D.task.benchmark, None, purpose="train")
    planted = scenarios.planted_field(people, args.field, args.delta, args.base_accuracy)
    null = scenarios.null(people, args.base_accuracy)
    rows, table = [], []
    for name, overrides in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        t0 = time.perf_counter()
        base = dataclasses.replace(D, people=args.people, **{**dict(args.sets), **overrides})
        p_mass, n_ratio, p_ratio = [], [], []
        for seed in range(args.planted_seeds):
            r = run_one(dataclasses.replace(base, seed=seed), planted, people, questions,
                        args.budget)
            p_mass.append(r["planted_mass"])
            p_ratio.append(r["planted_mass_ratio"])
            rows.append({"setting": name, "seed": seed, **r})
        for seed in range(args.null_seeds):
            r = run_one(dataclasses.replace(base, seed=seed), null, people, questions,
                        args.budget)
            n_ratio.append(r["largest_field_ratio"])
            rows.append({"setting": name, "seed": seed, **r})
        pm, nr = np.array(p_mass), np.array(n_ratio)
        table.append(
            f"| {name} | {np.median(pm):.3f} ({pm.min():.3f}-{pm.max():.3f}) "
            f"| {np.median(p_ratio):.1f}x | {np.median(nr):.1f}x | {np.percentile(nr, 90):.1f}x "
            f"| {nr.max():.1f}x | {time.perf_counter() - t0:.0f} s |"
        )
        print(table[-1], flush=True)
    print()
    print(f"planted: {planted.description}, pool share {planted.planted.mean():.4f}; "
          f"budget {args.budget:,} evaluations; {args.planted_seeds} planted seeds, "
          f"{args.null_seeds} null seeds; --set {dict(args.sets) or 'none'}")
    print("| setting | planted-field mass, median (min-max) | mass / pool share | "
          "null: largest field mass / share, median | null p90 | null max | time |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(table))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(rows, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
