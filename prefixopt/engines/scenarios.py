"""Planted scenarios for the synthetic engine (`prefixopt simulate`, synthetic studies): a field
better by +delta, N random people, many small effects, or nobody. Each is an accuracy per person
(per benchmark where the planted set differs) and the mask of who is better.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prefixopt.errors import PrefixoptError


# --- scenarios --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scenario:
    name: str
    accuracy: np.ndarray  # (N,) planted accuracy per person row
    planted: np.ndarray  # (N,) bool: the people who are better (empty set for null)
    description: str
    by_benchmark: dict[str, Scenario] | None = None  # a different planted set per benchmark

    def engine_accuracy(self) -> np.ndarray | dict[str, np.ndarray]:
        """What the synthetic engine plants: (N,), or {benchmark: (N,)}."""
        if self.by_benchmark is None:
            return self.accuracy
        return {b: sc.accuracy for b, sc in self.by_benchmark.items()}

    def planted_for(self, benchmark: str) -> np.ndarray:
        """(N,) bool: who is better on this benchmark."""
        if self.by_benchmark is None:
            return self.planted
        sub = self.by_benchmark.get(benchmark)
        return sub.planted if sub is not None else np.zeros_like(self.planted)


def planted_fields(people, specs: list[str], benchmarks: tuple[str, ...], delta: float,
                   base_accuracy: float) -> Scenario:
    """`--planted-field FIELD` (every benchmark) or `BENCHMARK=FIELD` (repeatable, one per
    benchmark): a field planted at +delta, possibly a different one on each benchmark."""

    if len(specs) == 1 and "=" not in specs[0]:
        return planted_field(people, specs[0], delta, base_accuracy)
    per: dict[str, Scenario] = {}
    for spec in specs:
        bench, eq, field = spec.partition("=")
        if not eq or bench not in benchmarks or bench in per:
            raise PrefixoptError(f"--planted-field {spec!r}: give BENCHMARK=FIELD once per "
                                 f"benchmark of --benchmark ({', '.join(benchmarks)})")
        per[bench] = planted_field(people, field, delta, base_accuracy)
    union = np.any([sc.planted for sc in per.values()], axis=0)  # (N,)
    name = ",".join(f"{b}={sc.name}" for b, sc in per.items())
    text = "; ".join(f"{b}: {sc.description}" for b, sc in per.items())
    return Scenario(name, np.full(len(union), base_accuracy), union, text, per)


def planted_field(people, field: str, delta: float, base_accuracy: float) -> Scenario:
    """Everyone in `field` answers `delta` more often than the base accuracy."""
    if field not in people.fields:
        raise PrefixoptError(
            f"unknown field {field!r}; fields: {', '.join(sorted(people.fields))}"
        )
    mask = people.field_index == people.fields.index(field)
    acc = np.where(mask, base_accuracy + delta, base_accuracy)
    return Scenario(f"field:{field}", acc, mask,
                    f"{field} ({mask.sum()} people) at +{delta:g} over {base_accuracy:g}")


def planted_people(
    people, n: int, delta: float, base_accuracy: float, rng: np.random.Generator
) -> Scenario:
    """`n` people drawn at random answer `delta` more often than the base accuracy."""
    mask = np.zeros(len(people.person_id), dtype=bool)
    mask[rng.choice(len(mask), size=min(n, len(mask)), replace=False)] = True
    acc = np.where(mask, base_accuracy + delta, base_accuracy)
    return Scenario(f"people:{n}", acc, mask,
                    f"{n} random people at +{delta:g} over {base_accuracy:g}")


def small_effects(people, sd: float, base_accuracy: float, seed: int) -> Scenario:
    """Many small effects: every person's accuracy ~ N(base, sd), clipped to [0.01, 0.99], drawn
    from the seed (so eval rebuilds it); "planted" = the top 1% by accuracy."""
    rng = np.random.default_rng([seed, 2])  # apart from the run's rng and the planted set's
    acc = np.clip(base_accuracy + sd * rng.standard_normal(len(people.person_id)), 0.01, 0.99)
    mask = acc >= np.quantile(acc, 0.99)  # (N,)
    return Scenario(f"small:{sd:g}", acc, mask,
                    f"every person ~ N({base_accuracy:g}, {sd:g}); planted = the top 1%")


def null(people, base_accuracy: float) -> Scenario:
    """Nobody is better: every person answers at the base accuracy."""
    n = len(people.person_id)
    return Scenario("null", np.full(n, base_accuracy), np.zeros(n, dtype=bool),
                    f"no effect: everyone at {base_accuracy:g}")
