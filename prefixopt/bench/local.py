"""`prefixopt bench`: on one K x B prompt set (real questions, real names), time (a) ONE
batched call with the prefix cache, (b) the same with the cache off (same engine, every request
skips reading the cache), (c) one call per person, (d) one request at a time through
transformers (a subset, extrapolated), plus host-side time (render + judge) as a share of (a).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prefixopt.config import EngineConfig
from prefixopt.records import NO_PERSON, Request
from prefixopt import people as people_mod
from prefixopt.ask import prompts
from prefixopt.ask import scoring as scoring_mod
from prefixopt.benchmarks import default_split, load_split
from prefixopt.engines.vllm_engine import build_engine

# Used when no people table exists yet (prefixopt setup builds it).
FALLBACK_NAMES = ("Albert Einstein", "Marie Curie", "Isaac Newton", "Leonardo da Vinci",
                  "William Shakespeare", "Aristotle", "Charles Darwin", "Ada Lovelace",
                  "Galileo Galilei", "Nikola Tesla", "Confucius", "Cleopatra",
                  "Wolfgang Amadeus Mozart", "Napoleon", "Jane Austen", "Alan Turing")


def people_names(k: int, people_path: str | None = None) -> tuple[list[str], str]:
    """K real names: the top of the people table by row order when present, else the list."""

    path = Path(people_path) if people_path else Path(people_mod.DEFAULT_PEOPLE_PATH)
    if path.is_file():
        names = people_mod.load_people(path).names[:k]
        source = str(path)
    else:
        names, source = list(FALLBACK_NAMES[:k]), "built-in list"
    while len(names) < k:  # more people asked than known: number the extra copies
        names.append(f"{names[len(names) % max(len(names), 1)]} ({len(names)})")
    return names, source


def shareable_tokens(token_lists: Sequence[Sequence[int]], block: int) -> tuple[int, int]:
    """Prompt tokens that an ideal cache could serve: per prompt, the longest common prefix
    with ANY earlier prompt of the batch (a token trie). Returns (token-level, block-aligned:
    what vLLM can hit, whole blocks and never the last prompt token)."""
    root: dict = {}
    total = aligned = 0
    for ids in token_lists:
        node, depth, matching = root, 0, True
        for tok in ids:
            if matching and tok in node:
                depth += 1
            else:
                matching = False
            node = node.setdefault(tok, {})
        total += depth
        aligned += (min(depth, len(ids) - 1) // block) * block
    return total, aligned


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


def bench_inputs(benchmark: str, scoring: str | None, num_fewshot: int, k: int, b: int,
                 data_dir: str | None, people_path: str | None, seed: int
                 ) -> tuple[str, list, list, list, list[tuple[int, str]], str]:
    """(mode, train pool, B questions, few-shot examples, K persona heads, names source): the
    prompt set every bench way times (in-process and through an endpoint)."""

    mode = scoring_mod.resolve_scoring(benchmark, scoring)
    rng = np.random.default_rng(seed)
    pool = load_split(benchmark, default_split(benchmark, "train"), data_dir=data_dir)
    questions = [pool[i] for i in rng.choice(len(pool), size=min(b, len(pool)), replace=False)]
    # examples from the few-shot split, never one of the B timed questions (excluding the whole
    # pool would leave ARC and GSM8K, whose few-shot split IS the pool, with none)
    fewshot = prompts.fewshot_examples(benchmark, num_fewshot, seed, data_dir,
                                       exclude=questions) if num_fewshot else []
    names, names_source = people_names(k, people_path)
    heads = [(i, prompts.persona("You are {name}.", n)) for i, n in enumerate(names)]
    return mode, pool, questions, fewshot, heads, names_source


def run_bench(
    engine_cfg: EngineConfig,
    *,
    benchmark: str = "arc_easy",
    scoring: str | None = None,
    prompt_format: str = "chat",
    num_fewshot: int = 0,
    k: int = 16,
    b: int = 32,
    sequential_subset: int = 16,
    batched_subset: int | None = None,
    data_dir: str | None = None,
    people_path: str | None = None,
    seed: int = 0,
    progress: Callable[[str], None] = lambda step: None,
) -> dict[str, Any]:
    """Build the engine once, time (a)-(d) on the same K x B prompts, return the summary."""

    t_all = time.perf_counter()
    mode, pool, questions, fewshot, heads, names_source = bench_inputs(
        benchmark, scoring, num_fewshot, k, b, data_dir, people_path, seed)

    progress("engine start")
    t = time.perf_counter()
    engine = build_engine(engine_cfg)
    engine_start_s = time.perf_counter() - t

    def render() -> list[Request]:
        return prompts.build_grid(engine, heads, questions, scoring=mode,
                                  prompt_format=prompt_format, fewshot=fewshot)

    render()  # warm the template / tokenizer caches
    # warm-up call on other questions so (a) is not charged for first-call overhead
    warm = prompts.build_grid(engine, [(NO_PERSON, None)], pool[-2:], scoring=mode,
                              prompt_format=prompt_format)
    max_tokens, stop = (scoring_mod.generate_settings(warm) if mode == "generate" else (1, ()))
    engine.run(warm, mode, max_tokens=max_tokens, stop=stop)

    def timed_run(reqs: Sequence[Request], cache: bool = True) -> tuple[float, list]:
        t0 = time.perf_counter()
        out = engine.run(reqs, mode, max_tokens=max_tokens, stop=stop, prefix_cache=cache)
        return time.perf_counter() - t0, out

    # (a) one batched call, cache on, cold cache; host time = render + judge around it
    progress("(a) one batched call, prefix cache on")
    t = time.perf_counter()
    requests = render()  # (K*B,) person-major
    render_s = time.perf_counter() - t
    engine.reset_prefix_cache()
    a_s, responses = timed_run(requests)
    t = time.perf_counter()
    answers = [scoring_mod.judge(r, x, mode) for r, x in zip(requests, responses, strict=True)]
    judge_s = time.perf_counter() - t
    prompt_tokens = sum(x.prompt_tokens for x in responses)
    cached_tokens = sum(x.cached_tokens for x in responses)
    t = time.perf_counter()
    token_lists = engine.prompt_token_ids(requests, mode)  # the tokenisation run() does
    tokenize_s = time.perf_counter() - t
    shareable, shareable_blocks = shareable_tokens(token_lists, engine.block_size)

    progress("(b) one batched call, prefix cache off")
    engine.reset_prefix_cache()
    b_s, responses_b = timed_run(requests, cache=False)
    progress("(c) one call per person")
    engine.reset_prefix_cache()
    c_s, c_computed = 0.0, 0
    for i in range(len(heads)):
        secs, out_c = timed_run(requests[i * len(questions):(i + 1) * len(questions)])
        c_s += secs
        c_computed += sum(x.prompt_tokens - x.cached_tokens for x in out_c)

    progress(f"(d) transformers, one request at a time, {sequential_subset} prompts")
    step = max(len(requests) // max(sequential_subset, 1), 1)
    subset = list(range(0, len(requests), step))[:sequential_subset]  # spread over people
    sub_tokens = engine.prompt_token_ids([requests[i] for i in subset], mode)
    # the references run in the engine's resolved dtype (auto -> float32 on a CPU without
    # native bf16, where a bf16 matmul is ~50x slower)
    d_sub_s = sequential_reference(engine.model, mode, max_tokens, sub_tokens, engine.dtype)
    d_s = d_sub_s / len(subset) * len(requests)  # extrapolated to K*B prompts

    n_e = len(token_lists) if not batched_subset else min(batched_subset, len(token_lists))
    progress(f"(e) transformers, padded batches of 16, {n_e} engine prompts")
    e_idx = list(range(0, len(token_lists), max(len(token_lists) // n_e, 1)))[:n_e]
    e_starts = engine.cloze_tokens(requests)[2] if mode == "cloze" else None
    e_sub_s = batched_reference(engine.model, mode, max_tokens,
                                [token_lists[j] for j in e_idx],
                                [e_starts[j] for j in e_idx] if e_starts else None,
                                engine.dtype)
    e_s = e_sub_s / len(e_idx) * len(token_lists)
    all_tokens = sum(map(len, token_lists))

    host_s = render_s + judge_s
    return {
        "benchmark": benchmark, "scoring": mode, "prompt_format": prompt_format,
        "num_fewshot": num_fewshot, "k": len(heads), "b": len(questions),
        "num_prompts": len(requests), "engine_prompts": len(token_lists),
        "names_source": names_source, **engine.info(),
        "engine_start_s": engine_start_s,
        "batched_cache_s": a_s, "batched_nocache_s": b_s, "per_person_s": c_s,
        "sequential_s": d_s, "sequential_extrapolated": True,
        "sequential_measured_prompts": len(subset), "sequential_measured_s": d_sub_s,
        "speedup_vs_sequential": d_s / a_s, "speedup_cache": b_s / a_s,
        "speedup_vs_per_person": c_s / a_s,
        "batched_hf_s": e_s, "batched_hf_extrapolated": len(e_idx) < len(token_lists),
        "batched_hf_measured_prompts": len(e_idx), "batched_hf_measured_s": e_sub_s,
        "batched_hf_batch": 16, "speedup_vs_batched_hf": e_s / a_s,
        "ratio_to_batched_hf": a_s / e_s,
        # computed prompt tokens (not served from the prefix cache) per second, per way
        "computed_tok_per_s": {
            "batched_cache": (prompt_tokens - cached_tokens) / a_s,
            "batched_nocache": sum(x.prompt_tokens - x.cached_tokens for x in responses_b) / b_s,
            "per_person": c_computed / c_s,
            "sequential_hf": sum(map(len, sub_tokens)) / d_sub_s,
            "batched_hf": sum(len(token_lists[j]) for j in e_idx) / e_sub_s,
        },
        "engine_prompt_tokens": all_tokens,
        "render_s": render_s, "judge_s": judge_s, "host_s": host_s,
        "host_share": host_s / a_s,
        # tokenising happens inside engine.run (counted in (a)); shown for transparency
        "tokenize_s": tokenize_s, "host_share_with_tokenize": (host_s + tokenize_s) / a_s,
        "prompt_tokens": prompt_tokens, "cached_tokens": cached_tokens,
        "cache_hit_rate": cached_tokens / max(prompt_tokens, 1),
        "shareable_tokens": shareable, "shareable_block_tokens": shareable_blocks,
        "block_size": engine.block_size,
        "cache_hit_of_shareable": cached_tokens / max(shareable, 1),
        "cache_hit_of_block_shareable": cached_tokens / max(shareable_blocks, 1),
        "nocache_cached_tokens": sum(x.cached_tokens for x in responses_b),
        "prompts_per_s": len(requests) / a_s,
        "accuracy": float(np.mean([a.correct for a in answers])),
        "total_s": time.perf_counter() - t_all,
    }
