"""The ONLY module that imports vllm (lazily). Builds `vllm.LLM` once and scores a batch of
Requests in ONE `generate` call with automatic prefix caching, returning one Response per
request in request order with prompt / cached / output token counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from prefixopt.records import Request, Response


class Engine(Protocol):
    """What train/eval/bench need from an engine; the synthetic engine implements it too."""

    def render_chat(self, system: str | None, user: str) -> str:
        """The model's chat template applied to [system?, user] + the generation prompt."""
        ...

    def run(
        self,
        requests: Sequence[Request],
        mode: str,
        *,
        max_tokens: int = 1,
        stop: Sequence[str] = (),
    ) -> list[Response]:
        """Score all requests in ONE engine call. mode: letter | cloze | generate."""
        ...

    def info(self) -> dict[str, str]:
        """Model, device and library versions, for config.json and bench output."""
        ...
