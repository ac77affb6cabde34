"""Time prefixopt's scoring paths against the raw vLLM calls they make and against plain
transformers (batched, padded batches of 16), in ONE process, on the same prompts.

    .venv/bin/python scripts/speed_check.py --benchmark hellaswag --split validation -n 200 \
        --mode cloze --prompt-format harness --ways prefixopt,raw_plp,raw,hf16 [--json]

--json carries prefixopt's cloze picks; --picks-against OLD.json counts how many agree.
ways: prefixopt (engine.run), notrim (engine.run, LM head on every row), raw_plp (one
llm.generate, prompt_logprobs=0, cache not read: the harness's way), raw (the same without
prompt log-probs: the arithmetic floor),
hf16 (transformers, padded batches of 16, longest first, the faster of float32/bfloat16 is
--hf-dtype), hf1 (transformers one prompt at a time). Engine options: --eager / --compiled,
--max-num-batched-tokens. Prints one line per way: seconds, computed prompt tokens, tokens/s.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def questions_for(benchmark: str, split: str, n: int, data_dir: str | None, seed: int = 0):
    """The same questions `prefixopt eval --num-questions n --seed seed` draws."""
    from prefixopt.benchmarks import load_split

    qs = load_split(benchmark, split, data_dir=data_dir)
    keep = np.sort(np.random.default_rng(seed).choice(len(qs), n, replace=False))
    return [qs[i] for i in keep]


def hf_batched(model_path: str, mode: str, token_lists, starts, dtype: str, batch: int,
               max_tokens: int = 1) -> tuple[float, int]:
    """Transformers in padded batches: bench's reference (e) on these prompts. Returns
    (seconds, computed prompt tokens)."""
    from prefixopt.bench.reference import batched_reference

    seconds = batched_reference(model_path, mode, max_tokens, token_lists, starts, dtype, batch)
    return seconds, sum(len(x) for x in token_lists)


def hf_one_at_a_time(model_path: str, mode: str, token_lists, dtype: str,
                     max_tokens: int = 1) -> float:
    from prefixopt.bench.reference import sequential_reference

    return sequential_reference(model_path, mode, max_tokens, token_lists, dtype)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--benchmark", default="hellaswag")
    ap.add_argument("--split", default="validation")
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--mode", default="cloze")
    ap.add_argument("--prompt-format", default="harness")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--ways", default="prefixopt,raw_plp,raw,hf16",
                    help="comma list; repeats allowed")
    ap.add_argument("--hf-dtype", default="float32")
    ap.add_argument("--eager", action="store_true", default=None,
                    help="eager (the CPU default for small jobs: resolved.vllm_eager)")
    ap.add_argument("--compiled", dest="eager", action="store_false", help="torch.compile")
    ap.add_argument("--max-num-batched-tokens", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--picks-against", default=None,
                    help="a previous --json output: say how many cloze picks agree with its")
    args = ap.parse_args()

    from prefixopt.ask import prompts
    from prefixopt.ask import scoring as scoring_mod
    from prefixopt.config import EngineConfig
    from prefixopt.engines.vllm_engine import build_engine
    from prefixopt.records import NO_PERSON

    qs = questions_for(args.benchmark, args.split, args.n, args.data_dir)
    res: dict = {"benchmark": args.benchmark, "n": args.n, "mode": args.mode}
    ways = args.ways.split(",")
    t = time.perf_counter()
    extra = {}
    if args.max_num_batched_tokens:
        extra["max_num_batched_tokens"] = args.max_num_batched_tokens
    cfg = EngineConfig(enforce_eager=args.eager)
    engine = build_engine(cfg, **extra) if extra else build_engine(cfg)
    res["engine_start_s"] = time.perf_counter() - t
    res["dtype"] = engine.dtype
    reqs = prompts.build_grid(engine, [(NO_PERSON, None)], qs, scoring=args.mode,
                              prompt_format=args.prompt_format)
    max_tokens, stop = (scoring_mod.generate_settings(reqs) if args.mode == "generate"
                        else (1, ()))
    if args.mode == "cloze":
        token_lists, _, starts = engine.cloze_tokens(reqs)
    else:
        token_lists, starts = engine.encode([r.prompt for r in reqs]), None
    res["prompts"] = len(token_lists)
    res["prompt_tokens"] = sum(map(len, token_lists))
    # warm-up on other questions (first-call overhead)
    warm = prompts.build_grid(engine, [(NO_PERSON, None)],
                              questions_for(args.benchmark, args.split, 4, args.data_dir, 1),
                              scoring=args.mode, prompt_format=args.prompt_format)
    engine.run(warm, args.mode, max_tokens=max_tokens, stop=stop)

    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    def line(way: str, secs: float, computed: int) -> None:
        res[way] = {"s": secs, "computed_tokens": computed, "tok_per_s": computed / secs}
        print(f"{way:10s} {secs:8.2f} s  computed {computed:7d} tok  {computed / secs:7.1f} tok/s",
              flush=True)

    for _ in range(args.repeat):
        for way in ways:
            if way in ("prefixopt", "notrim"):
                trim = engine.trim_logits
                engine.trim_logits = trim and way == "prefixopt"
                engine.reset_prefix_cache()
                t = time.perf_counter()
                out = engine.run(reqs, args.mode, max_tokens=max_tokens, stop=stop)
                secs = time.perf_counter() - t
                engine.trim_logits = trim
                comp = sum(r.prompt_tokens - r.cached_tokens for r in out)
                line(way, secs, comp)
                if args.mode == "cloze":
                    res[way]["rerun"] = engine.last_cloze_stats.get("rerun")
                    res[way]["lls"] = [list(r.logprobs) for r in out]
                    res[way]["picks"] = [int(np.argmax(r.logprobs)) for r in out]
                    print(f"   re-run prompts {res[way]['rerun']}", flush=True)
                    if "prefixopt" in res and "notrim" in res:
                        d = max(abs(a - b) for x, y in zip(res["prefixopt"]["lls"],
                                res["notrim"]["lls"], strict=True)
                                for a, b in zip(x, y, strict=True))
                        print(f"   max |ll difference| trim vs no trim: {d:.2e}", flush=True)
            elif way in ("raw_plp", "raw"):
                engine.reset_prefix_cache()
                sp = SamplingParams(temperature=0.0,
                                    max_tokens=max_tokens if args.mode == "generate" else 1,
                                    stop=list(stop) or None, detokenize=False,
                                    prompt_logprobs=0 if way == "raw_plp" else None)
                t = time.perf_counter()
                outs = engine.llm.generate([TokensPrompt(prompt_token_ids=x) for x in token_lists],
                                           sp, use_tqdm=False)
                secs = time.perf_counter() - t
                line(way, secs, sum(len(o.prompt_token_ids) - (o.num_cached_tokens or 0)
                                    for o in outs))
            elif way == "hf16":
                secs, comp = hf_batched(engine.model, args.mode, token_lists, starts,
                                        args.hf_dtype, 16, max_tokens)
                line(way, secs, comp)
            elif way == "hf1":
                secs = hf_one_at_a_time(engine.model, args.mode, token_lists, args.hf_dtype,
                                        max_tokens)
                line(way, secs, res["prompt_tokens"])
    if "prefixopt" in res and "hf16" in res:
        res["ratio_prefixopt_vs_hf16"] = res["prefixopt"]["s"] / res["hf16"]["s"]
        print(f"prefixopt / hf16 = {res['ratio_prefixopt_vs_hf16']:.3f}")
    print(f"engine_start_s {res['engine_start_s']:.1f}  prompts {res['prompts']}  "
          f"prompt tokens {res['prompt_tokens']}  dtype {res['dtype']}")
    if args.picks_against and "prefixopt" in res and "picks" in res["prefixopt"]:
        with open(args.picks_against) as f:
            before = json.loads(f.read().splitlines()[-1])["prefixopt"]["picks"]
        same = sum(a == b for a, b in zip(before, res["prefixopt"]["picks"], strict=True))
        res["picks_agree_with_before"] = same / len(before)
        print(f"picks agree with {args.picks_against}: {same} of {len(before)}")
    if args.json:
        for way in ("prefixopt", "notrim"):
            if way in res:
                res[way].pop("lls", None)
        print(json.dumps(res))


if __name__ == "__main__":
    main()
