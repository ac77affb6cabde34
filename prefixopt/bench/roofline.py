"""This machine's own limit, for `prefixopt bench`: the matrix-product peak measured with
torch.matmul at the model's own weight shapes, in the run's dtype and the engine's thread count;
the FLOP the engine does per computed token from the model's config (attention included); and
`roofline_fraction` = achieved model FLOP/s over that peak. torch is imported only to measure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def model_config(model_path: str) -> dict[str, Any]:
    """The model's config.json (a local folder: what the engine loaded)."""
    return json.loads((Path(model_path) / "config.json").read_text(encoding="utf-8"))


def weight_shapes(cfg: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(in, out) of every matrix product one token goes through in one decoder layer, and the
    LM head: a Llama-style block (q, k, v, o projections; gate, up, down)."""
    h, inter = int(cfg["hidden_size"]), int(cfg["intermediate_size"])
    heads = int(cfg["num_attention_heads"])
    hd = int(cfg.get("head_dim") or h // heads)
    kv = int(cfg.get("num_key_value_heads") or heads)
    return {"q": (h, heads * hd), "kv": (h, 2 * kv * hd), "o": (heads * hd, h),
            "gate_up": (h, 2 * inter), "down": (inter, h), "lm_head": (h, int(cfg["vocab_size"]))}


def engine_flop(cfg: dict[str, Any], prompt_tokens: Sequence[int], cached_tokens: Sequence[int],
                lm_head_positions: int) -> float:
    """FLOP the engine does for these prompts: per computed token 2 x the layer weights, plus
    attention (QK^T and AV over every position up to it: 4 x heads x head_dim per position per
    layer), plus the LM head at `lm_head_positions` positions (every computed prompt position
    under prompt_logprobs, one per sequence otherwise)."""
    shapes = weight_shapes(cfg)
    layers = int(cfg["num_hidden_layers"])
    heads = int(cfg["num_attention_heads"])
    hd = int(cfg.get("head_dim") or int(cfg["hidden_size"]) // heads)
    per_token = 2 * sum(i * o for name, (i, o) in shapes.items() if name != "lm_head")
    computed = attended = 0
    for n, c in zip(prompt_tokens, cached_tokens, strict=True):
        computed += n - c
        attended += (n * (n + 1) - c * (c + 1)) // 2  # positions c..n-1 attend to p+1 each
    h, vocab = shapes["lm_head"]
    return float(layers * (per_token * computed + 4 * heads * hd * attended)
                 + 2 * h * vocab * lm_head_positions)


def gemm_peak(cfg: dict[str, Any], dtype: str, threads: int | None = None, tokens: int = 2048,
              repeats: int = 5) -> dict[str, Any]:
    """torch.matmul (tokens x in) @ (in x out) at each of the model's weight shapes, median of
    `repeats` after a warm-up; the peak is the best shape's GFLOP/s. threads: None = torch's
    current count (in the in-process CPU engine's process: the threads the engine set)."""
    import torch

    before = torch.get_num_threads()
    threads = threads or before
    torch.set_num_threads(threads)
    dt = {"float32": torch.float32, "bfloat16": torch.bfloat16,
          "float16": torch.float16}.get(dtype, torch.float32)
    by_shape = {}
    try:
        for name, (i, o) in weight_shapes(cfg).items():
            a = torch.randn(tokens, i, dtype=dt)
            b = torch.randn(i, o, dtype=dt)
            torch.matmul(a, b)  # warm-up: allocations, kernel selection
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                torch.matmul(a, b)
                times.append(time.perf_counter() - t)
            by_shape[f"{name} {tokens}x{i}x{o}"] = 2 * tokens * i * o / sorted(times)[
                len(times) // 2] / 1e9
    finally:
        torch.set_num_threads(before)
    return {"gemm_peak_gflops": max(by_shape.values()), "gemm_gflops_by_shape": by_shape,
            "gemm_dtype": str(dt).removeprefix("torch."), "gemm_threads": threads}


def roofline(cfg: dict[str, Any], peak_gflops: float, seconds: float,
             prompt_tokens: Sequence[int], cached_tokens: Sequence[int],
             lm_head_positions: int) -> dict[str, float]:
    """Achieved model GFLOP/s of one timed call and its fraction of the measured peak."""
    flop = engine_flop(cfg, prompt_tokens, cached_tokens, lm_head_positions)
    computed = sum(prompt_tokens) - sum(cached_tokens)
    gflops = flop / seconds / 1e9
    return {"model_gflops": gflops, "model_gflop_per_computed_token": flop / max(computed, 1) / 1e9,
            "roofline_fraction": gflops / peak_gflops}
