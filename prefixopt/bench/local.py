"""`prefixopt bench`: on one K x B prompt set (real questions, real names), time (a) ONE
batched call with the prefix cache, (b) the same with the cache off (same engine, every request
skips reading the cache), (c) one call per person, (d) one request at a time through
transformers (a subset, extrapolated), plus host-side time (render + judge) as a share of (a).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prefixopt import people as people_mod
from prefixopt.ask import prompts
from prefixopt.ask import scoring as scoring_mod
from prefixopt.bench import roofline
from prefixopt.bench.reference import measure_references
from prefixopt.benchmarks import default_split, load_split
from prefixopt.config import EngineConfig
from prefixopt.engines.vllm_engine import build_engine
from prefixopt.records import NO_PERSON, Request

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


@dataclass
class Timed:
    """One engine, its K x B prompt set and how to time a call on it."""

    engine: Any
    mode: str
    requests: list[Request]  # (K*B,) person-major
    k: int
    b: int
    max_tokens: int
    stop: tuple
    # the exact token lists run() sends (cloze: one per choice) and cloze's (ids, owner,
    # starts): tokenised once, by measure_engine after (a), then read by limit and references
    token_lists: list[list[int]] = field(default_factory=list)
    cloze: tuple | None = None

    def run(self, reqs: Sequence[Request], cache: bool = True) -> tuple[float, list]:
        t0 = time.perf_counter()
        out = self.engine.run(reqs, self.mode, max_tokens=self.max_tokens, stop=self.stop,
                              prefix_cache=cache)
        return time.perf_counter() - t0, out


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
    """Build the engine once, time (a)-(e) on the same K x B prompts, return the summary."""

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

    t = time.perf_counter()
    requests = render()  # (K*B,) person-major
    render_s = time.perf_counter() - t
    timed = Timed(engine, mode, requests, len(heads), len(questions), max_tokens, tuple(stop))
    out = measure_engine(timed, render_s, progress)
    out.update(limit(timed, out, progress))
    out.update(measure_references(timed, sequential_subset, batched_subset, progress))
    a_s = out["batched_cache_s"]
    out["computed_tok_per_s"]["batched_hf"] = out.pop("_batched_hf_tok_per_s")
    out["computed_tok_per_s"]["sequential_hf"] = out.pop("_sequential_hf_tok_per_s")
    out.update({
        "speedup_vs_sequential": out["sequential_s"] / a_s,
        "speedup_vs_batched_hf": out["batched_hf_s"] / a_s,
        "ratio_to_batched_hf": a_s / out["batched_hf_s"],
    })
    return {"benchmark": benchmark, "scoring": mode, "prompt_format": prompt_format,
            "num_fewshot": num_fewshot, "k": len(heads), "b": len(questions),
            "num_prompts": len(requests), "names_source": names_source, **engine.info(),
            "engine_start_s": engine_start_s, **out,
            "total_s": time.perf_counter() - t_all}


def measure_engine(timed: Timed, render_s: float, progress: Callable[[str], None]
                   ) -> dict[str, Any]:
    """(a) one batched call with the prefix cache (cold), host time around it; (b) the same
    with the cache off; (c) one call per person."""
    engine, requests, mode = timed.engine, timed.requests, timed.mode
    progress("(a) one batched call, prefix cache on")
    engine.reset_prefix_cache()
    a_s, responses = timed.run(requests)
    t = time.perf_counter()
    answers = [scoring_mod.judge(r, x, mode) for r, x in zip(requests, responses, strict=True)]
    judge_s = time.perf_counter() - t
    prompt_tokens = sum(x.prompt_tokens for x in responses)
    cached_tokens = sum(x.cached_tokens for x in responses)
    t = time.perf_counter()
    token_lists = engine.prompt_token_ids(requests, mode)  # the tokenisation run() does
    tokenize_s = time.perf_counter() - t
    timed.token_lists = token_lists
    timed.cloze = engine.cloze_tokens(requests) if mode == "cloze" else None
    shareable, shareable_blocks = shareable_tokens(token_lists, engine.block_size)

    progress("(b) one batched call, prefix cache off")
    engine.reset_prefix_cache()
    b_s, responses_b = timed.run(requests, cache=False)
    progress("(c) one call per person")
    engine.reset_prefix_cache()
    c_s, c_computed = 0.0, 0
    for i in range(timed.k):
        secs, out_c = timed.run(requests[i * timed.b:(i + 1) * timed.b])
        c_s += secs
        c_computed += sum(x.prompt_tokens - x.cached_tokens for x in out_c)
    host_s = render_s + judge_s
    return {
        "engine_prompts": len(token_lists),
        "batched_cache_s": a_s, "batched_nocache_s": b_s, "per_person_s": c_s,
        "speedup_cache": b_s / a_s, "speedup_vs_per_person": c_s / a_s,
        # computed prompt tokens (not served from the prefix cache) per second, per way
        "computed_tok_per_s": {
            "batched_cache": (prompt_tokens - cached_tokens) / a_s,
            "batched_nocache": sum(x.prompt_tokens - x.cached_tokens for x in responses_b) / b_s,
            "per_person": c_computed / c_s,
        },
        "engine_prompt_tokens": sum(map(len, token_lists)),
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
        "question_evals_per_s": len(requests) / a_s,  # person x question pairs scored per s
        "_prompt_tokens": [x.prompt_tokens for x in responses],
        "_cached_tokens": [x.cached_tokens for x in responses],
    }


def limit(timed: Timed, out: dict[str, Any], progress: Callable[[str], None]) -> dict[str, Any]:
    """The machine's matrix-product peak at the model's shapes (after the engine started, so in
    its thread setting) and (a)'s model FLOP/s as a fraction of it (bench/roofline.py)."""
    progress("matrix-product peak at the model's shapes")
    cfg = roofline.model_config(timed.engine.model)
    peak = roofline.gemm_peak(cfg, timed.engine.dtype)
    prompt, cached = out.pop("_prompt_tokens"), out.pop("_cached_tokens")
    if timed.mode == "cloze":  # one engine prompt per choice; a request's cached tokens are
        # counted per request, so spread evenly over its choices (attention's share only)
        ids, owner, starts = timed.cloze
        per_request = np.bincount([r for r, _ in owner], minlength=len(prompt))  # (R,)
        cached = [cached[r] // per_request[r] for r, _ in owner]
        prompt = [len(x) for x in ids]
        # the LM head runs on the continuation rows only (vllm_cloze's trim)
        head_rows = sum(n - s for n, s in zip(prompt, starts, strict=True))
    else:  # one row per sequence, and one per generated token
        head_rows = len(prompt) * timed.max_tokens
    return {**peak, **roofline.roofline(cfg, peak["gemm_peak_gflops"], out["batched_cache_s"],
                                        prompt, cached, head_rows)}


