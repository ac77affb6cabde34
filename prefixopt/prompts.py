"""Persona prefixes and the person-major K x B prompt grid. Chat format: persona = system
message, user = optional few-shot block + the question, through the model's own chat template
(engine.render_chat); a template without a system role (one that raises on it, Gemma style,
or drops it silently) gets the persona as the first paragraph of the user turn instead, so a
persona is never lost (`persona_placement`). Harness format: lm-evaluation-harness prompts
without a chat template (a persona, if any, is a first paragraph). No I/O beyond the loader.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from prefixopt.benchmarks import get_task
from prefixopt.config import PROMPT_FORMATS
from prefixopt.errors import PrefixoptError
from prefixopt.records import Question, Request

_SENTINEL = "\x00PREFIXOPT-USER\x00"
_PERSONA_SENTINEL = "PREFIXOPT-PERSONA-CHECK-7F3A"
PLACEMENTS = ("system", "user")


def persona_placement(engine: object) -> str:
    """Where this engine's chat template puts a persona: "system" when a sentinel system message
    appears in the rendered prompt; "user" when the template raises on a system role or renders
    without it (lm-evaluation-harness silently loses the system message there: its issues
    #2069 and #3076). Checked once per engine."""
    cached = getattr(engine, "_prefixopt_persona_placement", None)
    if cached is not None:
        return cached
    try:
        text = engine.render_chat(_PERSONA_SENTINEL, "Which is larger, 2 or 3?")
        placement = "system" if _PERSONA_SENTINEL in text else "user"
    except Exception:  # noqa: BLE001 - jinja raises its own errors for "no system role"
        placement = "user"
    try:
        engine._prefixopt_persona_placement = placement
    except AttributeError:  # an engine with __slots__: check again next time
        pass
    return placement


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
        # persona into the user turn? known from an earlier check, else from the first render
        # of a system message (no extra template call)
        self.fold = getattr(engine, "_prefixopt_persona_placement", None) == "user"

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
    fewshot: Sequence[Question] | Mapping[str, Sequence[Question]] = (),
) -> list[Request]:
    """K x B Requests, person-major: all B questions of prefix 0, then prefix 1, ...; so each
    person's head (system prompt + few-shot block) is shared by its B prompts in the cache.
    prefixes: (person_id or NO_PERSON, system text or None for no system message). Several
    benchmarks: `scoring` and `fewshot` map a benchmark to its own."""
    if prompt_format not in PROMPT_FORMATS:
        raise PrefixoptError(f"unknown prompt format {prompt_format!r}; "
                             f"valid: {', '.join(PROMPT_FORMATS)}")
    # per question, once: body text, continuations, letters
    tasks = [get_task(q.benchmark) for q in questions]  # (B,)
    modes = [scoring if isinstance(scoring, str) else scoring[q.benchmark] for q in questions]
    shots = [fewshot.get(q.benchmark, ()) if isinstance(fewshot, Mapping) else fewshot
             for q in questions]  # (B,) each question's few-shot examples
    render = (lambda t, q, m, f: t.render_user(q, m, f)) if prompt_format == "chat" else (
        lambda t, q, m, f: t.render_harness(q, m, f))
    bodies = [render(t, q, m, f) for t, q, m, f in zip(tasks, questions, modes, shots)]  # (B,)
    splice = _ChatSplicer(engine) if prompt_format == "chat" else None
    conts = [t.continuations(q, prompt_format) if m == "cloze" else ()
             for t, q, m in zip(tasks, questions, modes)]
    letters = [q.labels if m == "letter" else () for q, m in zip(questions, modes)]
    requests = []
    for person_id, system in prefixes:  # person-major
        for q, body, cont, lets in zip(questions, bodies, conts, letters, strict=True):
            if splice is not None:
                prompt = splice(system, body)
            else:
                prompt = body if system is None else f"{system}\n\n{body}"
            requests.append(Request(prompt, person_id, q, cont, lets))
    return requests


def fewshot_examples(
    benchmark: str,
    k: int,
    seed: int,
    data_dir: str | Path | None = None,
    exclude_ids: Iterable[str] = (),
) -> list[Question]:
    """k solved examples from the benchmark's few-shot split, drawn with a fixed seed, never
    one of the scored questions (exclude_ids)."""
    from prefixopt.benchmarks import load_split

    if k <= 0:
        return []
    split = get_task(benchmark).fewshot_split
    excluded = set(exclude_ids)
    pool = [q for q in load_split(benchmark, split, data_dir=data_dir)
            if q.question_id not in excluded]
    if len(pool) < k:
        raise PrefixoptError(
            f"--num-fewshot {k}: only {len(pool)} {benchmark} {split} examples are available"
        )
    rng = np.random.default_rng(seed)
    return [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]
