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

# Used when no people table exists yet (prefixopt setup builds it).
FALLBACK_NAMES = ("Albert Einstein", "Marie Curie", "Isaac Newton", "Leonardo da Vinci",
                  "William Shakespeare", "Aristotle", "Charles Darwin", "Ada Lovelace",
                  "Galileo Galilei", "Nikola Tesla", "Confucius", "Cleopatra",
                  "Wolfgang Amadeus Mozart", "Napoleon", "Jane Austen", "Alan Turing")


def people_names(k: int, people_path: str | None = None) -> tuple[list[str], str]:
    """K real names: the top of the people table by row order when present, else the list."""
    from prefixopt import people as people_mod

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
    data_dir: str | None = None,
    people_path: str | None = None,
    seed: int = 0,
    progress: Callable[[str], None] = lambda step: None,
) -> dict[str, Any]:
    """Build the engine once, time (a)-(d) on the same K x B prompts, return the summary."""
    from prefixopt import prompts
    from prefixopt import scoring as scoring_mod
    from prefixopt.benchmarks import default_split, load_split
    from prefixopt.engine import build_engine
    from prefixopt.prompts import persona

    t_all = time.perf_counter()
    mode = scoring_mod.resolve_scoring(benchmark, scoring)
    rng = np.random.default_rng(seed)
    pool = load_split(benchmark, default_split(benchmark, "train"), data_dir=data_dir)
    questions = [pool[i] for i in rng.choice(len(pool), size=min(b, len(pool)), replace=False)]
    fewshot = prompts.fewshot_examples(benchmark, num_fewshot, seed, data_dir,
                                       [q.question_id for q in pool]) if num_fewshot else []
    names, names_source = people_names(k, people_path)
    heads = [(i, persona("You are {name}.", n)) for i, n in enumerate(names)]

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
    c_s = 0.0
    for i in range(len(heads)):
        c_s += timed_run(requests[i * len(questions):(i + 1) * len(questions)])[0]

    progress(f"(d) transformers, one request at a time, {sequential_subset} prompts")
    step = max(len(requests) // max(sequential_subset, 1), 1)
    subset = list(range(0, len(requests), step))[:sequential_subset]  # spread over people
    sub_tokens = engine.prompt_token_ids([requests[i] for i in subset], mode)
    d_sub_s = sequential_reference(engine.model, mode, max_tokens, sub_tokens,
                                   engine_cfg.dtype)
    d_s = d_sub_s / len(subset) * len(requests)  # extrapolated to K*B prompts

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
