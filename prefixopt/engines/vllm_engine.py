"""The in-process vLLM engine: builds `vllm.LLM` once (from the job's ResolvedEngine) and scores
a batch of Requests in ONE `generate` call with automatic prefix caching, returning one Response
per request in request order with prompt / cached / output token counts. vllm is imported lazily
here and in its parts (vllm_cloze, vllm_boot) and in vllm_server (the `prefixopt serve` child);
every patch on vLLM or torch is applied through engines.patches.

Cloze and the prefix cache (measured on vLLM 0.32, CPU build): a request with
`prompt_logprobs` sets `skip_reading_prefix_cache=True` by default, so the harness's way
(one prompt_logprobs request per choice) never reads the cache (num_cached_tokens == 0). vLLM
skips the cache because rows served from it get no prompt log-probs. We only need the rows of
the continuation, which sit after the shared context, so we pass
`skip_reading_prefix_cache=False`: the cached head is not recomputed, the continuation rows
are computed, and we read only those. A prompt whose cache hit reaches into its continuation
(possible when two choices share their first tokens across a block boundary) is re-run
without the cache, so every number is computed, never read from an unfilled row.
Measured: 12 cloze prompts sharing a 640-token head, 6.2 s uncached vs 0.6 s cached, same
log-likelihoods up to bf16 noise.

Environment set here for vLLM itself (this is the accelerator edge): on machines without
CUDA, VLLM_CPU_KVCACHE_SPACE (from EngineConfig.cpu_kvcache_gib), VLLM_CPU_NUM_OF_RESERVED_CPU=0
and VLLM_ENABLE_V1_MULTIPROCESSING=0 (engine core in-process: no spawned worker, so no
`__main__` guard needed), and everywhere VLLM_LOGGING_LEVEL=WARNING, each only when not
already set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from prefixopt.config import EngineConfig
from prefixopt.engines import patches, run_modes
from prefixopt.engines.resolved import ResolvedEngine, resolve_engine
from prefixopt.engines.tokens import TokenizerSide
from prefixopt.engines.vllm_boot import load_error
from prefixopt.errors import PrefixoptError
from prefixopt.records import Request, Response
from prefixopt.engines.vllm_cloze import cloze_batch
from prefixopt.engines.vllm_cloze import cloze_tokens


def build_engine(cfg: EngineConfig, resolved: ResolvedEngine | None = None,
                 **overrides: Any) -> VllmEngine:
    """Build the one vLLM engine of this process from an EngineConfig and its ResolvedEngine
    (None: resolved here; a missing or unreachable model is one line and no engine).
    overrides: extra `vllm.LLM` keyword arguments, for measurements."""

    resolved = resolved if resolved is not None else resolve_engine(cfg)
    model, dtype, on_cuda = resolved.model_path, resolved.dtype, resolved.cuda
    import torch

    if not on_cuda:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{cfg.cpu_kvcache_gib:g}")
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    # vLLM's INFO lines (hundreds per start) would bury the progress bar; VLLM_LOGGING_LEVEL=INFO
    # brings them back
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    import vllm

    patches.apply("aot_cache_load")
    kwargs: dict[str, Any] = {
        "model": model,
        "dtype": dtype,
        "max_model_len": cfg.max_model_len,
        "gpu_memory_utilization": cfg.gpu_memory_utilization,
        "tensor_parallel_size": cfg.tensor_parallel_size,
        "enable_prefix_caching": cfg.enable_prefix_caching,
        "seed": resolved.seed,
        "trust_remote_code": cfg.trust_remote_code,
        "enforce_eager": resolved.eager,
        # letter logprobs must be the ones after allowed_token_ids masking (renormalised
        # over the letters), not the raw distribution's top-k
        "logprobs_mode": "processed_logprobs",
    }
    if resolved.block_size is not None:
        kwargs["block_size"] = resolved.block_size
    if cfg.data_parallel_size > 1:
        kwargs["data_parallel_size"] = cfg.data_parallel_size
    if cfg.load_in_4bit:
        kwargs["quantization"] = "bitsandbytes"
    kwargs.update(overrides)
    try:
        llm = vllm.LLM(**kwargs)
    except Exception as exc:  # map vLLM's many load errors to one line
        raise PrefixoptError(load_error(cfg, model, exc)) from exc
    where = torch.cuda.get_device_name(0) if on_cuda else "cpu"
    engine = VllmEngine(llm, model, where, vllm.__version__, torch.__version__, dtype)
    engine.compiled = "eager" if resolved.eager else "torch.compile"
    if not on_cuda and os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0":
        engine.trim_logits = patches.apply("prompt_logits_trim")
    return engine


class VllmEngine(TokenizerSide):
    """One vLLM LLM + its tokenizer (rendering, token ids and persona placement:
    engines.tokens). `run` sends every prompt of a batch in ONE generate call."""

    api = "completions"  # token ids in, letter/prompt log-probs out
    deterministic = True  # greedy, temperature 0, a fixed seed

    def fingerprint(self) -> dict[str, Any]:
        return {}  # the model, dtype and versions are in info()

    def __init__(self, llm: Any, model: str, device: str, vllm_version: str, torch_version: str,
                 dtype: str = "auto"):
        self.llm = llm
        self.dtype = dtype  # the resolved dtype (device.resolve_dtype), never "auto" on CPU
        self._init_tokens(llm.get_tokenizer())
        self.model = model
        self.device = device
        self._versions = (vllm_version, torch_version)
        # cloze: LM head only on the rows that are read (vllm_cloze.trim_prompt_logits)
        self.trim_logits = False
        self.compiled = "eager"  # or "torch.compile" (resolved.vllm_eager)
        self.last_cloze_stats: dict[str, int] = {}

    def info(self) -> dict[str, str]:
        return {
            "model": self.model,
            "vllm": self._versions[0],
            "torch": self._versions[1],
            "device": self.device,
            "dtype": self.dtype,
            "compiled": self.compiled,
            "template_without_system": self.template_without_system(),
        }

    def reset_prefix_cache(self) -> None:
        self.llm.reset_prefix_cache()

    # ---- one batch, one generate call -----------------------------------------------------
    def run(
        self,
        requests: Sequence[Request],
        mode: str | Sequence[str],
        *,
        max_tokens: int = 1,
        stop: Sequence[str] = (),
        prefix_cache: bool = True,
    ) -> list[Response]:
        """Score all requests in ONE llm.generate call (one SamplingParams per prompt, so
        letter, cloze and generate requests can share it; cloze re-runs the few prompts whose
        cache hit reached a row it reads). mode: one for all, or one per request.
        prefix_cache=False makes every request skip reading the prefix cache (bench)."""

        modes = run_modes(requests, mode)
        if not requests:
            return []
        cloze = [i for i, m in enumerate(modes) if m == "cloze"]  # request positions
        plain = [i for i, m in enumerate(modes) if m != "cloze"]
        prompts_c, params_c, finish_c = cloze_batch(self, [requests[i] for i in cloze],
                                                    prefix_cache, self.trim_logits)
        prompts_p, params_p = self._plain_batch([requests[i] for i in plain],
                                                [modes[i] for i in plain], max_tokens, stop,
                                                prefix_cache)
        outs = list(self.llm.generate(prompts_c + prompts_p, params_c + params_p,
                                      use_tqdm=False)) if prompts_c or prompts_p else []
        responses: list[Response] = [Response() for _ in requests]
        for i, resp in zip(cloze, finish_c(outs[:len(prompts_c)]), strict=True):
            responses[i] = resp
        for i, out in zip(plain, outs[len(prompts_c):], strict=True):
            responses[i] = self._read_plain(requests[i], modes[i], out)
        return responses

    def _plain_batch(self, requests: Sequence[Request], modes: Sequence[str], max_tokens: int,
                     stop: Sequence[str], prefix_cache: bool) -> tuple[list, list]:
        """Prompts and SamplingParams of letter (one token, restricted to the answer letters)
        and generate (greedy, stop strings) requests."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        skip = None if prefix_cache else True
        prompts = [TokensPrompt(prompt_token_ids=ids) for ids in self.encode(
            [r.prompt for r in requests])]
        shared: dict[Any, Any] = {}  # one SamplingParams per distinct setting
        params = []
        for r, m in zip(requests, modes, strict=True):
            if m == "generate":
                key: Any = "generate"
                if key not in shared:
                    shared[key] = SamplingParams(temperature=0.0, max_tokens=max_tokens,
                                                 stop=list(stop) or None,
                                                 skip_reading_prefix_cache=skip)
            else:
                if not r.letters:
                    raise PrefixoptError(f"{r.question.question_id}: letter scoring needs letters")
                key = (r.letters, r.prompt[-1:].isspace())
                if key not in shared:
                    ids = self.letter_token_ids(*key)
                    shared[key] = SamplingParams(
                        temperature=0.0, max_tokens=1, logprobs=len(ids),
                        allowed_token_ids=ids, detokenize=False, skip_reading_prefix_cache=skip)
            params.append(shared[key])
        return prompts, params

    def _read_plain(self, request: Request, mode: str, out: Any) -> Response:
        comp = out.outputs[0]
        resp = Response(prompt_tokens=len(out.prompt_token_ids),
                        cached_tokens=out.num_cached_tokens or 0,
                        output_tokens=len(comp.token_ids))
        if mode == "generate":
            resp.text = comp.text
        else:
            step = comp.logprobs[0]  # {token_id: Logprob}, the letters only
            ids = self.letter_token_ids(request.letters, request.prompt[-1:].isspace())
            resp.logprobs = tuple(step[i].logprob if i in step else float("-inf") for i in ids)
        return resp

    @property
    def block_size(self) -> int:
        """Prefix-cache granularity in tokens (CPU build: 32 unless set, CUDA: 16)."""
        return int(self.llm.llm_engine.vllm_config.cache_config.block_size)

    def cloze_tokens(self, requests: Sequence[Request]
                     ) -> tuple[list[list[int]], list[tuple[int, int]], list[int]]:
        """(prompt ids per choice, (request, choice) per prompt, continuation start per
        prompt), the harness split (vllm_cloze.cloze_tokens)."""

        return cloze_tokens(self, requests)

    def prompt_token_ids(self, requests: Sequence[Request], mode: str) -> list[list[int]]:
        """Exactly the token lists `run` sends (cloze: one per choice), for cache accounting."""
        if mode == "cloze":
            return self.cloze_tokens(requests)[0]
        return self.encode([r.prompt for r in requests])
