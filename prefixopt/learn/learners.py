"""The `Learner` protocol the training loop (learn/loop.py) drives, behind `--learner`:
reinforce (reinforce.py, the softmax policy), halving (halving.py, batched sequential halving),
ttts (ttts.py, top-two Thompson sampling); `BanditLearner` adapts the last two ("probs" = P(best),
"ranking" = the learner's order). Every summary and config.json carry `top_confidence_kind`
(confidence.KINDS: REINFORCE "paired" / "unpaired"; halving and ttts "beta_posterior").
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from prefixopt.config import TrainConfig
from prefixopt.errors import PrefixoptError
from prefixopt.learn import confidence
from prefixopt.learn.halving import SequentialHalving
from prefixopt.learn.iteration import Group, QuestionPlan, benchmark_names
from prefixopt.learn.reinforce import RANKING as REINFORCE_RANKING
from prefixopt.learn.reinforce import ReinforceLearner
from prefixopt.learn.ttts import TopTwoThompson
from prefixopt.records import Question

LEARNERS = ("reinforce", "halving", "ttts")
BANDIT_KIND = "beta_posterior"  # halving's and ttts's top_confidence (confidence.KINDS)
__all__ = ["LEARNERS", "BANDIT_KIND", "REINFORCE_RANKING", "Learner", "BanditLearner"]


class Learner(Protocol):
    """What the training loop asks of a learner, once per iteration: propose -> (the loop asks
    the engine) -> observe -> report; state / load_state / snapshot for the checkpoint."""

    name: str  # --learner
    ranking_text: str  # config.json "ranking": how its final order is made
    kind: str  # its top_confidence_kind (confidence.KINDS)
    # answers rows with completion / missing_letters, iterations rows with wall_s / host_s
    # (reinforce); halving and ttts keep their narrower tables, so an older run resumes onto
    # parts of one schema
    wide_rows: bool

    @property
    def finished(self) -> bool: ...  # its budget is spent

    def meta(self) -> dict[str, Any]: ...  # its own config.json entries

    def propose(self, rng: np.random.Generator) -> list[Group] | None:
        """Who answers what this iteration (None: done)."""

    def observe(self, groups: list[Group], value: np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray, float, dict[str, Any], dict[str, float]]:
        """The rewards (K*B,) in request order -> (reward (S,), advantage (S,), baseline,
        extra samples columns, extra iteration stats)."""

    def report(self, iteration: int) -> tuple[np.ndarray, int, float | None]:
        """(probs (N,), the top person's row, top_confidence or None) after observe."""

    def state(self) -> dict[str, Any]: ...

    def load_state(self, state: dict[str, np.ndarray]) -> None: ...

    def snapshot(self) -> np.ndarray: ...  # (N,) logits for checkpoints/theta_NNNNNN.npy

    def summary(self, run_dir: Path, ckpt: dict[str, np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray, float | None, dict[str, Any]]:
        """(final probs (N,), top rows best first, top_confidence, extra summary keys)."""


def validate(cfg: TrainConfig) -> None:
    """What the bandit learners need: Bernoulli rewards on one benchmark, shared questions."""
    if cfg.learner not in LEARNERS:
        raise PrefixoptError(f"--learner {cfg.learner!r} is not one of: {', '.join(LEARNERS)}")
    if cfg.learner == "reinforce":
        return

    flag = f"--learner {cfg.learner}"
    if len(benchmark_names(cfg.task)) > 1 or cfg.context is not None:
        raise PrefixoptError(f"{flag} learns over one benchmark without --context")
    if cfg.reward != "accuracy":
        raise PrefixoptError(f"{flag} keeps Beta posteriors of accuracy: use --reward accuracy")
    if not cfg.common_questions:
        raise PrefixoptError(f"{flag} asks everyone of a call the same questions: drop "
                             "--fresh-questions")


def confidence_meta(kind: str) -> dict[str, str]:
    """config.json's entries saying what the run's top_confidence is."""
    return {"top_confidence_kind": kind, "top_confidence_meaning": confidence.KINDS[kind]}


def make_learner(cfg: TrainConfig, people, num_questions: int, rng: np.random.Generator):
    """The bandit learner of cfg (its budget: iterations x K x B evaluations)."""
    k, b = cfg.samples_per_iteration, cfg.batch_size
    if cfg.learner == "halving":
        return SequentialHalving(people.field_index, people.era_index, k, b,
                                 cfg.iterations * k * b, num_questions, rng)

    return TopTwoThompson(people.field_index, people.era_index, k, b, cfg.iterations)


def build(cfg: TrainConfig, people, plan: QuestionPlan, questions: Sequence[Question],
          rng: np.random.Generator) -> Learner:
    """cfg.learner on the run's people and questions (halving draws its pool from rng)."""
    if cfg.learner == "reinforce":
        return ReinforceLearner(cfg, people, plan)
    return BanditLearner(make_learner(cfg, people, len(questions), rng), questions, cfg)


def confidence_rng(seed: int, iteration: int) -> np.random.Generator:
    """Apart from the run's generator, so measuring P(best) never changes the run."""
    return np.random.default_rng([seed, 7, iteration])


def restored_probs(state: dict[str, np.ndarray], learner, seed: int, n: int
                   ) -> tuple[np.ndarray, float]:
    """(probs (N,), top_confidence) to continue from: the checkpoint's, measured again when it
    predates BANDIT_KIND (its halving probs were a final-round bootstrap, its ttts ones left
    all but 256 people out)."""
    if not state:
        return np.zeros(n), 0.0
    if str(state.get("top_confidence_kind", "")) == BANDIT_KIND:
        return np.asarray(state["probs"], float), float(state["top_confidence"])
    probs = learner.best_probs(confidence_rng(seed, int(state["iteration"])))
    return probs, float(probs[learner.ranking()[0]])


class BanditLearner:
    """halving or ttts as a Learner: every person of a call answers the same questions; probs
    = P(best) under its Beta posteriors, measured when it has news (and at the end)."""

    kind = BANDIT_KIND
    wide_rows = False

    def __init__(self, inner, questions: Sequence[Question], cfg: TrainConfig) -> None:
        self.inner, self.questions, self.cfg = inner, list(questions), cfg
        self.name, self.ranking_text = inner.name, inner.ranking_text
        self.probs, self.conf = restored_probs({}, inner, cfg.seed, len(inner.groups[0]))
        self.ranking = np.zeros(0, dtype=np.int64)  # (N,) after the first observe
        self.qidx = np.zeros(0, dtype=np.int64)  # (T,) the questions proposed last

    def meta(self) -> dict[str, Any]:
        return {}

    @property
    def finished(self) -> bool:
        return self.inner.finished

    def propose(self, rng: np.random.Generator) -> list[Group] | None:
        """(S,) people rows who all answer the same (T,) questions."""
        batch = self.inner.propose(rng, len(self.questions))
        if batch is None:
            return None
        rows, self.qidx = batch
        asked = [self.questions[i] for i in self.qidx]
        return [Group(None, rows, self.probs, [asked] * len(rows))]

    def observe(self, groups: list[Group], value: np.ndarray, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray, float, dict[str, Any], dict[str, float]]:
        """reward = the person's accuracy on this call's questions; advantage = reward minus the
        call's mean (the paired comparison)."""
        rows = groups[0].rows  # (S,)
        grid = value.reshape(len(rows), len(self.qidx))  # (S, T) person-major
        self.inner.observe(rows, self.qidx, grid, rng)
        rewards = grid.mean(axis=1)  # (S,)
        return rewards, rewards - rewards.mean(), float(rewards.mean()), {}, self.inner.stats()

    def report(self, iteration: int) -> tuple[np.ndarray, int, float | None]:
        self.ranking = self.inner.ranking()  # (N,)
        if self.finished or self.inner.news(iteration, self.cfg.checkpoint_every):
            self.probs = self.inner.best_probs(confidence_rng(self.cfg.seed, iteration))
            self.conf = float(self.probs[self.ranking[0]])  # the top-ranked person's P(best)
        return self.probs, int(self.ranking[0]), self.conf

    def state(self) -> dict[str, Any]:
        return {**self.inner.state(), "probs": self.probs, "ranking": self.ranking,
                "top_confidence": np.asarray(self.conf), "top_confidence_kind": BANDIT_KIND,
                "finished": np.asarray(self.finished)}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        self.inner.load_state(state)
        self.probs, self.conf = restored_probs(state, self.inner, self.cfg.seed, len(self.probs))

    def snapshot(self) -> np.ndarray:
        return np.log(np.maximum(self.probs, 1e-12))  # (N,)

    def summary(self, run_dir: Path, ckpt: dict[str, np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray, float | None, dict[str, Any]]:
        """P(best) measured again for a checkpoint made before BANDIT_KIND (restored_probs)."""
        probs, conf = restored_probs(ckpt, self.inner, self.cfg.seed, len(self.probs))
        extra = {"learner": self.name, "ranking": self.ranking_text,
                 "finished": bool(ckpt.get("finished", False))}
        return probs, self.inner.ranking()[:10], conf if ckpt else None, extra
