"""The engines side by side under one protocol: `vllm_engine` (in-process vLLM; `vllm_cloze`
and `vllm_boot` are its parts, `patches` every patch on vLLM/torch), `openai_engine` (an
OpenAI-compatible server; `serve`/`vllm_server` start one), `synthetic` (planted accuracies).
`build` is the one place that picks one. `Engine` is what train, eval and study need, its
capabilities (`api`, `persona_placement`, `deterministic`, `fingerprint`) declared by each
engine; `CacheEngine` is what bench needs on top (the prefix cache and the exact tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from prefixopt.config import SCORINGS
from prefixopt.errors import PrefixoptError
from prefixopt.records import Request, Response

PERSONA_SENTINEL = "PREFIXOPT-PERSONA-CHECK-7F3A"
ENGINE_APIS = ("completions", "chat")  # Engine.api
PLACEMENTS = ("system", "user")  # Engine.persona_placement


def run_modes(requests: Sequence[Request], mode: str | Sequence[str]) -> list[str]:
    """Each request's scoring mode (one for all, or one per request), checked: what every
    engine's `run` starts with."""
    modes = [mode] * len(requests) if isinstance(mode, str) else list(mode)
    unknown = sorted(set(modes) - set(SCORINGS))
    if unknown or len(modes) != len(requests):
        raise PrefixoptError(f"unknown scoring mode {unknown[0] if unknown else mode!r}; "
                             f"use one of {', '.join(SCORINGS)}")
    return modes


def probe_persona_placement(render_chat: Callable[[str | None, str], str]) -> str:
    """Where a chat template puts a persona: "system" when a sentinel system message appears in
    the rendered prompt; "user" when the template raises on a system role or renders without
    it (lm-evaluation-harness silently loses the system message there: its issues #2069 and
    #3076). What an engine's `persona_placement` computes, once."""
    try:
        text = render_chat(PERSONA_SENTINEL, "Which is larger, 2 or 3?")
    except Exception:  # noqa: BLE001 - jinja raises its own errors for "no system role"
        return "user"
    return "system" if PERSONA_SENTINEL in text else "user"


@runtime_checkable
class Engine(Protocol):
    """What train, eval and study need from an engine. Capabilities: `api` is "completions"
    (prompts as text/token ids, log-probs of any token: letter, cloze, margin) or "chat"
    (messages; only the top log-probs of generated tokens); `persona_placement` is "system"
    or "user" (the template has no system role: the persona opens the user turn);
    `deterministic`: the same request always gets the same Response (greedy, temperature 0),
    so a score cache may serve it again; `fingerprint()`: what decides its answers beyond
    info() (a synthetic engine's planted tables; {} for a model)."""

    api: str
    persona_placement: str
    deterministic: bool

    def fingerprint(self) -> dict[str, Any]:
        """What decides the engine's answers that info() does not list (score-cache keys)."""
        ...

    def render_chat(self, system: str | None, user: str) -> str:
        """The model's chat template applied to [system?, user] + the generation prompt."""
        ...

    def run(self, requests: Sequence[Request], mode: str | Sequence[str], *,
            max_tokens: int = 1, stop: Sequence[str] = ()) -> list[Response]:
        """Score all requests in ONE engine call; mode: letter | cloze | generate, one for all
        or one per request."""
        ...

    def info(self) -> dict[str, str]:
        """Engine, model, device, dtype and library versions, for config.json and bench."""
        ...


@runtime_checkable
class CacheEngine(Engine, Protocol):
    """An engine with a prefix cache bench can measure: cache on/off in one engine, reset
    between measurements, its block size, and the token lists `run` sends."""

    block_size: int

    def reset_prefix_cache(self) -> None: ...

    def prompt_token_ids(self, requests: Sequence[Request], mode: str) -> list[list[int]]: ...
