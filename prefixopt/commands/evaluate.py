"""`prefixopt eval` and `prefixopt report`: held-out evaluation and the run report."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from prefixopt.commands.common import err_console, fail, out_console, print_json
from prefixopt.commands.enginelog import engine_session
from prefixopt.report_text import pts


def _pct(x: float | None, signed: bool = False) -> str:
    return pts(x, signed, missing="-")


def _p(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.3g}" if x >= 0.001 else f"{x:.1e}"


def eval_table(result) -> Table:
    table = Table(title=f"{result.benchmark} {result.split}: {result.summary['n'][0]} questions "
                  "(accuracy and differences in points; p: exact McNemar vs none; p_holm: Holm)")
    for col in ("prefix", "kind", "accuracy", "95% CI", "diff vs none", "95% CI", "p",
                "p_holm", "significant"):
        table.add_column(col, justify="left" if col in ("prefix", "kind") else "right")
    for r in result.summary.iter_rows(named=True):
        none = r["prefix_kind"] == "none"
        table.add_row(
            r["prefix"][:48], r["prefix_kind"], _pct(r["accuracy"]),
            f"[{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]",
            "" if none else _pct(r["diff_vs_none"], True),
            "" if none else f"[{_pct(r['diff_low'], True)}, {_pct(r['diff_high'], True)}]",
            "" if none else _p(r["p_value"]), "" if none else _p(r["p_holm"]),
            "" if none else ("[bold green]yes[/]" if r["significant"] else "no"),
        )
    return table


def print_eval(result) -> None:
    """The eval table, the group contrasts, where the tables went and the timings."""
    out_console.print(eval_table(result))
    for c in result.contrasts:
        out_console.print(f"{c.name}: {_pct(c.diff, True)} points, 95% CI "
                          f"[{_pct(c.low, True)}, {_pct(c.high, True)}]"
                          + (" (excludes 0)" if c.excludes_zero else " (includes 0)"))
    timings = ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()
                        if isinstance(v, float))
    err_console.print(f"wrote {result.run_dir}/eval/{result.name}.parquet (+ _summary); "
                      f"{timings}", highlight=False)


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_(
        run: Annotated[Path | None, typer.Argument(help="Run directory (omit with --people "
                                                      "or --only-baseline and --benchmark).")] = None,
        benchmark: Annotated[str | None, typer.Option(help="Benchmark (default: the run's).")] = None,
        eval_split: Annotated[str | None, typer.Option(help="Held-out split, HF syntax "
                                                          "(default: the benchmark's eval split).")] = None,
        num_questions: Annotated[int | None, typer.Option(help="Evaluate N questions drawn "
                                                             "with --seed (default: all).")] = None,
        top_k: Annotated[int, typer.Option(help="Learned people: the top-k by final probability.")] = 5,
        num_random: Annotated[int, typer.Option(help="Random people drawn uniformly from the pool.")] = 5,
        prompt: Annotated[list[str] | None, typer.Option(help="Extra hand-written system "
                                                            "prompt (repeatable).")] = None,
        people: Annotated[list[str] | None, typer.Option("--people", help="Evaluate this named "
                                                            "person (repeatable; no run needed).")] = None,
        people_file: Annotated[str | None, typer.Option(help="People CSV without a run "
                                                           "(default: notable_people_10k.csv).")] = None,
        handwritten: Annotated[bool, typer.Option(help="Include the hand-written prompts.")] = True,
        only_baseline: Annotated[bool, typer.Option(help="Score the no-prefix baseline only "
                                                    "(speed check against the harness).")] = False,
        allow_overlap: Annotated[bool, typer.Option(help="Evaluate even if the split overlaps "
                                                    "the run's training questions.")] = False,
        bootstrap_samples: Annotated[int, typer.Option(help="Paired-bootstrap resamples.")] = 10_000,
        seed: Annotated[int, typer.Option(help="Seed: question subsample, random people, "
                                          "bootstrap.")] = 0,
        engine: Annotated[str, typer.Option(help="vllm, or synthetic for a `simulate` run.")] = "vllm",
        model: Annotated[str | None, typer.Option(help="Model (default: the run's).")] = None,
        scoring: Annotated[str | None, typer.Option(help="letter | cloze | generate "
                                                       "(default: the run's).")] = None,
        prompt_format: Annotated[str | None, typer.Option(help="chat | harness (default: the "
                                                          "run's).")] = None,
        num_fewshot: Annotated[int | None, typer.Option(help="Few-shot examples (default: the "
                                                        "run's).")] = None,
        data_dir: Annotated[str | None, typer.Option(envvar="PREFIXOPT_DATA_DIR", help="Benchmark "
                                                     "data directory.")] = None,
        output_dir: Annotated[str, typer.Option(help="Where an eval without a run is written.")] = "runs",
        run_name: Annotated[str | None, typer.Option(help="Directory name for an eval "
                                                        "without a run.")] = None,
        name: Annotated[str | None, typer.Option(help="Name of the eval tables (default: from "
                                                 "the split, N and seed).")] = None,
        overwrite: Annotated[bool, typer.Option(help="Replace an existing eval of that name.")] = False,
        dtype: Annotated[str | None, typer.Option(help="auto | float32 | bfloat16 | float16 "
                                                  "(default: the run's)")] = None,
        verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show vLLM/torch "
                                              "logging (default: RUN/engine.log).")] = False,
        json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary last.")] = False,
    ) -> None:
        """Held-out evaluation: learned top-k vs no prefix vs random vs hand-written."""
        from prefixopt import evaluate as ev
        from prefixopt import jobs
        from prefixopt.config import EngineConfig, EvalConfig, TaskConfig

        if run is None and benchmark is None:
            fail("give a RUN directory, or --benchmark with --people NAME / --only-baseline")
        options = {
            "eval_split": eval_split, "num_questions": num_questions, "top_k": top_k,
            "num_random": num_random, "prompts": tuple(prompt or ()),
            "people_names": tuple(people or ()), "handwritten": handwritten,
            "allow_overlap": allow_overlap, "bootstrap_samples": bootstrap_samples, "seed": seed,
            "engine_kind": engine, "output_dir": output_dir, "run_name": run_name, "name": name,
            "overwrite": overwrite,
        }
        if only_baseline:
            options.update(top_k=0, num_random=0, handwritten=False, prompts=(), people_names=())
        if run is not None:
            cfg = ev.config_for_run(run, **options)
        else:
            options.update(top_k=0)  # no run: no learned people
            cfg = EvalConfig(engine=EngineConfig(), task=TaskConfig(benchmark=benchmark), **options)
        task = {k: v for k, v in {"benchmark": benchmark, "scoring": scoring,
                                  "prompt_format": prompt_format, "num_fewshot": num_fewshot,
                                  "data_dir": data_dir}.items() if v is not None}
        cfg = replace(cfg, task=replace(cfg.task, **task), people=people_file or cfg.people)
        if model is not None or dtype is not None:
            cfg = replace(cfg, engine=replace(cfg.engine, model=model or cfg.engine.model,
                                              dtype=dtype or cfg.engine.dtype))
        # every check (options, split, name, overlap, people, model) before the engine starts
        jobs.check_engine(cfg.engine, engine)
        if engine == "synthetic" and run is None:
            fail("--engine synthetic needs the RUN directory of a simulate run")
        inputs = ev.eval_inputs(cfg, run)
        prefixes = ev.eval_prefixes(cfg, run, inputs.rng)
        with engine_session("eval", cfg.engine, engine, run, verbose) as (eng, start_s):
            result = ev.score_prefixes(inputs, prefixes, run, eng, {"engine_start_s": start_s})
        result.timings["dtype"] = eng.info().get("dtype")
        print_eval(result)
        if json_out:
            print_json(ev.result_json(result))

    @app.command()
    def report(
        runs: Annotated[list[Path], typer.Argument(help="One or more run directories.")],
        out: Annotated[Path | None, typer.Option(help="Output directory (default: "
                                                    "RUN/report/ for one run).")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary last.")] = False,
    ) -> None:
        """Figures and a summary page for one or several runs."""
        from prefixopt import report as rp

        if len(runs) > 1 and out is None:
            fail("several runs: give --out DIR for the comparison report")
        result = rp.build_report(runs, out)
        err_console.print(f"report: {result['report_md']}", highlight=False)
        for fig in result["figures"]:
            err_console.print(f"  figure: {fig}", highlight=False)
        if json_out:
            print_json(result)
