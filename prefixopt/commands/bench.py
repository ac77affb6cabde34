"""`prefixopt bench`: engine throughput, batched vs per-person vs sequential, cache on/off."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from prefixopt.commands.common import err_console, out_console, print_json
from prefixopt.bench.remote import run_remote_bench
from prefixopt.commands.enginelog import header
from prefixopt.bench.local import run_bench
from prefixopt.commands.enginelog import engine_output
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
        f"dtype {res['dtype']}; engine start {res['engine_start_s']:.0f} s; total {res['total_s']:.0f} s",
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
    def bench(
        model: Annotated[str, typer.Option(help="HF id, local folder, or smollm2-135m")] = (
            "smollm2-135m"),
        benchmark: Annotated[str, typer.Option(help="benchmark the questions come from")] = (
            "arc_easy"),
        scoring: Annotated[str | None, typer.Option(
            help="letter | cloze | generate (default: the benchmark's)")] = None,
        prompt_format: Annotated[str, typer.Option(help="chat | harness")] = "chat",
        num_fewshot: Annotated[int, typer.Option(help="solved examples in every prompt")] = 0,
        k: Annotated[int, typer.Option("-k", "--samples", help="people (K)")] = 16,
        b: Annotated[int, typer.Option("-b", "--questions", help="questions per person (B)")] = 32,
        sequential_subset: Annotated[int, typer.Option(
            help="prompts timed one at a time through transformers for (d)")] = 16,
        batched_subset: Annotated[int | None, typer.Option(
            help="engine prompts timed in transformers batches for (e) (default: all)")] = None,
        dtype: Annotated[str, typer.Option(
            help="model dtype for vLLM and the transformers references (auto: CUDA -> the "
                 "model's, CPU with native bf16 -> bfloat16, other CPUs -> float32)")] = "auto",
        max_model_len: Annotated[int, typer.Option(help="vLLM max_model_len")] = 2048,
        data_dir: Annotated[str | None, typer.Option(envvar="PREFIXOPT_DATA_DIR",
                                                     help="<dir>/<benchmark>/<split>.jsonl")] = (
            None),
        people: Annotated[str | None, typer.Option(help="people CSV for the names")] = None,
        seed: Annotated[int, typer.Option(help="question sampling seed")] = 0,
        block_size: Annotated[int | None, typer.Option(
            help="vLLM prefix-cache block in tokens (default: 32 on CPU, vLLM's 16 on CUDA)")] = None,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help=(
            "show vLLM/torch logging (default: silent)"))] = False,
        json_out: Annotated[bool, typer.Option("--json", help="print a JSON summary")] = False,
        engine: Annotated[str, typer.Option(
            help="vllm (in-process: ways (a)-(e)) | openai (an endpoint: one iteration's "
                 "time and the client's share of it)")] = "vllm",
        base_url: Annotated[str | None, typer.Option(help="--engine openai: the endpoint")] = None,
        api: Annotated[str, typer.Option(help="--engine openai: auto | completions | chat")] = (
            "auto"),
        api_key_env: Annotated[str, typer.Option(
            help="--engine openai: variable (or ./.env entry) holding the key")] = (
            "OPENAI_API_KEY"),
        max_concurrency: Annotated[int, typer.Option(
            help="--engine openai: requests in flight")] = 64,
        repeats: Annotated[int, typer.Option(help="--engine openai: timed iterations")] = 3,
    ) -> None:
        """Throughput: one batched call vs per-person calls vs sequential, cache on/off."""

        cfg = EngineConfig(model=model, dtype=dtype, max_model_len=max_model_len,
                           block_size=block_size, kind=engine, base_url=base_url, api=api,
                           api_key_env=api_key_env, max_concurrency=max_concurrency)
        check_engine(cfg)  # the model and dtype, before any engine starts
        if engine == "openai":
            _remote(cfg, benchmark, scoring, prompt_format, num_fewshot, k, b, repeats,
                    data_dir, people, seed, json_out)
            return

        def progress(step: str) -> None:
            if step == "engine start":  # every check inside run_bench has passed
                header("bench", cfg, None)
            err_console.print(f"[dim]bench:[/] {step}", highlight=False)

        with engine_output(None, verbose):
            res = run_bench(
                cfg, benchmark=benchmark, scoring=scoring, prompt_format=prompt_format,
                num_fewshot=num_fewshot, k=k, b=b, sequential_subset=sequential_subset,
            batched_subset=batched_subset,
                data_dir=data_dir, people_path=people, seed=seed,
                progress=progress,
            )
        _table(res)
        if json_out:
            print_json(res)
