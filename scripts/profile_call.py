"""Profile one batched engine call end to end (docs/engine_speed.md "Where the time goes").

Builds the in-process vLLM engine once, renders bench's K x B prompt set (real questions, real
names), makes a warm-up call, then runs the same call under torch.profiler (the engine core runs
in this process on CPU, so every op is seen) and prints the ops by self CPU time, grouped into
the buckets the issue names (GEMMs, attention, LM head + log-softmax, sampling, host).

    python scripts/profile_call.py --scoring cloze -k 8 -b 8            # a quickstart iteration
    python scripts/profile_call.py --benchmark hellaswag --prompt-format harness -k 1 -b 200
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

from torch.profiler import ProfilerActivity, profile

from prefixopt.ask import prompts
from prefixopt.bench.local import bench_inputs
from prefixopt.config import EngineConfig
from prefixopt.engines.vllm_engine import build_engine
from prefixopt.records import NO_PERSON

# op-name fragments -> bucket, first match wins (names as torch.profiler reports them on CPU)
BUCKETS = (
    ("lm head / log-softmax / rank", ("log_softmax", "logsumexp", "gather", "topk", "argmax",
                                      "compute_logits", "sort")),
    ("attention", ("attention", "attn", "paged", "sdpa", "flash", "reshape_and_cache")),
    ("gemm (linear / matmul)", ("linear", "addmm", "mm", "matmul", "onednn", "gemm", "bmm")),
    ("norm / activation / rope", ("rms", "norm", "silu", "act", "rotary", "rope", "mul", "add",
                                  "gelu")),
    ("copies / indexing", ("copy", "index", "cat", "slice", "select", "to", "view", "empty",
                           "zero", "fill", "clone", "contiguous")),
)


def bucket(name: str) -> str:
    low = name.lower()
    for label, keys in BUCKETS:
        if any(k in low for k in keys):
            return label
    return "other ops"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmark", default="arc_easy")
    ap.add_argument("--scoring", default=None)
    ap.add_argument("--prompt-format", default="chat")
    ap.add_argument("-k", type=int, default=8)
    ap.add_argument("-b", type=int, default=8)
    ap.add_argument("--no-cache", action="store_true", help="every request skips the cache")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--max-num-batched-tokens", type=int, default=None,
                    help="vLLM's tokens per step (its CPU default: 4096)")
    ap.add_argument("--no-profile", action="store_true", help="time the call only")
    args = ap.parse_args()

    mode, pool, questions, fewshot, heads, _ = bench_inputs(
        args.benchmark, args.scoring, 0, args.k, args.b, None, None, 0)
    if args.k == 1:
        heads = [(NO_PERSON, None)]
    t = time.perf_counter()
    extra = ({"max_num_batched_tokens": args.max_num_batched_tokens}
             if args.max_num_batched_tokens else {})
    engine = build_engine(EngineConfig(), **extra)
    print(f"engine start {time.perf_counter() - t:.1f} s")

    def render():
        return prompts.build_grid(engine, heads, questions, scoring=mode,
                                  prompt_format=args.prompt_format, fewshot=fewshot)

    warm = prompts.build_grid(engine, [(NO_PERSON, None)], pool[-2:], scoring=mode,
                              prompt_format=args.prompt_format)
    engine.run(warm, mode, max_tokens=1)
    # a same-shaped warm call on other questions (seed 1): kernels made, cache not pre-filled
    _, _, other, _, _, _ = bench_inputs(args.benchmark, args.scoring, 0, args.k, args.b,
                                        None, None, 1)
    reqs = prompts.build_grid(engine, heads, other, scoring=mode,
                              prompt_format=args.prompt_format, fewshot=fewshot)
    t = time.perf_counter()
    engine.run(reqs, mode, max_tokens=1, prefix_cache=not args.no_cache)
    warm_s = time.perf_counter() - t
    if args.no_profile:
        reqs = render()
        t = time.perf_counter()
        out = engine.run(reqs, mode, max_tokens=1, prefix_cache=not args.no_cache)
        print(f"warm call {warm_s:.2f} s; timed call {time.perf_counter() - t:.2f} s, "
              f"{sum(r.prompt_tokens - r.cached_tokens for r in out)} computed tokens")
        return
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t_render = time.perf_counter()
        reqs = render()
        render_s = time.perf_counter() - t_render
        out = engine.run(reqs, mode, max_tokens=1, prefix_cache=not args.no_cache)
    wall = time.perf_counter() - t
    computed = sum(r.prompt_tokens - r.cached_tokens for r in out)
    prompt = sum(r.prompt_tokens for r in out)
    print(f"warm call {warm_s:.2f} s; profiled call {wall:.2f} s (profiler overhead included), "
          f"render {render_s:.3f} s, {len(reqs)} requests, {prompt} prompt tokens, "
          f"{computed} computed")
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1
    by_bucket: dict[str, float] = defaultdict(float)
    for e in events:
        by_bucket[bucket(e.key)] += e.self_cpu_time_total
    print("\nself CPU time by bucket (all threads' op time; the share is what matters):")
    for label, us in sorted(by_bucket.items(), key=lambda kv: -kv[1]):
        print(f"  {label:32s} {us / 1e6:8.2f} s  {100 * us / total:5.1f}%")
    print(f"\ntop {args.top} ops by self CPU time:")
    print(events.table(sort_by="self_cpu_time_total", row_limit=args.top, max_name_column_width=60))


if __name__ == "__main__":
    main()
