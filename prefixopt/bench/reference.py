"""The references `prefixopt bench` holds the engine against: plain transformers one request
at a time (d), and in padded batches of 16 ordered longest first as lm-evaluation-harness's HF
backend does (e), both in the engine's resolved dtype and extrapolated to the whole prompt set.
torch and transformers are imported only when a reference runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefixopt.bench.local import Timed


def sequential_reference(model_path: str, mode: str, max_tokens: int,
                         token_lists: Sequence[Sequence[int]], dtype: str = "auto") -> float:
    """(d) The reference homework's way: transformers, one request at a time, no cache shared
    between requests. cloze: one forward pass per choice prompt; letter/generate: generate().
    Returns the wall time in seconds."""
    import torch
    from transformers import AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"  # the device vLLM ran (a)-(c) on
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device).eval()
    t = time.perf_counter()
    with torch.inference_mode():
        if mode == "cloze":
            for ids in token_lists:  # one prompt per choice
                model(torch.tensor([list(ids)], device=device))
        else:
            for ids in token_lists:
                model.generate(torch.tensor([list(ids)], device=device), max_new_tokens=max_tokens,
                               do_sample=False, output_scores=(mode == "letter"),
                               return_dict_in_generate=True, pad_token_id=0)
    return time.perf_counter() - t


def batched_reference(model_path: str, mode: str, max_tokens: int,
                      token_lists: Sequence[Sequence[int]], starts: Sequence[int] | None = None,
                      dtype: str = "float32", batch: int = 16) -> float:
    """(e) Plain transformers, batched: padded batches of `batch` prompts, longest first (as
    lm-evaluation-harness's HF backend orders them), no cache shared between batches.
    cloze: one forward per batch, log-softmax, each continuation's summed log-prob (starts);
    letter: one forward per batch, the last position's log-probs; generate: greedy
    `generate(max_new_tokens)` with left padding. Returns the wall time in seconds."""
    import torch
    from transformers import AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device).eval()
    order = sorted(range(len(token_lists)), key=lambda j: -len(token_lists[j]))
    t = time.perf_counter()
    with torch.inference_mode():
        for b0 in range(0, len(order), batch):
            idx = order[b0:b0 + batch]
            width = max(len(token_lists[j]) for j in idx)
            ids = torch.zeros((len(idx), width), dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for r, j in enumerate(idx):
                n = len(token_lists[j])
                cols = slice(width - n, width) if mode != "cloze" else slice(0, n)
                ids[r, cols] = torch.tensor(list(token_lists[j]))
                mask[r, cols] = 1
            ids, mask = ids.to(device), mask.to(device)
            if mode == "generate":
                model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_tokens,
                               do_sample=False, pad_token_id=0)
                continue
            logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(),
                                     dim=-1)
            if mode == "cloze" and starts is not None:
                for r, j in enumerate(idx):
                    toks = list(token_lists[j])
                    pos = torch.arange(starts[j], len(toks), device=device)
                    logp[r, pos - 1, torch.tensor(toks[starts[j]:], device=device)].sum().item()
            else:
                logp[:, -1].max(dim=-1).values.sum().item()
    return time.perf_counter() - t


def measure_references(timed: Timed, sequential_subset: int, batched_subset: int | None,
                       progress: Callable[[str], None]) -> dict[str, Any]:
    """(d) transformers one request at a time on a subset spread over the people, and (e)
    transformers in padded batches of 16; both extrapolated to the whole prompt set and run in
    the engine's resolved dtype (auto -> float32 on a CPU without native bf16, where a bf16
    matmul is ~50x slower)."""
    engine, requests, mode = timed.engine, timed.requests, timed.mode
    progress(f"(d) transformers, one request at a time, {sequential_subset} prompts")
    step = max(len(requests) // max(sequential_subset, 1), 1)
    subset = list(range(0, len(requests), step))[:sequential_subset]  # spread over people
    sub_tokens = engine.prompt_token_ids([requests[i] for i in subset], mode)
    d_sub_s = sequential_reference(engine.model, mode, timed.max_tokens, sub_tokens,
                                   engine.dtype)
    token_lists = timed.token_lists  # tokenised once, by measure_engine
    n_e = len(token_lists) if not batched_subset else min(batched_subset, len(token_lists))
    progress(f"(e) transformers, padded batches of 16, {n_e} engine prompts")
    e_idx = list(range(0, len(token_lists), max(len(token_lists) // n_e, 1)))[:n_e]
    e_starts = timed.cloze[2] if timed.cloze is not None else None
    e_sub_s = batched_reference(engine.model, mode, timed.max_tokens,
                                [token_lists[j] for j in e_idx],
                                [e_starts[j] for j in e_idx] if e_starts else None,
                                engine.dtype)
    return {
        "sequential_s": d_sub_s / len(subset) * len(requests), "sequential_extrapolated": True,
        "sequential_measured_prompts": len(subset), "sequential_measured_s": d_sub_s,
        "batched_hf_s": e_sub_s / len(e_idx) * len(token_lists),
        "batched_hf_extrapolated": len(e_idx) < len(token_lists),
        "batched_hf_measured_prompts": len(e_idx), "batched_hf_measured_s": e_sub_s,
        "batched_hf_batch": 16,
        "_sequential_hf_tok_per_s": sum(map(len, sub_tokens)) / d_sub_s,
        "_batched_hf_tok_per_s": sum(len(token_lists[j]) for j in e_idx) / e_sub_s,
    }
