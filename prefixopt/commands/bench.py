"""`prefixopt bench`: engine throughput, batched vs per-person vs sequential, cache on/off."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import typer

from prefixopt.bench.local import run_bench
from prefixopt.bench.remote import run_remote_bench
from prefixopt.commands.common import err_console, out_console, print_json
from prefixopt.commands.enginelog import engine_output, header
from prefixopt.commands.options import BENCH, with_options
from prefixopt.config import EngineConfig
from prefixopt.engines.build import check_engine


def _table(res: dict[str, Any]) -> None:
    from rich.table import Table

    n = res["num_prompts"]
    table = Table(title=f"prefixopt bench: {res['benchmark']} {res['scoring']} "
                  f"({res['prompt_format']}, {res['num_fewshot']}-shot), K={res['k']} x "
                  f"B={res['b']} = {n} prompts on {res['device']}")
    for col in ("way", "seconds", "ms / prompt", "computed tok/s", "(a) is faster by"):
        table.add_column(col, justify="right" if col != "way" else "left")
    tps = res["computed_tok_per_s"]
    e_note = (f"extrapolated from {res['batched_hf_measured_prompts']}"
              if res["batched_hf_extrapolated"] else "all prompts")
    rows = [
        ("(a) one batched call, prefix cache", res["batched_cache_s"], tps["batched_cache"], 1.0),
        ("(b) one batched call, cache off", res["batched_nocache_s"], tps["batched_nocache"],
         res["speedup_cache"]),
        ("(c) one call per person", res["per_person_s"], tps["per_person"],
         res["speedup_vs_per_person"]),
        ((f"(d) transformers one at a time (extrapolated from "
         f"{res['sequential_measured_prompts']})"), res["sequential_s"], tps["sequential_hf"],
         res["speedup_vs_sequential"]),
        (f"(e) transformers, padded batches of 16 ({e_note})", res["batched_hf_s"],
         tps["batched_hf"], res["speedup_vs_batched_hf"]),
    ]
    for way, secs, rate, speed in rows:
        table.add_row(way, f"{secs:.2f}", f"{1000 * secs / n:.1f}", f"{rate:.0f}",
                      f"{speed:.2f}x")
    out_console.print(table)
    out_console.print(
        f"prefix cache hit rate {res['cache_hit_rate']:.1%} of prompt tokens; "
        f"{res['cache_hit_of_shareable']:.1%} of the shareable tokens "
        f"({res['cache_hit_of_block_shareable']:.1%} of those in whole {res['block_size']}-token "
        f"blocks); host render + judge {res['host_s'] * 1000:.0f} ms = "
        f"{res['host_share']:.1%} of (a); {res['prompts_per_s']:.1f} prompts/s; "
        f"dtype {res['dtype']}; engine start {res['engine_start_s']:.0f} s; "
        f"total {res['total_s']:.0f} s",
        highlight=False,
    )


def _remote(cfg: Any, benchmark: str, scoring: str | None, prompt_format: str,
            num_fewshot: int, k: int, b: int, repeats: int, data_dir: str | None,
            people: str | None, seed: int, json_out: bool) -> None:
    header("bench", cfg, None)
    res = run_remote_bench(cfg, benchmark=benchmark, scoring=scoring,
                           prompt_format=prompt_format, num_fewshot=num_fewshot, k=k, b=b,
                           repeats=repeats, data_dir=data_dir, people_path=people, seed=seed,
                           progress=lambda s: err_console.print(f"[dim]bench:[/] {s}",
                                                                highlight=False))
    out_console.print(
        f"prefixopt bench through {res['base_url']} ({res['model']}, {res['capability_api']}): "
        f"{res['benchmark']} {res['scoring']}, K={res['k']} x B={res['b']} = "
        f"{res['num_prompts']} prompts; median of {repeats}: iteration {res['iteration_s']:.2f} s "
        f"({res['prompts_per_s']:.1f} prompts/s), of which the client's own CPU "
        f"{res['client_cpu_s']:.2f} s = {res['client_overhead_share']:.1%} (render "
        f"{res['render_s']:.2f} s, judge {res['judge_s']:.2f} s, HTTP + JSON + tokenise "
        f"{res['client_cpu_in_run_s']:.2f} s)", highlight=False)
    if json_out:
        print_json(res)


def register(app: typer.Typer) -> None:
    @app.command()
    @with_options(BENCH)
    def bench(ctx: typer.Context, **values: Any) -> None:
        """Throughput: one batched call vs per-person calls vs sequential, cache on/off."""

        v = SimpleNamespace(**values)
        cfg = EngineConfig(model=v.model, dtype=v.dtype, max_model_len=v.max_model_len,
                           block_size=v.block_size, enforce_eager=v.enforce_eager,
                           kind=v.engine, base_url=v.base_url,
                           api=v.api, api_key_env=v.api_key_env,
                           max_concurrency=v.max_concurrency)
        check_engine(cfg)  # the model and dtype, before any engine starts
        if v.engine == "openai":
            _remote(cfg, v.benchmark, v.scoring, v.prompt_format, v.num_fewshot, v.k, v.b,
                    v.repeats, v.data_dir, v.people, v.seed, v.json_out)
            return

        def progress(step: str) -> None:
            if step == "engine start":  # every check inside run_bench has passed
                header("bench", cfg, None)
            err_console.print(f"[dim]bench:[/] {step}", highlight=False)

        with engine_output(None, v.verbose):
            res = run_bench(
                cfg, benchmark=v.benchmark, scoring=v.scoring, prompt_format=v.prompt_format,
                num_fewshot=v.num_fewshot, k=v.k, b=v.b, sequential_subset=v.sequential_subset,
                batched_subset=v.batched_subset, data_dir=v.data_dir, people_path=v.people,
                seed=v.seed, progress=progress,
            )
        _table(res)
        if v.json_out:
            print_json(res)
