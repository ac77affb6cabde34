"""Persona prefixes and the person-major K x B prompt grid. Chat format: persona = system
message, user = optional few-shot block + the question, through the model's own chat template
(engine.render_chat); a template without a system role (one that raises on it, Gemma style,
or drops it silently) gets the persona as the first paragraph of the user turn instead, so a
persona is never lost (`persona_placement`). Harness format: lm-evaluation-harness prompts
without a chat template (a persona, if any, is a first paragraph). Few-shot examples are a
`FewShot`: a block per group (MMLU: per subject; else one block for all questions). No I/O
beyond the loader.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prefixopt.benchmarks import get_task, load_split, text_hash
from prefixopt.config import PROMPT_FORMATS
from prefixopt.engines import Engine, probe_persona_placement
from prefixopt.errors import PrefixoptError
from prefixopt.records import Question, Request

_SENTINEL = "\x00PREFIXOPT-USER\x00"
PLACEMENTS = ("system", "user")


@dataclass(frozen=True)
class FewShot:
    """One benchmark's solved examples: group (Task.fewshot_group: MMLU's subject, else "") ->
    its examples in prompt order. Iterating gives every example once (config.json records
    their ids)."""

    benchmark: str
    groups: Mapping[str, tuple[Question, ...]] = field(default_factory=dict)

    def for_question(self, q: Question) -> tuple[Question, ...]:
        """The examples shown before `q` (none when there are no groups at all)."""
        if not self.groups:
            return ()
        group = get_task(q.benchmark).fewshot_group(q)
        if group not in self.groups:
            raise PrefixoptError(f"no {self.benchmark} few-shot examples for {group!r} (the "
                                 f"question {q.question_id}); use --num-fewshot 0")
        return self.groups[group]

    def __iter__(self) -> Iterator[Question]:
        return (q for shots in self.groups.values() for q in shots)

    def __len__(self) -> int:
        return sum(len(shots) for shots in self.groups.values())

    @property
    def ids(self) -> list[str]:
        return [q.question_id for q in self]


Shots = Sequence[Question] | FewShot  # one block for every question, or a FewShot


def persona_placement(engine: object) -> str:
    """Where this engine's chat template puts a persona, "system" or "user" (no system role:
    the persona opens the user turn): the engine's own `persona_placement`, computed once by
    the engine (engines.probe_persona_placement). An object that is only a renderer (a
    render_chat and nothing of the Engine protocol) is probed each time."""
    if isinstance(engine, Engine):
        return engine.persona_placement
    return probe_persona_placement(engine.render_chat)


def persona(template: str, name: str) -> str:
    """Fill `{name}` literally: braces, quotes or newlines in a name are never interpreted
    (no str.format, so a name like "{0.__class__}" stays text)."""
    if "{name}" not in template:
        raise PrefixoptError(f"--prefix-template {template!r} has no {{name}} placeholder")
    return template.replace("{name}", name)


class _ChatSplicer:
    """Render [system?, user] fast: the template is applied once per system prompt with a
    sentinel user message, giving (head, tail); a prompt is head + user + tail. Each user text
    is checked once against a full render (templates that trim content fall back to it)."""

    def __init__(self, engine: object):
        self.engine = engine
        self.parts: dict[str | None, tuple[str, str]] = {}
        self.verified: dict[str, bool] = {}
        # persona into the user turn? the engine knows; a bare renderer: from the first render
        # of a system message (no extra template call)
        self.fold = isinstance(engine, Engine) and engine.persona_placement == "user"

    def __call__(self, system: str | None, user: str) -> str:
        if system is not None and not self.fold and system not in self.parts:
            try:
                head, _, tail = self.engine.render_chat(system, _SENTINEL).partition(_SENTINEL)
                self.fold = system.strip() not in head  # rendered without it: dropped
            except Exception:  # noqa: BLE001 - a template that refuses a system role
                self.fold = True
            if not self.fold:
                self.parts[system] = (head, tail)
        if self.fold and system is not None:
            system, user = None, f"{system}\n\n{user}"
        if system not in self.parts:
            head, _, tail = self.engine.render_chat(system, _SENTINEL).partition(_SENTINEL)
            self.parts[system] = (head, tail)
        head, tail = self.parts[system]
        if user not in self.verified:
            self.verified[user] = self.engine.render_chat(system, user) == head + user + tail
        return head + user + tail if self.verified[user] else self.engine.render_chat(system, user)


def build_grid(
    engine: object,
    prefixes: Sequence[tuple[int, str | None]],
    questions: Sequence[Question],
    *,
    scoring: str | Mapping[str, str],
    prompt_format: str = "chat",
    fewshot: Shots | Mapping[str, Shots] = (),
) -> list[Request]:
    """K x B Requests, person-major: all B questions of prefix 0, then prefix 1, ...; so each
    person's head (system prompt, then its few-shot block) is shared by its B prompts in the
    cache (a per-subject block: by the questions of that subject). prefixes: (person_id or
    NO_PERSON, system text or None for no system message). Several benchmarks: `scoring` and
    `fewshot` map a benchmark to its own."""
    if prompt_format not in PROMPT_FORMATS:
        raise PrefixoptError(f"unknown prompt format {prompt_format!r}; "
                             f"valid: {', '.join(PROMPT_FORMATS)}")
    # per question, once: body text, continuations, letters
    tasks = [get_task(q.benchmark) for q in questions]  # (B,)
    modes = [scoring if isinstance(scoring, str) else scoring[q.benchmark] for q in questions]
    shots = [_shots(fewshot.get(q.benchmark, ()) if isinstance(fewshot, Mapping) else fewshot, q)
             for q in questions]  # (B,) each question's few-shot examples
    render = (lambda t, q, m, f: t.render_user(q, m, f)) if prompt_format == "chat" else (
        lambda t, q, m, f: t.render_harness(q, m, f))
    bodies = [render(t, q, m, f) for t, q, m, f in zip(tasks, questions, modes, shots,
                                                             strict=True)]  # (B,)
    splice = _ChatSplicer(engine) if prompt_format == "chat" else None
    conts = [t.continuations(q, prompt_format) if m == "cloze" else ()
             for t, q, m in zip(tasks, questions, modes, strict=True)]
    letters = [q.labels if m == "letter" else () for q, m in zip(questions, modes, strict=True)]
    requests = []
    for person_id, system in prefixes:  # person-major
        for q, body, cont, lets in zip(questions, bodies, conts, letters, strict=True):
            if splice is not None:
                prompt = splice(system, body)
            else:
                prompt = body if system is None else f"{system}\n\n{body}"
            requests.append(Request(prompt, person_id, q, cont, lets))
    return requests


def _shots(fewshot: Shots, q: Question) -> Sequence[Question]:
    return fewshot.for_question(q) if isinstance(fewshot, FewShot) else fewshot


def fewshot_examples(
    benchmark: str,
    k: int,
    seed: int,
    data_dir: str | Path | None = None,
    exclude_ids: Iterable[str] = (),
    exclude: Iterable[Question] = (),
) -> FewShot:
    """k solved examples per group from the benchmark's few-shot split. "random" sampler: drawn
    once with `seed` from the split minus the excluded questions (by id, and for `exclude` by
    normalised text too), one block for all questions. "first_n" (MMLU): the harness's first k
    examples of each subject, never skipped (the harness's examples are fixed): the caller
    drops a scored question equal to one of them instead."""
    task = get_task(benchmark)
    if k <= 0:
        return FewShot(benchmark)
    split = task.fewshot_split
    exclude = list(exclude)
    ids = set(exclude_ids) | {q.question_id for q in exclude}
    texts = {text_hash(q) for q in exclude}
    pool = list(load_split(benchmark, split, data_dir=data_dir))
    if task.fewshot_sampler == "random":
        pool = [q for q in pool if q.question_id not in ids and text_hash(q) not in texts]
    by_group: dict[str, list[Question]] = {}
    for q in pool:  # file order (MMLU: subjects alphabetical, rows in CSV order)
        by_group.setdefault(task.fewshot_group(q), []).append(q)
    rng = np.random.default_rng(seed)
    groups = {}
    for group, qs in (by_group or {"": []}).items():
        if len(qs) < k:
            raise PrefixoptError(
                f"--num-fewshot {k}: only {len(qs)} {benchmark} {split} "
                f"{group + ' ' if group else ''}examples are available"
                + (" that are not scored questions" if ids else ""))
        take = range(k) if task.fewshot_sampler == "first_n" else rng.choice(
            len(qs), size=k, replace=False)
        groups[group] = tuple(qs[i] for i in take)
    return FewShot(benchmark, groups)


def recorded_fewshot(benchmark: str, ids: Sequence[str],
                     data_dir: str | Path | None = None) -> FewShot:
    """The FewShot a run recorded (config.json "fewshot_ids"), rebuilt from its split."""
    task = get_task(benchmark)
    by_id = {q.question_id: q for q in load_split(benchmark, task.fewshot_split,
                                                  data_dir=data_dir)}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise PrefixoptError(f"the run's few-shot example {missing[0]} is not in {benchmark} "
                             f"{task.fewshot_split}; pass the --data-dir it was trained with")
    groups: dict[str, list[Question]] = {}
    for i in ids:
        groups.setdefault(task.fewshot_group(by_id[i]), []).append(by_id[i])
    return FewShot(benchmark, {g: tuple(qs) for g, qs in groups.items()})
