"""The prefixes an evaluation compares: no prefix, the run's learned top-k, random people from
the pool, hand-written prompts (generic and the benchmark Task's domain-expert prompt) and
named people; and the people columns of an eval summary (field, era, final probability, the
training reward beside the held-out accuracy). Pure: tables and probabilities come in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from prefixopt.benchmarks import get_task
from prefixopt.config import EvalConfig
from prefixopt.errors import PrefixoptError
from prefixopt.records import NO_PERSON

KINDS = ("none", "learned", "random", "handwritten", "named")
GENERIC_PROMPT = "You are a helpful assistant."


@dataclass(frozen=True)
class Prefix:
    kind: str  # none | learned | random | handwritten | named
    label: str  # what the table shows: "(none)", a person's name, or the prompt text
    person_id: int  # NO_PERSON for none / hand-written prompts
    system: str | None  # the system message (None: no system message at all)
    row: int = -1  # the person's row in the people table (-1 for none / hand-written)
    # a contextual assignment: (person_id, system) per evaluated question, in question order
    assignment: tuple[tuple[int, str], ...] = ()


def build_prefixes(
    cfg: EvalConfig, people, probs: np.ndarray | None, rng: np.random.Generator,
    ranking: np.ndarray | None = None,
) -> list[Prefix]:
    """none, top-k learned (the learner's ranking, rows best first; else by final probability),
    R random people, hand-written, named."""
    from prefixopt.prompts import persona

    template = cfg.task.prefix_template

    def person(kind: str, row: int) -> Prefix:
        name = people.names[row]
        return Prefix(kind, name, int(people.person_id[row]), persona(template, name), row)

    out = [Prefix("none", "(none)", NO_PERSON, None)]
    if probs is not None and cfg.top_k > 0:
        order = np.argsort(-probs, kind="stable") if ranking is None else ranking
        top = order[: cfg.top_k]  # (k,) rows, best first
        out += [person("learned", int(r)) for r in top]
    if people is not None and cfg.num_random > 0:
        n = len(people.names)
        out += [person("random", int(r)) for r in rng.choice(n, min(cfg.num_random, n), False)]
    if cfg.handwritten:
        expert = get_task(cfg.task.benchmark).expert_prompt
        texts = [GENERIC_PROMPT, expert, *cfg.prompts]
        out += [Prefix("handwritten", t, NO_PERSON, t) for t in dict.fromkeys(texts)]
    for name in cfg.people_names:
        out.append(person("named", _find_person(people, name)))
    return out


def _find_person(people, name: str) -> int:
    lowered = [n.casefold() for n in people.names]
    if name.casefold() in lowered:
        return lowered.index(name.casefold())
    import difflib

    close = difflib.get_close_matches(name, people.names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; browse with `prefixopt people`"
    raise PrefixoptError(f"no person named {name!r} in the people table{hint}")


def people_columns(summary: pl.DataFrame, prefixes: list[Prefix], people, probs, train
                   ) -> pl.DataFrame:
    """name/field/era of person prefixes, final probability, and for learned people the
    training-time reward beside the held-out accuracy (the winner's-curse gap)."""
    def col(values):
        return [values(p) if p.row >= 0 and people is not None else None for p in prefixes]

    out = summary.with_columns(
        pl.Series("field", col(lambda p: people.fields[people.field_index[p.row]]), pl.String),
        pl.Series("era", col(lambda p: people.eras[people.era_index[p.row]]), pl.String),
        pl.Series("final_prob", [float(probs[p.row]) if probs is not None and p.row >= 0
                                 else None for p in prefixes], pl.Float64),
    )
    if train is None:
        return out.with_columns(train_reward=pl.lit(None, pl.Float64),
                                times_sampled=pl.lit(None, pl.Int64),
                                curse_gap=pl.lit(None, pl.Float64))
    return (
        out.join(train.select("person_id", "train_reward", "times_sampled"), on="person_id",
                 how="left")
        .with_columns(
            pl.when(pl.col("prefix_kind") == "learned").then(pl.col(c)).alias(c)
            for c in ("train_reward", "times_sampled"))
        .with_columns(curse_gap=pl.col("train_reward") - pl.col("accuracy"))
        .sort("prefix_index")
    )
