"""The engines side by side under one protocol: `vllm_engine` (the in-process vLLM engine, the
ONLY place that imports vllm; `vllm_cloze` and `vllm_boot` are its parts) and `synthetic`
(planted accuracies, for learner studies). `Engine` is what train, eval and study need;
`CacheEngine` is the capability bench needs on top (the prefix cache and the exact tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from prefixopt.config import SCORINGS
from prefixopt.errors import PrefixoptError
from prefixopt.records import Request, Response


def run_modes(requests: Sequence[Request], mode: str | Sequence[str]) -> list[str]:
    """Each request's scoring mode (one for all, or one per request), checked: what every
    engine's `run` starts with."""
    modes = [mode] * len(requests) if isinstance(mode, str) else list(mode)
    unknown = sorted(set(modes) - set(SCORINGS))
    if unknown or len(modes) != len(requests):
        raise PrefixoptError(f"unknown scoring mode {unknown[0] if unknown else mode!r}; "
                             f"use one of {', '.join(SCORINGS)}")
    return modes


class Engine(Protocol):
    """What train, eval and study need from an engine."""

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
