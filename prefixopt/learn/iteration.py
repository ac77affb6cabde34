"""What one training iteration asks, and how it is rewarded, for one benchmark or several and
an optional context (`benchmark`, or `subject`: the Task's context hook). The B questions are
drawn stratified by benchmark weight; people are sampled once (no context) or once per context
present among the questions; a person's advantage is computed within each benchmark's questions
and averaged, so an easy benchmark does not dominate. Pure numpy apart from the Task lookup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from prefixopt.config import TaskConfig
from prefixopt.errors import PrefixoptError
from prefixopt.records import Question
from prefixopt.benchmarks import get_task

CONTEXTS = ("benchmark", "subject")
NO_CONTEXT = "-"  # the subject of a question whose Task has none (ARC, GSM8K)


def benchmark_names(task: TaskConfig) -> tuple[str, ...]:
    """The run's benchmarks, parsed once (TaskConfig.benchmarks: "mmlu,gsm8k" -> ("mmlu",
    "gsm8k"), order kept, duplicates dropped); an empty list is refused."""
    names = task.benchmarks
    if not names:
        raise PrefixoptError("--benchmark is empty; name one benchmark or several: mmlu,gsm8k")
    return names


def stratify(total: int, weights: Sequence[float]) -> list[int]:
    """Split `total` questions by weight (largest remainder), at least one each."""
    w = np.asarray(weights, float)  # (M,)
    if len(w) > total:
        raise PrefixoptError(f"--batch-size {total} is smaller than the number of benchmarks "
                             f"({len(w)}); raise it")
    raw = (total - len(w)) * w / w.sum()  # one question each is set aside first
    counts = np.floor(raw).astype(int)
    counts[np.argsort(-(raw - counts), kind="stable")[: total - len(w) - counts.sum()]] += 1
    return [int(c) + 1 for c in counts]


@dataclass
class Group:
    """People who answer the same questions: K rows sampled from pi(. | context)."""

    context: int | None  # index into QuestionPlan.context_names; None without contexts
    rows: np.ndarray  # (K,) people-table rows
    probs: np.ndarray  # (N,) the policy they were sampled from
    questions: list[list[Question]]  # per person (the same list K times with common questions)


class QuestionPlan:
    """The training questions of a run, by benchmark and context."""

    def __init__(self, questions: Sequence[Question], names: Sequence[str], batch: int,
                 weights: Sequence[float] = (), context: str | None = None) -> None:
        self.names = tuple(names)  # (M,)
        self.pools: dict[str, list[Question]] = {b: [] for b in self.names}
        for q in questions:
            self.pools[q.benchmark].append(q)
        if weights and len(weights) != len(self.names):
            raise PrefixoptError(f"--benchmark-weights has {len(weights)} values for "
                                 f"{len(self.names)} benchmarks")
        self.counts = dict(zip(self.names, stratify(batch, weights or [1.0] * len(self.names)),
                               strict=True))
        if context not in (None, *CONTEXTS):
            raise PrefixoptError(f"--context {context!r} is not one of: {', '.join(CONTEXTS)}")
        self.context = context
        labels = {q.question_id: context_label(context, q) for q in questions} if context else {}
        self.context_names = tuple(sorted(set(labels.values()))) if context else ()
        index = {name: i for i, name in enumerate(self.context_names)}
        self._context = {qid: index[label] for qid, label in labels.items()}

    def draw(self, rng: np.random.Generator) -> list[Question]:
        """One batch: counts[b] questions from each benchmark's pool, without replacement."""
        out: list[Question] = []
        for b in self.names:
            pool = self.pools[b]
            out += [pool[i] for i in rng.choice(len(pool), size=self.counts[b], replace=False)]
        return out

    def groups(self, policy, rng: np.random.Generator, k: int, common: bool) -> list[Group]:
        """Who answers what this iteration. No context: K people first, then one batch (or,
        seed-style, one batch per person). Contexts: the batch first, then K people from
        pi(. | c) for every context c among its questions."""
        if not self.context:
            probs = policy.probs()  # (N,)
            rows = policy.sample(rng, k, probs)  # (K,)
            batches = [self.draw(rng) for _ in range(1 if common else k)]
            return [Group(None, rows, probs, batches * k if common else batches)]
        batch = self.draw(rng)
        out = []
        for c in sorted({self._context[q.question_id] for q in batch}):
            probs = policy.probs(context=c)  # (N,)
            qs = [q for q in batch if self._context[q.question_id] == c]
            out.append(Group(c, policy.sample(rng, k, probs), probs, [qs] * k))
        return out

    def context_name(self, group: Group) -> str | None:
        return None if group.context is None else self.context_names[group.context]


def context_label(kind: str, q: Question) -> str:
    """A question's context: its benchmark, or its Task's subject (NO_CONTEXT when none)."""

    if kind == "benchmark":
        return q.benchmark
    return get_task(q.benchmark).context(q) or NO_CONTEXT


def advantages(scores: np.ndarray, benchmarks: Sequence[str], baseline
               ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, float]:
    """scores (K, Q) for K people on the same Q questions (or each on their own Q, seed-style),
    benchmarks (Q,). Returns (reward (K,) = mean over benchmarks of the per-benchmark mean,
    per-benchmark rewards {b: (K,)}, advantage (K,) = mean over benchmarks of the baseline's
    advantage within b, the baseline's value averaged over benchmarks)."""
    cols = np.asarray(benchmarks)
    per = {b: scores[:, cols == b].mean(axis=1) for b in dict.fromkeys(benchmarks)}  # {b: (K,)}
    advs, values = zip(*(baseline(r) for r in per.values()), strict=True)
    reward = np.mean(list(per.values()), axis=0)  # (K,)
    return reward, per, np.mean(advs, axis=0), float(np.mean(values))


def check_finite(values: np.ndarray, person_ids: np.ndarray, questions: Sequence[Question],
                 reward: str) -> None:
    """Every reward of the iteration is a finite number, else ONE line naming the first answer
    that broke it (values, person_ids (K*B,) in request order). A chat API's missing letter
    scores -inf and would turn the whole policy into NaN at the update."""
    bad = np.flatnonzero(~np.isfinite(np.asarray(values, dtype=float)))
    if bad.size:
        i = int(bad[0])
        raise PrefixoptError(
            f"--reward {reward}: the answer of person {int(person_ids[i])} to question "
            f"{questions[i].question_id} scored {float(values[i])} ({bad.size} non-finite of "
            f"{len(values)} this iteration), so the policy cannot be updated; use --reward "
            "accuracy, or an engine that returns every choice's log-prob")
