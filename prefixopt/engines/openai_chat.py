"""The chat-completions side of the OpenAI-compatible engine (hosted models): one request per
prompt, persona as the system message, greedy. letter: max_tokens 1 with the first token's
`top_logprobs`; per letter the best log-prob among returned tokens that read as that letter
(" A", "A"); a letter the API did not return scores -inf and is counted (Response
.missing_letters, and the engine's running total), never guessed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from prefixopt.engines.openai_client import GREEDY, TOP_LOGPROBS, post_all
from prefixopt.records import Request, Response


def chat_batch(engine: Any, requests: Sequence[Request], modes: Sequence[str], max_tokens: int,
               stop: Sequence[str]) -> tuple[list[Response], int]:
    """(responses in request order, letters missing from the top lists)."""

    bodies = []
    for r, m in zip(requests, modes, strict=True):
        body: dict[str, Any] = {"model": engine.model, "messages": engine.messages(r.prompt),
                                **GREEDY}
        if m == "generate":
            body["max_tokens"] = max_tokens
            if stop:
                body["stop"] = list(stop)[:4]  # OpenAI accepts at most 4 stop sequences
        else:
            body.update(max_tokens=1, logprobs=True, top_logprobs=TOP_LOGPROBS)
        bodies.append(body)
    outs = post_all(engine.http, "/chat/completions", bodies)
    responses, missing = [], 0
    for r, m, out in zip(requests, modes, outs, strict=True):
        usage = out.get("usage") or {}
        resp = Response(prompt_tokens=int(usage.get("prompt_tokens") or 0),
                        cached_tokens=int((usage.get("prompt_tokens_details") or {})
                                          .get("cached_tokens") or 0),
                        output_tokens=int(usage.get("completion_tokens") or 0))
        choice = (out.get("choices") or [{}])[0]
        if m == "generate":
            resp.text = (choice.get("message") or {}).get("content") or ""
        else:
            resp.logprobs = letter_logprobs(choice, r.letters)
            resp.missing_letters = sum(math.isinf(x) for x in resp.logprobs)
            missing += resp.missing_letters
        responses.append(resp)
    return responses, missing


def letter_logprobs(choice: dict[str, Any], letters: Sequence[str]) -> tuple[float, ...]:
    """Per letter, the best log-prob of a first-position token that reads as it; -inf when the
    returned list has none."""
    content = ((choice.get("logprobs") or {}).get("content") or [{}])
    first = content[0] if content else {}
    best = {letter: -math.inf for letter in letters}
    for entry in first.get("top_logprobs") or []:
        token = str(entry.get("token", "")).strip()
        if token in best:
            best[token] = max(best[token], float(entry.get("logprob", -math.inf)))
    return tuple(best[letter] for letter in letters)
