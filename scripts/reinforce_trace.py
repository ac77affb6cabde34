"""Where REINFORCE's mass goes, iteration by iteration (docs/learner_study.md, "REINFORCE
commits"): the 5-needle scenario (+0.20, 500k evaluations) of one seed, printing per checkpoint
the entropy, the top person's probability and its logit split into person / field / era terms,
the largest field, how many of its members were ever sampled, and the mean step of the sampled
people's terms.

    .venv/bin/python scripts/reinforce_trace.py 3                          # today's defaults
    .venv/bin/python scripts/reinforce_trace.py 3 --set group_min_people=0 --set logit_decay=0
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from prefixopt import runs

from prefixopt.learn import simulate
from prefixopt.learn import reinforce as train_module
from prefixopt.benchmarks import load_split
from prefixopt.config import TrainConfig
from prefixopt.people import load_people
from prefixopt.policy import Policy, entropy

SHOW = {1, 10, 50, 100, 200, 300, 400, 500, 600, 700, 800, 900, 976}


def traced(people, planted: np.ndarray) -> type[Policy]:
    class Traced(Policy):
        """The run's Policy, printing its state after the steps in SHOW."""

        def update(self, actions, adv, contexts=None):
            if not hasattr(self, "seen"):
                self.seen = np.zeros(self.n, np.int64)  # (N,) times each person was sampled
            before = self.params.copy()
            np.add.at(self.seen, actions, 1)
            grad = super().update(actions, adv, contexts)
            if self.step_count in SHOW:
                n, f = self.n, self.n_fields
                p = self.probs()  # (N,)
                top = int(p.argmax())
                fm = np.bincount(self.field_index, weights=p, minlength=f)  # (F,)
                big = int(fm.argmax())
                members = self.field_index == big
                print(f"it {self.step_count:4d}  H {entropy(p):5.2f}  top {p[top]:.3f} "
                      f"{'planted' if planted[top] else 'unplanted'} (sampled {self.seen[top]}) "
                      f"person {self.params[top]:5.2f} "
                      f"field {self.params[n + self.field_index[top]]:5.2f} "
                      f"era {self.params[n + f + self.era_index[top]]:5.2f}  | field "
                      f"{people.fields[big]} ({members.sum()}) mass {fm[big]:.3f}, "
                      f"{(self.seen[members] > 0).sum()} members sampled | mean step of the "
                      f"sampled {np.abs(self.params - before)[np.unique(actions)].mean():.3f}",
                      flush=True)
            return grad

    return Traced


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("seed", type=int)
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    help="a TrainConfig override, key=JSON value")
    args = ap.parse_args()
    import json

    overrides = {k: json.loads(v) for k, _, v in (s.partition("=") for s in args.sets)}
    cfg = dataclasses.replace(TrainConfig(), seed=args.seed, **overrides)
    people = load_people(None)
    scenario = simulate.scenario_for(people, None, 5, 0.20, 0.5, args.seed)
    train_module.Policy = traced(people, scenario.planted)  # ReinforceLearner builds it
    questions = load_split(cfg.task.benchmark, None, purpose="train")
    with runs.temp_run_dir() as run_dir:
        out = simulate.simulate(cfg, scenario, people, questions, budget=500_000,
                                run_dir=run_dir)
    print(f"top_confidence {out.get('top_confidence')}")


if __name__ == "__main__":
    main()
