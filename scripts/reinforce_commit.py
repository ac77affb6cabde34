"""REINFORCE commitment check (docs/learner_study.md, "REINFORCE commits"): the real train loop
on the synthetic engine in three scenarios, for the current defaults or TrainConfig overrides.

    .venv/bin/python scripts/reinforce_commit.py needles --seeds 1-10       # 5 people at +20, 500k
    .venv/bin/python scripts/reinforce_commit.py field --seeds 0-4          # Philosophy +10, 50k
    .venv/bin/python scripts/reinforce_commit.py null --seeds 0-19          # nobody, 50k
    ... --set learning_rate=0.05 --set field_min_people=0                   # overrides

Prints one JSON line per seed and a summary line (the numbers of the doc's table).
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from prefixopt.engines import scenarios
from prefixopt import runs

from prefixopt.learn import simulate
from prefixopt.benchmarks import load_split
from prefixopt.config import TrainConfig
from prefixopt.people import load_people

SCENARIOS = {  # name -> (budget, how to plant)
    "needles": 500_000,  # 5 random people at +0.20 (drawn per seed, as `simulate` does)
    "field": 50_000,  # the 281 philosophers at +0.10 (the learner study's planted scenario)
    "null": 50_000,  # nobody better
}


def seeds(spec: str) -> list[int]:
    lo, _, hi = spec.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def override(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    return key, json.loads(value)


def one(cfg: TrainConfig, kind: str, people, questions) -> dict:
    if kind == "needles":
        sc = simulate.scenario_for(people, None, 5, 0.20, 0.5, cfg.seed)
    elif kind == "field":
        sc = scenarios.planted_field(people, "Philosophy", 0.10, 0.5)
    else:
        sc = scenarios.null(people, 0.5)
    with runs.temp_run_dir() as run_dir:
        out = simulate.simulate(cfg, sc, people, questions, budget=SCENARIOS[kind],
                                run_dir=run_dir)
        p = runs.final_probs(run_dir)  # (N,)
    top = int(p.argmax())
    return {"seed": cfg.seed, "planted_mass": out["planted_mass"],
            "top_prob": float(p[top]), "top_planted": bool(sc.planted[top]),
            "largest_field": out["largest_field"], "largest_field_mass": out["largest_field_mass"],
            "largest_field_ratio": out["largest_field_ratio"], "entropy": out["entropy"],
            "top_confidence": out.get("top_confidence")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("scenario", choices=list(SCENARIOS))
    ap.add_argument("--seeds", default="1-10")
    ap.add_argument("--set", dest="sets", action="append", type=override, default=[])
    args = ap.parse_args()
    people = load_people(None)
    base = dataclasses.replace(TrainConfig(), **dict(args.sets))
    questions = load_split(base.task.benchmark, None, purpose="train")
    rows = []
    for s in seeds(args.seeds):
        rows.append(one(dataclasses.replace(base, seed=s), args.scenario, people, questions))
        print(json.dumps(rows[-1]), flush=True)
    mass = np.array([r["planted_mass"] for r in rows])
    top = np.array([r["top_prob"] for r in rows])
    ratio = np.array([r["largest_field_ratio"] for r in rows])
    print(json.dumps({
        "scenario": args.scenario, "overrides": dict(args.sets), "seeds": args.seeds,
        "planted_top1": int(sum(r["top_planted"] for r in rows)), "n": len(rows),
        "planted_mass_median": float(np.median(mass)), "top_prob_max": float(top.max()),
        "top_prob_median": float(np.median(top)),
        "field_ratio_median": float(np.median(ratio)),
        "field_ratio_p90": float(np.percentile(ratio, 90)), "field_ratio_max": float(ratio.max()),
    }), flush=True)


if __name__ == "__main__":
    main()
