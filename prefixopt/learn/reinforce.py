"""REINFORCE as a learner of the training loop (learn/loop.py): the softmax policy over people
(policy.Policy) samples K people per iteration (per context, when contextual), one batch of B
questions they all answer (or one per person, --fresh-questions); the advantage is taken within
each benchmark's questions against the baseline (iteration.advantages), then one policy step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from prefixopt.config import TrainConfig
from prefixopt.learn import confidence
from prefixopt.learn.confidence import run_top_confidence
from prefixopt.learn.iteration import Group, QuestionPlan, advantages
from prefixopt.policy import Baseline, Policy

RANKING = "final policy probability"


class ReinforceLearner:
    """The policy, its baseline, the question plan and the iterations done."""

    name = "reinforce"
    ranking_text = RANKING
    wide_rows = True  # answers: completion, missing_letters; iterations: wall_s, host_s

    def __init__(self, cfg: TrainConfig, people, plan: QuestionPlan) -> None:
        self.cfg, self.people, self.plan = cfg, people, plan
        self.kind = confidence.kind_for(cfg.common_questions)
        self.policy = Policy(people.field_index, people.era_index, cfg.parameterization,
                             cfg.optimizer, cfg.learning_rate, cfg.entropy_coef,
                             n_contexts=len(plan.context_names),
                             group_min_people=cfg.group_min_people, logit_decay=cfg.logit_decay)
        self.baseline = Baseline(cfg.baseline, cfg.ema_decay, cfg.standardize, cfg.ema_init)
        self.done = 0  # iterations observed

    def meta(self) -> dict[str, Any]:
        return {**({"contexts": list(self.plan.context_names)} if self.plan.context else {})}

    @property
    def finished(self) -> bool:
        return self.done >= self.cfg.iterations

    def propose(self, rng: np.random.Generator) -> list[Group] | None:
        """K people from pi (per context present) and the questions each answers."""
        if self.finished:
            return None
        return self.plan.groups(self.policy, rng, self.cfg.samples_per_iteration,
                                self.cfg.common_questions)

    def observe(self, groups: list[Group], value: np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray, float, dict[str, Any], dict[str, float]]:
        """value (K*B,) in request order -> (reward (S,), advantage (S,), baseline value, extra
        samples columns, extra iteration stats); one REINFORCE step on the advantages."""
        K, S = self.cfg.samples_per_iteration, self.cfg.samples_per_iteration * len(groups)
        rewards, adv = np.zeros(S), np.zeros(S)  # (S,)
        per_bench = {b: np.full(S, np.nan) for b in self.plan.names}  # (S,) per benchmark
        base_values, at = [], 0
        for i, g in enumerate(groups):
            n = len(g.questions[0])  # questions per person in this group
            part = slice(i * K, (i + 1) * K)
            rewards[part], per, adv[part], v = advantages(
                value[at:at + K * n].reshape(K, n), [q.benchmark for q in g.questions[0]],
                self.baseline)
            for b, rb in per.items():
                per_bench[b][part] = rb
            base_values.append(v)
            at += K * n
        rows = np.concatenate([g.rows for g in groups])  # (S,)
        contexts = np.repeat([-1 if g.context is None else g.context for g in groups], K)
        self.policy.update(rows, adv, contexts=contexts if self.plan.context else None)
        self.done += 1
        several = len(self.plan.names) > 1
        cols = {**({"context": np.repeat([self.plan.context_name(g) or "" for g in groups], K)}
                   if self.plan.context else {}),
                **({f"reward_{b}": col for b, col in per_bench.items()} if several else {})}
        stats = {f"reward_{b}": float(np.nanmean(col)) for b, col in per_bench.items()} \
            if several else {}
        return rewards, adv, float(np.mean(base_values)), cols, stats

    def report(self, iteration: int) -> tuple[np.ndarray, int, float | None]:
        """(probs (N,) of the shared policy, its most probable row, no per-iteration confidence)."""
        probs = self.policy.probs()
        return probs, int(probs.argmax()), None

    def state(self) -> dict[str, Any]:
        contexts = range(len(self.plan.context_names))
        return {**self.policy.state(), **self.baseline.state(), "probs": self.policy.probs(),
                "logits": self.policy.logits(),
                **({"context_probs": np.stack([self.policy.probs(context=c) for c in contexts])}
                   if self.plan.context else {})}  # (C, N)

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.policy.load_state(state)
        self.baseline.load_state(state)
        self.done = int(state["iteration"]) + 1

    def snapshot(self) -> np.ndarray:
        return self.policy.logits()  # (N,)

    def summary(self, run_dir: Path, ckpt: dict[str, np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray, float | None, dict[str, Any]]:
        """(final probs (N,), the top 10 rows, P(the top person is the best of those tried)
        from the answers table (None before any iteration), no extra summary keys)."""
        final = self.policy.probs()
        order = np.argsort(-final)[:10]
        top_id = int(self.people.person_id[order[0]])
        conf = run_top_confidence(run_dir, top_id, self.cfg.seed) if ckpt else None
        return final, order, conf, {}
