"""The prefixes an evaluation compares: no prefix, the run's learned top-k, random people from
the pool, hand-written prompts (generic and the benchmark Task's domain-expert prompt) and
named people. Pure: the people table and the final probabilities come in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


def build_prefixes(
    cfg: EvalConfig, people, probs: np.ndarray | None, rng: np.random.Generator
) -> list[Prefix]:
    """none, top-k learned (by final probability), R random people, hand-written, named."""
    from prefixopt.prompts import persona

    template = cfg.task.prefix_template

    def person(kind: str, row: int) -> Prefix:
        name = people.names[row]
        return Prefix(kind, name, int(people.person_id[row]), persona(template, name), row)

    out = [Prefix("none", "(none)", NO_PERSON, None)]
    if probs is not None and cfg.top_k > 0:
        top = np.argsort(-probs, kind="stable")[: cfg.top_k]  # (k,) rows, most probable first
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
