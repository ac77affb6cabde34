"""`prefixopt bench --engine openai`: one K x B iteration through an endpoint, and how much of
it is the client's own work. The server computes in another process (or machine); everything
this process does (render, tokenise, JSON, HTTP, judge) is its CPU time, measured with
`time.process_time` around each step. client overhead = that CPU time / the iteration's wall
time: an upper bound (client work that overlaps the server's compute costs no wall time).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from prefixopt.ask import prompts
from prefixopt.ask import scoring as scoring_mod
from prefixopt.bench.local import bench_inputs
from prefixopt.config import EngineConfig
from prefixopt.engines.openai_client import Http, post_all
from prefixopt.engines.openai_engine import build_openai_engine
from prefixopt.records import NO_PERSON


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, wall s, this process's CPU s)."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def run_remote_bench(cfg: EngineConfig, *, benchmark: str = "arc_easy",
                     scoring: str | None = None, prompt_format: str = "chat",
                     num_fewshot: int = 0, k: int = 16, b: int = 32, repeats: int = 3,
                     data_dir: str | None = None, people_path: str | None = None, seed: int = 0,
                     progress: Callable[[str], None] = lambda step: None) -> dict[str, Any]:
    """Build the remote engine, warm it, then time `repeats` iterations of the same K x B grid
    (the server's prefix cache reset before each when it offers /reset_prefix_cache)."""

    mode, pool, questions, fewshot, heads, _ = bench_inputs(
        benchmark, scoring, num_fewshot, k, b, data_dir, people_path, seed)
    progress("connect")
    engine, start_s, _ = _timed(lambda: build_openai_engine(cfg))
    warm = prompts.build_grid(engine, [(NO_PERSON, None)], pool[-2:], scoring=mode,
                              prompt_format=prompt_format)
    max_tokens, stop = scoring_mod.generate_settings(warm) if mode == "generate" else (1, ())
    engine.run(warm, mode, max_tokens=max_tokens, stop=stop)

    def reset() -> bool:
        try:
            root = engine.http.base_url.rstrip("/").removesuffix("/v1")
            post_all(Http(root, engine.http.key, max_retries=0), "/reset_prefix_cache", [{}])
            return True
        except Exception:  # noqa: BLE001 - not a dev-mode vLLM server
            return False

    rows = []
    for i in range(repeats):
        progress(f"iteration {i + 1}/{repeats}")
        cache_reset = reset()
        reqs, render_w, render_c = _timed(lambda: prompts.build_grid(
            engine, heads, questions, scoring=mode, prompt_format=prompt_format,
            fewshot=fewshot))
        resps, run_w, run_c = _timed(lambda reqs=reqs: engine.run(
            reqs, mode, max_tokens=max_tokens, stop=stop))
        _, judge_w, judge_c = _timed(lambda reqs=reqs, resps=resps: [
            scoring_mod.judge(r, x, mode) for r, x in zip(reqs, resps, strict=True)])
        wall = render_w + run_w + judge_w
        rows.append({"iteration_s": wall, "engine_run_s": run_w, "client_cpu_s":
                     render_c + run_c + judge_c, "client_cpu_in_run_s": run_c,
                     "render_s": render_w, "judge_s": judge_w, "cache_reset": cache_reset,
                     "prompt_tokens": sum(x.prompt_tokens for x in resps),
                     "cached_tokens": sum(x.cached_tokens for x in resps)})
    med = {key: float(np.median([r[key] for r in rows])) for key in
           ("iteration_s", "engine_run_s", "client_cpu_s", "client_cpu_in_run_s", "render_s",
            "judge_s")}
    return {"benchmark": benchmark, "scoring": mode, "prompt_format": prompt_format,
            "num_fewshot": num_fewshot, "k": len(heads), "b": len(questions),
            "num_prompts": len(heads) * len(questions), **engine.info(),
            "engine_start_s": start_s, "max_concurrency": cfg.max_concurrency,
            "repeats": rows, **med,
            "client_overhead_share": med["client_cpu_s"] / med["iteration_s"],
            "prompts_per_s": len(heads) * len(questions) / med["iteration_s"]}
