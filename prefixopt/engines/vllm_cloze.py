"""Cloze scoring through vLLM (imported lazily; VllmEngine.run puts `cloze_batch` prompts
into its one generate call).

Each choice is one prompt (context + continuation) with `prompt_logprobs=0`; the summed
log-probs of the continuation tokens are its log-likelihood, with the harness's token split.

Two costs vLLM adds over what cloze needs, and what is done about them:

1. **The prefix cache.** A request with prompt log-probs skips reading the cache by default
   (`skip_reading_prefix_cache`), because rows served from the cache get no log-probs. We
   only read the continuation rows, which sit after the shared context, so we read the cache;
   a prompt whose cache hit reaches the row that predicts its first continuation token is
   re-run without the cache, so every number is computed, never read from an unfilled row.

2. **Logits for every computed row.** vLLM computes the LM head (a 576 x 49,152 matrix for
   SmolLM2), a log-softmax and a rank over the whole vocabulary for every computed prompt row,
   though we read only the continuation rows. On a CPU that is about half a token's forward
   pass per row. `trim_prompt_logits` (installed once, CPU build, in-process engine) lets a
   request name, in `SamplingParams.extra_args[FIRST_ROW]`, the first row it will read; the LM
   head then runs only on rows from there on, and the rows before it get zero logits (their
   log-probs are meaningless and never read). The rows that are read are computed exactly as
   before. Anything unexpected (a plan that does not match the rows vLLM asks for) falls
   back to vLLM's own computation for that step; another vLLM version does
   not get the trim at all (engines.patches).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prefixopt.records import Request, Response
from prefixopt.errors import PrefixoptError

FIRST_ROW = "prefixopt_first_logit_row"  # SamplingParams.extra_args key
ROW_BUCKET = 16  # LM-head rows are padded to a multiple of this (see compute_logits)


def trim_prompt_logits() -> bool:
    """Install the row trim on vLLM's (GPU/CPU) model runner class, once. Returns whether it
    is installed. It reaches the runner only when the engine core runs in this process (the
    CPU setting VLLM_ENABLE_V1_MULTIPROCESSING=0); elsewhere vLLM computes every row. Written
    against vLLM 0.32.0's runner internals: install it through patches.apply, which checks
    the version."""
    import torch
    from vllm.v1.worker import gpu_model_runner as gmr

    runner_cls = gmr.GPUModelRunner
    if getattr(runner_cls._get_prompt_logprobs_dict, "_prefixopt_trim", False):
        return True
    original = runner_cls._get_prompt_logprobs_dict

    def _get_prompt_logprobs_dict(self: Any, hidden_states: Any,
                                  num_scheduled_tokens: dict[str, int]) -> Any:
        plan = _plan(self, num_scheduled_tokens)
        if not plan:
            return original(self, hidden_states, num_scheduled_tokens)
        model = self.model
        full = model.compute_logits
        steps = iter(plan)

        def compute_logits(hidden: Any) -> Any:
            rows, skip = next(steps, (-1, 0))
            if rows != hidden.shape[0]:  # not the plan's request: compute all
                return full(hidden)
            keep = hidden[min(skip, rows - 1):]  # at least one row, for the vocab size
            # pad to a multiple of ROW_BUCKET rows: few distinct GEMM shapes, so the CPU
            # build's oneDNN kernels (made per shape) are made once, not per request
            pad = -keep.shape[0] % ROW_BUCKET
            if pad:
                keep = torch.cat([keep, keep.new_zeros((pad, keep.shape[1]))])
            part = full(keep)[:keep.shape[0] - pad]
            if part.shape[0] == rows:
                return part
            out = part.new_zeros((rows, part.shape[-1]))
            out[rows - part.shape[0]:] = part
            return out

        model.compute_logits = compute_logits
        try:
            return original(self, hidden_states, num_scheduled_tokens)
        finally:
            del model.compute_logits

    _get_prompt_logprobs_dict._prefixopt_trim = True  # type: ignore[attr-defined]
    runner_cls._get_prompt_logprobs_dict = _get_prompt_logprobs_dict
    return True


def _plan(runner: Any, num_scheduled_tokens: dict[str, int]) -> list[tuple[int, int]]:
    """(rows, rows to skip) per compute_logits call, in the order vLLM 0.32's
    `_get_prompt_logprobs_dict` makes them (same conditions, same arithmetic)."""
    plan = []
    for req_id in runner.num_prompt_logprobs:
        n = num_scheduled_tokens.get(req_id)
        req = runner.requests.get(req_id)
        if n is None or req is None or req.prompt_token_ids is None:
            continue
        start = req.num_computed_tokens
        remaining = len(req.prompt_token_ids) - start - 1
        rows = min(n, remaining)
        if rows <= 0:
            continue
        extra = req.sampling_params.extra_args if req.sampling_params is not None else None
        first = int((extra or {}).get(FIRST_ROW, 0))
        plan.append((rows, min(max(first - start, 0), rows)))
    return plan


def cloze_tokens(engine: Any, requests: Sequence[Request]
                 ) -> tuple[list[list[int]], list[tuple[int, int]], list[int]]:
    """The harness split: trailing whitespace of the context moves to the continuation; each
    prompt is encode(context + continuation), its continuation the tokens after
    len(encode(context)). Returns (prompt ids per choice, (request, choice) per prompt,
    continuation start per prompt)."""

    contexts, wholes, owner = [], [], []
    for i, r in enumerate(requests):
        if not r.continuations:
            raise PrefixoptError(f"{r.question.question_id}: cloze scoring needs choices")
        ctx = r.prompt.rstrip()
        contexts.append(ctx)
        for c, cont in enumerate(r.continuations):
            wholes.append(ctx + r.prompt[len(ctx):] + cont)
            owner.append((i, c))
    ctx_len = [len(ids) for ids in engine.encode(contexts)]  # (R,)
    whole_ids = engine.encode(wholes)  # (R * choices,)
    starts = [ctx_len[i] for i, _ in owner]
    for j, (i, _) in enumerate(owner):
        if len(whole_ids[j]) <= starts[j]:
            raise PrefixoptError(f"{requests[i].question.question_id}: empty continuation")
    return whole_ids, owner, starts


def cloze_batch(engine: Any, requests: Sequence[Request], prefix_cache: bool,
                trim: bool = True) -> tuple[list, list, Callable[[list], list[Response]]]:
    """(prompts, SamplingParams, finish): one prompt per choice, to go into the engine's ONE
    generate call with whatever else it scores; finish(outputs) re-runs the few prompts whose
    cache hit reached a row it reads (a second, small call) and returns per request the
    continuations' summed log-probs and prompt / cached / output token counts."""
    if not requests:
        return [], [], lambda outs: []
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    whole_ids, owner, starts = cloze_tokens(engine, requests)

    def params(read_cache: bool, start: int) -> Any:
        # prompt_logprobs=0: only the actual token's log-prob per position; the first row
        # read is start - 1 (it predicts the first continuation token)
        return SamplingParams(
            temperature=0.0, max_tokens=1, prompt_logprobs=0, detokenize=False,
            skip_reading_prefix_cache=not read_cache,
            extra_args={FIRST_ROW: start - 1} if trim else None,
        )

    prompts = [TokensPrompt(prompt_token_ids=ids) for ids in whole_ids]

    def finish(outs: list) -> list[Response]:
        outs = list(outs)
        # rows before num_cached_tokens carry no log-probs; a hit that covers the row that
        # predicts the first continuation token (row start-1) must be recomputed
        redo = [j for j, o in enumerate(outs) if (o.num_cached_tokens or 0) > starts[j] - 1]
        if redo:
            again = engine.llm.generate([prompts[j] for j in redo],
                                        [params(False, starts[j]) for j in redo], use_tqdm=False)
            for j, o in zip(redo, again, strict=True):
                cached = outs[j].num_cached_tokens
                outs[j] = o
                o.num_cached_tokens = cached  # what the first pass found; we paid for both
        engine.last_cloze_stats = {"prompts": len(prompts), "rerun": len(redo)}
        responses = [Response() for _ in requests]
        lls: list[list[float]] = [[] for _ in requests]
        for j, ((i, _), out) in enumerate(zip(owner, outs, strict=True)):
            ids = whole_ids[j]
            plp = out.prompt_logprobs  # [None, {tok: Logprob}, ...], one per prompt position
            lls[i].append(sum(plp[p][ids[p]].logprob for p in range(starts[j], len(ids))))
            resp = responses[i]
            resp.prompt_tokens += len(ids)
            resp.cached_tokens += out.num_cached_tokens or 0
            resp.output_tokens += len(out.outputs[0].token_ids)
        for resp, ll in zip(responses, lls, strict=True):
            resp.logprobs = tuple(ll)
        return responses

    return prompts, [params(prefix_cache, s) for s in starts], finish
