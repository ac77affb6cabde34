"""The ONLY module that imports vllm (lazily). Builds `vllm.LLM` once and scores a batch of
Requests in ONE `generate` call with automatic prefix caching, returning one Response per
request in request order with prompt / cached / output token counts.

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
from typing import Any, Protocol

from prefixopt.config import CPU_BLOCK_SIZE, EngineConfig
from prefixopt.errors import PrefixoptError
from prefixopt.records import Request, Response

MODES = ("letter", "cloze", "generate")


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


def build_engine(cfg: EngineConfig, **overrides: Any) -> VllmEngine:
    """Build the one vLLM engine of this process from an EngineConfig (overrides: extra
    `vllm.LLM` keyword arguments, for measurements)."""
    from prefixopt.models import locate

    model = locate(cfg.model)  # one line and no engine for a missing or unreachable model

    import torch

    from prefixopt import device

    on_cuda = torch.cuda.is_available()
    dtype = device.resolve_dtype(cfg.dtype, cuda=on_cuda, flags=device.cpu_flags(),
                                 saved=device.model_dtype(model))
    if not on_cuda:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{cfg.cpu_kvcache_gib:g}")
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    # vLLM's INFO lines (hundreds per start) would bury the progress bar; VLLM_LOGGING_LEVEL=INFO
    # brings them back
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    import vllm

    _mend_aot_cache_load()
    kwargs: dict[str, Any] = {
        "model": model,
        "dtype": dtype,
        "max_model_len": cfg.max_model_len,
        "gpu_memory_utilization": cfg.gpu_memory_utilization,
        "tensor_parallel_size": cfg.tensor_parallel_size,
        "enable_prefix_caching": cfg.enable_prefix_caching,
        "seed": cfg.seed,
        "trust_remote_code": cfg.trust_remote_code,
        "enforce_eager": cfg.enforce_eager,
        # letter logprobs must be the ones after allowed_token_ids masking (renormalised
        # over the letters), not the raw distribution's top-k
        "logprobs_mode": "processed_logprobs",
    }
    block_size = cfg.block_size if cfg.block_size is not None else (None if on_cuda else CPU_BLOCK_SIZE)
    if block_size is not None:
        kwargs["block_size"] = block_size
    if cfg.data_parallel_size > 1:
        kwargs["data_parallel_size"] = cfg.data_parallel_size
    if cfg.load_in_4bit:
        kwargs["quantization"] = "bitsandbytes"
    kwargs.update(overrides)
    try:
        llm = vllm.LLM(**kwargs)
    except Exception as exc:  # map vLLM's many load errors to one line
        raise PrefixoptError(_load_error(cfg, model, exc)) from exc
    where = torch.cuda.get_device_name(0) if on_cuda else "cpu"
    engine = VllmEngine(llm, model, where, vllm.__version__, torch.__version__, dtype)
    if not on_cuda and os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0":
        from prefixopt.engine_cloze import trim_prompt_logits

        engine.trim_logits = trim_prompt_logits()
    return engine


def _mend_aot_cache_load() -> None:
    """Make vLLM's compile cache load on CPU. vLLM 0.32 + torch 2.13: the CPU build compiles
    with torch's own Inductor backend, whose AOT artifact deserialises to a plain function;
    vLLM then calls `.finalize_loading(...)` on it (a method of its own backend's artifact
    only), fails with "'function' object has no attribute 'finalize_loading'" and compiles
    again on every start (~140 s here). Giving that function a no-op `finalize_loading` lets
    the saved artifact load (nothing is left to finalise for Inductor's artifact). Idempotent;
    does nothing when torch's class is not there."""
    try:
        from torch._dynamo import aot_compile_types as act
    except ImportError:
        return
    cls = getattr(act, "BundledAOTAutogradSerializableCallable", None)
    orig = getattr(cls, "deserialize_compile_artifacts", None)
    if orig is None or getattr(orig, "_prefixopt_mended", False):
        return
    orig_fn = orig.__func__

    def deserialize(klass: Any, data: bytes) -> Any:
        fn = orig_fn(klass, data)
        if not hasattr(fn, "finalize_loading"):
            try:
                fn.finalize_loading = lambda vllm_config: None
            except (AttributeError, TypeError):
                pass
        return fn

    deserialize._prefixopt_mended = True  # type: ignore[attr-defined]
    cls.deserialize_compile_artifacts = classmethod(deserialize)


def _load_error(cfg: EngineConfig, model: str, exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if "out of memory" in low or "memory" in low and ("kv cache" in low or "not enough" in low):
        return (
            f"model {model} does not fit ({text}); lower --max-model-len, raise "
            "--gpu-memory-utilization, use --load-in-4bit or a smaller model"
        )
    if "max_model_len" in low or "max model len" in low:
        return f"model {model}: {text}; lower --max-model-len"
    if any(s in low for s in ("not found", "does not appear", "repository", "offline", "connect")):
        return f"cannot load model {model!r} ({text}); check the HF id or pass a local folder"
    return f"cannot build the vLLM engine for {model} ({type(exc).__name__}: {text})"


class VllmEngine:
    """One vLLM LLM + its tokenizer. `run` sends every prompt of a batch in ONE generate call."""

    def __init__(self, llm: Any, model: str, device: str, vllm_version: str, torch_version: str,
                 dtype: str = "auto"):
        self.llm = llm
        self.dtype = dtype  # the resolved dtype (device.resolve_dtype), never "auto" on CPU
        self.tokenizer = llm.get_tokenizer()
        self.model = model
        self.device = device
        self._versions = (vllm_version, torch_version)
        # cloze: LM head only on the rows that are read (engine_cloze.trim_prompt_logits)
        self.trim_logits = False
        self.last_cloze_stats: dict[str, int] = {}
        self._letter_ids: dict[tuple[tuple[str, ...], bool], list[int]] = {}
        bos = getattr(self.tokenizer, "bos_token", None)
        self._bos = bos if isinstance(bos, str) and bos else None

    # ---- rendering -------------------------------------------------------------------------
    def render_chat(self, system: str | None, user: str) -> str:
        messages = [{"role": "system", "content": system}] if system is not None else []
        messages.append({"role": "user", "content": user})
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )

    def info(self) -> dict[str, str]:
        # what the chat template puts in on its own when we send no system message
        default = self.render_chat(None, "\x00").split("\x00")[0]
        return {
            "model": self.model,
            "vllm": self._versions[0],
            "torch": self._versions[1],
            "device": self.device,
            "dtype": self.dtype,
            "template_without_system": default,
        }

    def reset_prefix_cache(self) -> None:
        self.llm.reset_prefix_cache()

    # ---- tokenisation (as lm-evaluation-harness's HF backend does) --------------------------
    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text; special tokens added unless the text already starts with BOS
        (a chat-rendered prompt carries its own)."""
        with_bos = [i for i, t in enumerate(texts) if not (self._bos and t.startswith(self._bos))]
        out: list[list[int]] = [[] for _ in texts]
        groups = ((with_bos, True), (sorted(set(range(len(texts))) - set(with_bos)), False))
        for idx, special in groups:
            if idx:
                ids = self.tokenizer([texts[i] for i in idx], add_special_tokens=special)
                for i, row in zip(idx, ids["input_ids"], strict=True):
                    out[i] = list(row)
        return out

    def letter_token_ids(self, letters: Sequence[str], after_space: bool) -> list[int]:
        """The single token the model emits for each letter: "A" after whitespace/newline (chat
        templates end in "\\n"), " A" after "Answer:" (harness)."""
        key = (tuple(letters), after_space)
        if key not in self._letter_ids:
            ids = []
            for letter in letters:
                toks = self.tokenizer.encode(letter if after_space else " " + letter,
                                             add_special_tokens=False)
                if len(toks) != 1:
                    raise PrefixoptError(
                        f"answer letter {letter!r} is {len(toks)} tokens for this tokenizer; "
                        "use --scoring cloze or generate"
                    )
                ids.append(toks[0])
            self._letter_ids[key] = ids
        return self._letter_ids[key]

    # ---- one batch, one generate call -----------------------------------------------------
    def run(
        self,
        requests: Sequence[Request],
        mode: str,
        *,
        max_tokens: int = 1,
        stop: Sequence[str] = (),
        prefix_cache: bool = True,
    ) -> list[Response]:
        """Score all requests in ONE llm.generate call. prefix_cache=False makes every request
        skip reading the prefix cache (bench's cache-off measurement, same engine)."""
        if mode not in MODES:
            raise PrefixoptError(f"unknown scoring mode {mode!r}; use one of {', '.join(MODES)}")
        if not requests:
            return []
        if mode == "cloze":
            return self._run_cloze(requests, prefix_cache)
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        skip = None if prefix_cache else True
        prompts = [TokensPrompt(prompt_token_ids=ids) for ids in self.encode(
            [r.prompt for r in requests])]
        if mode == "generate":
            params: Any = SamplingParams(
                temperature=0.0, max_tokens=max_tokens, stop=list(stop) or None,
                skip_reading_prefix_cache=skip,
            )
        else:  # letter: one token, restricted to the answer letters
            by_key: dict[tuple[tuple[str, ...], bool], Any] = {}
            params = []
            for r in requests:
                if not r.letters:
                    raise PrefixoptError(f"{r.question.question_id}: letter scoring needs letters")
                key = (r.letters, r.prompt[-1:].isspace())
                if key not in by_key:
                    ids = self.letter_token_ids(*key)
                    by_key[key] = SamplingParams(
                        temperature=0.0, max_tokens=1, logprobs=len(ids),
                        allowed_token_ids=ids, detokenize=False,
                        skip_reading_prefix_cache=skip,
                    )
                params.append(by_key[key])
        outs = self.llm.generate(prompts, params, use_tqdm=False)
        responses = []
        for r, out in zip(requests, outs, strict=True):
            comp = out.outputs[0]
            resp = Response(
                prompt_tokens=len(out.prompt_token_ids),
                cached_tokens=out.num_cached_tokens or 0,
                output_tokens=len(comp.token_ids),
            )
            if mode == "generate":
                resp.text = comp.text
            else:
                step = comp.logprobs[0]  # {token_id: Logprob}, the letters only
                ids = self.letter_token_ids(r.letters, r.prompt[-1:].isspace())
                resp.logprobs = tuple(
                    step[i].logprob if i in step else float("-inf") for i in ids
                )
            responses.append(resp)
        return responses

    @property
    def block_size(self) -> int:
        """Prefix-cache granularity in tokens (CPU build: 32 unless set, CUDA: 16)."""
        return int(self.llm.llm_engine.vllm_config.cache_config.block_size)

    def cloze_tokens(self, requests: Sequence[Request]
                     ) -> tuple[list[list[int]], list[tuple[int, int]], list[int]]:
        """(prompt ids per choice, (request, choice) per prompt, continuation start per
        prompt), the harness split (engine_cloze.cloze_tokens)."""
        from prefixopt.engine_cloze import cloze_tokens

        return cloze_tokens(self, requests)

    def prompt_token_ids(self, requests: Sequence[Request], mode: str) -> list[list[int]]:
        """Exactly the token lists `run` sends (cloze: one per choice), for cache accounting."""
        if mode == "cloze":
            return self.cloze_tokens(requests)[0]
        return self.encode([r.prompt for r in requests])

    def _run_cloze(self, requests: Sequence[Request], prefix_cache: bool) -> list[Response]:
        from prefixopt.engine_cloze import run_cloze

        return run_cloze(self, requests, prefix_cache, trim=self.trim_logits)
