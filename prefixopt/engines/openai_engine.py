"""The engine behind an OpenAI-compatible endpoint (`--engine openai --base-url URL`).

Two APIs, chosen from what the endpoint says it is (GET /models) or by --api:
- completions (a vLLM server, `prefixopt serve`): prompts are rendered and tokenised HERE with
  the model's own tokenizer (engines.tokens, as in-process) and sent as token ids, so they are
  byte-identical to in-process ones; letter = one token restricted to the letters
  (`allowed_token_ids`, log-probs per letter), cloze = `prompt_logprobs` (continuation rows
  summed), generate = greedy with stop strings. Results match the in-process engine.
- chat (hosted models): the persona is the system message; generate everywhere; letter from
  the first token's `top_logprobs` (a letter missing from the list scores -inf and is counted
  in Response.missing_letters); cloze is refused, since chat APIs return no prompt log-probs.
One `run` = the whole batch in flight at once (engines.openai_client); the server batches and
prefix-caches it. Nothing of a batch is returned unless every request of it answered.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from prefixopt.config import EngineConfig
from prefixopt.engines import run_modes
from prefixopt.engines.openai_client import (GREEDY, TOP_LOGPROBS, EngineUnavailable, Http, api_key,
                                             get_json, post_all)
from prefixopt.engines.tokens import TokenizerSide
from prefixopt.errors import PrefixoptError
from prefixopt.records import Request, Response
from prefixopt.config import DEFAULT_MODEL
from prefixopt.models import locate
from prefixopt.engines.openai_chat import chat_batch
from prefixopt.engines.vllm_cloze import cloze_tokens

APIS = ("auto", "completions", "chat")
# a chat-API prompt is its messages, encoded in one string so prompts.build_grid's splicing
# works unchanged: RS role US content, per message
_RS, _US = "\x1e", "\x1f"


def build_openai_engine(cfg: EngineConfig) -> OpenAIEngine:
    """Ask the endpoint what it serves, pick the model and the API, load the tokenizer for the
    completions API. One line and no engine when the endpoint or the model is not right."""
    if not cfg.base_url:
        raise PrefixoptError("--engine openai needs --base-url (e.g. http://127.0.0.1:8000/v1, "
                             "what `prefixopt serve` prints)")
    if cfg.api not in APIS:
        raise PrefixoptError(f"unknown --api {cfg.api!r}; use one of {', '.join(APIS)}")
    http = Http(cfg.base_url, api_key(cfg.api_key_env), cfg.max_concurrency,
                cfg.request_timeout, cfg.max_retries)
    try:
        listing = get_json(http, "/models")
    except EngineUnavailable as exc:
        raise PrefixoptError(f"cannot reach the endpoint: {exc}; start the server (`prefixopt "
                             "serve`) or check --base-url") from None
    data = [m for m in (listing or {}).get("data", []) if isinstance(m, dict)]
    served = _served_model(cfg, [str(m.get("id")) for m in data], http.base_url)
    entry = next(m for m in data if m.get("id") == served) if data else {}
    is_vllm = entry.get("owned_by") == "vllm"
    api = cfg.api if cfg.api != "auto" else ("completions" if is_vllm else "chat")
    tokenizer = _tokenizer(cfg.model, served, entry.get("root")) if api == "completions" else None
    return OpenAIEngine(http, served, api, tokenizer, server="vllm" if is_vllm else
                        str(entry.get("owned_by") or "unknown"))


def _served_model(cfg: EngineConfig, ids: list[str], url: str) -> str:
    if cfg.model in ids:
        return cfg.model
    if not ids:  # an endpoint that does not list its models: trust --model
        return cfg.model
    if len(ids) == 1 and cfg.model == DEFAULT_MODEL:  # --model not given: the one it serves
        return ids[0]
    raise PrefixoptError(f"{url} serves {', '.join(ids)}, not {cfg.model!r}; pass --model with "
                         "one of those")


def _tokenizer(model: str, served: str, root: Any) -> Any:
    """The model's tokenizer on this machine: --model, else the served name, else the path the
    server loaded it from (same machine)."""
    from transformers import AutoTokenizer


    tried = []
    for name in dict.fromkeys([model, served, root]):
        if not isinstance(name, str) or not name:
            continue
        try:
            return AutoTokenizer.from_pretrained(locate(name))
        except Exception as exc:  # noqa: BLE001 - try the next name
            tried.append(f"{name} ({type(exc).__name__})")
    raise PrefixoptError(f"the completions API needs the model's tokenizer here to render "
                         f"prompts exactly; none loaded from {', '.join(tried)}; pass --model "
                         "with a local folder or HF id of the served model, or use --api chat")


class OpenAIEngine(TokenizerSide):
    """An OpenAI-compatible endpoint as an Engine: `run` sends a whole batch at once."""

    def __init__(self, http: Http, model: str, api: str, tokenizer: Any = None,
                 server: str = "unknown"):
        self.http, self.model, self.api, self.server = http, model, api, server
        if tokenizer is not None:
            self._init_tokens(tokenizer)
        self.missing_letters = 0  # letters absent from a chat API's top list, so far

    # ---- rendering -------------------------------------------------------------------------
    def render_chat(self, system: str | None, user: str) -> str:
        if self.api == "completions":
            return super().render_chat(system, user)
        parts = [("system", system)] if system is not None else []
        return "".join(f"{_RS}{role}{_US}{text}" for role, text in [*parts, ("user", user)])

    @staticmethod
    def messages(prompt: str) -> list[dict[str, str]]:
        """A chat prompt back to its messages (a harness-format prompt: one user message)."""
        if not prompt.startswith(_RS):
            return [{"role": "user", "content": prompt}]
        return [{"role": role, "content": text} for role, _, text in
                (part.partition(_US) for part in prompt[1:].split(_RS))]

    def capabilities(self) -> dict[str, str]:
        if self.api == "completions":
            return {"api": "completions", "letter": "allowed_token_ids", "cloze":
                    "prompt_logprobs", "generate": "yes"}
        return {"api": "chat", "letter": f"top_logprobs ({TOP_LOGPROBS}; a missing letter "
                "scores -inf)", "cloze": "refused (no prompt log-probs)", "generate": "yes"}

    @property
    def deterministic(self) -> bool:
        """A completions endpoint (a vLLM server) is greedy and reproducible; a chat API (hosted
        models) is not, even at temperature 0."""
        return self.api == "completions"

    def fingerprint(self) -> dict[str, Any]:
        return {}  # the server, model and api are in info()

    def info(self) -> dict[str, str]:
        out = {"engine": "openai", "base_url": self.http.base_url, "model": self.model,
               "server": self.server, "device": "remote", "dtype": "server's",
               **{f"capability_{k}": v for k, v in self.capabilities().items()}}
        if self.api == "completions":
            out["template_without_system"] = self.template_without_system()
        return out

    # ---- one batch -------------------------------------------------------------------------
    def run(self, requests: Sequence[Request], mode: str | Sequence[str], *,
            max_tokens: int = 1, stop: Sequence[str] = ()) -> list[Response]:
        """Every request of the batch in flight together; one Response per request, in order.
        mode: one for all, or one per request."""
        modes = run_modes(requests, mode)
        if self.api == "chat" and "cloze" in modes:
            raise PrefixoptError(f"cloze scoring needs prompt log-probs, which the chat API at "
                                 f"{self.http.base_url} does not return; use --scoring letter or "
                                 "generate, or a vLLM server (--api completions)")
        if not requests:
            return []
        if self.api == "chat":
            responses, missing = chat_batch(self, requests, modes, max_tokens, stop)
            self.missing_letters += missing
            return responses
        return self._completions(requests, modes, max_tokens, stop)

    def _completions(self, requests: Sequence[Request], modes: list[str], max_tokens: int,
                     stop: Sequence[str]) -> list[Response]:
        cloze = [i for i, m in enumerate(modes) if m == "cloze"]  # request positions
        plain = [i for i, m in enumerate(modes) if m != "cloze"]
        whole_ids, owner, starts = cloze_tokens(self, [requests[i] for i in cloze]) if cloze \
            else ([], [], [])
        plain_ids = self.encode([requests[i].prompt for i in plain])
        # cloze: vLLM's server computes every prompt row of a prompt_logprobs request (its API
        # has no skip_reading_prefix_cache; reading the cache there crashed its detokenizer on
        # the rows served from it, vLLM 0.32), so these are slower than in-process
        bodies = [self._body(ids, max_tokens=1, prompt_logprobs=0) for ids in whole_ids]
        for i, ids in zip(plain, plain_ids, strict=True):
            r, m = requests[i], modes[i]
            if m == "generate":
                bodies.append(self._body(ids, max_tokens=max_tokens, stop=list(stop) or None))
            else:
                letter_ids = self._letters(r)
                bodies.append(self._body(ids, max_tokens=1, logprobs=len(letter_ids),
                                         allowed_token_ids=letter_ids,
                                         return_tokens_as_token_ids=True))
        outs = post_all(self.http, "/completions", bodies)
        # a server that served a row we read from its prefix cache has no log-prob there
        if not all(_rows_present(outs[j], starts[j], len(ids)) for j, ids in enumerate(whole_ids)):
            raise PrefixoptError(f"{self.http.base_url} returned no log-prob for some "
                                 "continuation rows (served from its prefix cache?); cloze "
                                 "needs a server that computes prompt log-probs")
        responses = [Response() for _ in requests]
        lls: dict[int, list[float]] = {i: [] for i in cloze}
        for j, ((r, _), out) in enumerate(zip(owner, outs[:len(whole_ids)], strict=True)):
            i, ids = cloze[r], whole_ids[j]
            # [None, {"<id>": {"logprob": ...}}, ...], one per prompt position
            plp = out["choices"][0]["prompt_logprobs"]
            lls[i].append(sum(plp[p][str(ids[p])]["logprob"] for p in range(starts[j], len(ids))))
            _count(responses[i], out, len(ids))
        for i, ll in lls.items():
            responses[i].logprobs = tuple(ll)
        for i, ids, out in zip(plain, plain_ids, outs[len(whole_ids):], strict=True):
            resp = responses[i]
            _count(resp, out, len(ids))
            choice = out["choices"][0]
            if modes[i] == "generate":
                resp.text = choice.get("text") or ""
            else:
                top = (choice.get("logprobs") or {}).get("top_logprobs") or [{}]
                step = top[0] or {}  # {"token_id:<id>": logprob}, the letters only
                resp.logprobs = tuple(step.get(f"token_id:{t}", -math.inf)
                                      for t in self._letters(requests[i]))
        return responses

    def _letters(self, request: Request) -> list[int]:
        if not request.letters:
            raise PrefixoptError(f"{request.question.question_id}: letter scoring needs letters")
        return self.letter_token_ids(request.letters, request.prompt[-1:].isspace())

    def _body(self, ids: list[int], **extra: Any) -> dict[str, Any]:
        body = {"model": self.model, "prompt": ids, **GREEDY, "repetition_penalty": 1.0,
                "add_special_tokens": False, **extra}
        return {k: v for k, v in body.items() if v is not None}


def _rows_present(out: dict[str, Any], start: int, n: int) -> bool:
    """Every continuation position has its log-prob: no row it reads (start - 1 on) was served
    from the cache."""
    cached = int(((out.get("usage") or {}).get("prompt_tokens_details") or {})
                 .get("cached_tokens") or 0)
    plp = out["choices"][0].get("prompt_logprobs") or []
    return cached <= start - 1 and len(plp) == n and all(plp[p] for p in range(start, n))


def _count(resp: Response, out: dict[str, Any], prompt_len: int) -> None:
    """Token counts from the answer's usage (cached tokens: vLLM's
    --enable-prompt-tokens-details, OpenAI's prompt_tokens_details)."""
    usage = out.get("usage") or {}
    resp.prompt_tokens += int(usage.get("prompt_tokens") or prompt_len)
    resp.cached_tokens += int((usage.get("prompt_tokens_details") or {}).get("cached_tokens")
                              or 0)
    resp.output_tokens += int(usage.get("completion_tokens") or 0)
