"""`prefixopt eval` and `prefixopt report`: held-out evaluation and the run report."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer
from rich.table import Table

from prefixopt import budget
from prefixopt.engines import build
from prefixopt.commands import estimate
from prefixopt.commands.common import err_console, fail, out_console, print_json
from prefixopt.commands.enginelog import engine_session
from prefixopt.commands.options import EVAL_CMD, with_options
from prefixopt.report.prose import pts
from prefixopt.evaluate import export
from prefixopt.evaluate import variants as eval_variants
from prefixopt.evaluate import heldout as ev
from prefixopt.config import EngineConfig, EvalConfig, TaskConfig
from prefixopt.report import page as rp
from prefixopt.study.page import build_study_report


def _pct(x: float | None, signed: bool = False) -> str:
    return pts(x, signed, missing="-")


def _p(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.3g}" if x >= 0.001 else f"{x:.1e}"


def eval_table(result) -> Table:
    clustered = "diff_low_cluster" in result.summary.columns
    table = Table(title=f"{result.benchmark} {result.split}: {result.summary['n'][0]} questions "
                  "(accuracy and differences in points; p: exact McNemar vs none"
                  + ("; clustered: questions resampled by subject, and p_holm uses the larger "
                     "of the two p" if clustered else "") + "; p_holm: Holm)")
    cols = ("prefix", "kind", "accuracy", "95% CI", "diff vs none", "95% CI",
            *(("clustered 95% CI",) if clustered else ()), "p", "p_holm", "significant")
    for col in cols:
        table.add_column(col, justify="left" if col in ("prefix", "kind") else "right")
    for r in result.summary.iter_rows(named=True):
        none = r["prefix_kind"] == "none"

        def ci(lo: str, hi: str, r=r, none=none) -> str:
            return "" if none else f"[{_pct(r[lo], True)}, {_pct(r[hi], True)}]"

        table.add_row(
            r["prefix"][:48], r["prefix_kind"], _pct(r["accuracy"]),
            f"[{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]",
            "" if none else _pct(r["diff_vs_none"], True), ci("diff_low", "diff_high"),
            *((ci("diff_low_cluster", "diff_high_cluster"),) if clustered else ()),
            "" if none else _p(r["p_value"]), "" if none else _p(r["p_holm"]),
            "" if none else ("[bold green]yes[/]" if r["significant"] else "no"),
        )
    return table


def print_formats(table) -> None:
    """Which prefixes hold up in every prompt format (a finding is what survives them all)."""
    fmts = [c.removeprefix("accuracy_") for c in table.columns if c.startswith("accuracy_")]
    out_console.print(f"formats {' vs '.join(fmts)}: rank correlation of the prefixes' "
                      f"accuracies {table['rank_correlation'][0]:.2f}", highlight=False)
    for r in table.filter(pl.any_horizontal(pl.col(f"significant_{f}") for f in fmts)
                          ).iter_rows(named=True):
        diffs = ", ".join(f"{f} {_pct(r[f'diff_{f}'], True)}" for f in fmts)
        out_console.print(f"  {r['prefix'][:40]} ({r['prefix_kind']}): {diffs} -> "
                          + ("survives every format" if r["survives"] else
                             "NOT a finding: significant in one format only"), highlight=False)


def print_oracle(null: dict[str, Any] | None, routed: dict[str, Any] | None) -> None:
    """The perturbation-only null of the oracle ceiling, and the confidence router."""
    if null:
        lo, hi = null["ceiling_ci95"]
        out_console.print(
            f"oracle null: no prefix + {null['k']} paraphrases (no person) reach "
            f"{_pct(null['accuracy'])}% [{_pct(lo)}, {_pct(hi)}]; learned "
            f"{_pct(null['ceiling_learned'])}% -> {null['verdict']}"
            + (" (degenerate: the paraphrases answer exactly as no prefix)"
               if null["identical_to_no_prefix"] else ""), highlight=False)
    if routed:
        lo, hi = routed["ci95"]
        out_console.print(
            f"router (most confident of no prefix + {routed['k']} learned): "
            f"{_pct(routed['accuracy'])}, {_pct(routed['diff_vs_no_prefix'], True)} vs none "
            f"[{_pct(lo, True)}, {_pct(hi, True)}], McNemar p {routed['p_value']:.3g}",
            highlight=False)


def print_eval(result) -> None:
    """The eval table, the group contrasts, where the tables went and the timings."""
    out_console.print(eval_table(result))
    for c in result.contrasts:
        out_console.print(f"{c.name}: {_pct(c.diff, True)} points, 95% CI "
                          f"[{_pct(c.low, True)}, {_pct(c.high, True)}]"
                          + (" (excludes 0)" if c.excludes_zero else " (includes 0)"))
    c = result.ceilings
    if c:
        out_console.print(
            f"oracle ceiling (some prefix right): {_pct(c['oracle_ceiling'])}% of questions; "
            f"no prefix + {c['oracle_k']} learned: {_pct(c['oracle_ceiling_learned'])}%, "
            f"+ {c['oracle_k']} random: {_pct(c['oracle_ceiling_random'])}% (what noise gives)",
            highlight=False)
    e = result.ensemble
    if e:
        out_console.print(
            f"ensemble {e['persona']} + no prefix (more confident answer; persona used on "
            f"{_pct(e['persona_share'])}%): {_pct(e['accuracy'])}, {_pct(e['diff_vs_none'], True)}"
            f" vs none [{_pct(e['diff_low'], True)}, {_pct(e['diff_high'], True)}]",
            highlight=False)
    print_oracle(result.oracle_null, result.router)
    held = result.held_out
    if held:
        err_console.print(
            f"held out: {int(result.summary['n'][0])} questions; left out "
            f"{held.get('eval_duplicates', 0)} repeats, {held.get('train_duplicates', 0)} "
            f"training twins, {held.get('fewshot_duplicates', 0)} few-shot examples"
            + (f"; few-shot: {held['fewshot_source']}" if held.get("fewshot_source") else ""),
            highlight=False)
    timings = ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()
                        if isinstance(v, float))
    err_console.print(f"wrote {result.run_dir}/eval/{result.name}.parquet (+ _summary); "
                      f"{timings}", highlight=False)


@with_options(EVAL_CMD)
def eval_(ctx: typer.Context, **values: Any) -> None:
    """Held-out evaluation: learned top-k vs no prefix vs random vs hand-written."""

    cfg, run = eval_config(values)
    # every check (options, split, name, overlap, people, model) before the engine starts
    model_path = build.check_engine(cfg.engine)
    if cfg.engine.kind == "synthetic" and run is None:
        fail("--engine synthetic needs the RUN directory of a simulate run")
    prepared = []  # per benchmark of the run, the variants (one per --formats entry)
    for one in eval_variants.per_benchmark(cfg):
        prepared.append([])
        for variant in eval_variants.per_format(one):
            inputs = ev.eval_inputs(variant, run)
            prepared[-1].append((inputs, ev.eval_prefixes(variant, run, inputs.rng,
                                                          inputs.questions)))
    est, notes = estimate.header_estimate(
        cfg.engine.kind, None, {i.name: len(i.questions) * len(p[0]) for v in prepared
                                for i, p in v}, [len(i.questions) for v in prepared
                                                 for i, _ in v], values["mde"], None, "eval")
    estimate.record(run, est)  # before the engine (an eval without a run: once it has one)
    results, formats = [], []
    with engine_session("eval", cfg.engine, run, values["verbose"],
                        model_path, notes=notes,
                        evaluations=estimate.evaluations(est)) as (eng, start_s):
        for variants in prepared:
            if len(variants) == 1:
                results.append(ev.score_prefixes(*variants[0][:2], run, eng,
                                                 {"engine_start_s": start_s}))
                continue
            found, table = eval_variants.score_formats(variants, run, eng,
                                                       {"engine_start_s": start_s})
            results += found
            formats.append(table)
    where = results[0].run_dir  # the run, or the directory an eval without one made
    if run is None:
        estimate.record(where, est)
    budget.record_start(where, "eval", start_s)
    spent = budget.of_run(where)
    for result in results:
        result.timings["dtype"] = eng.info().get("dtype")
        print_eval(result)
    err_console.print(estimate.spent_line(spent), highlight=False, soft_wrap=True)
    for table in formats:
        print_formats(table)
    pooled = export.pooled(results) if len(prepared) > 1 and not formats else []
    for c in pooled:
        out_console.print(f"{c.name}: {_pct(c.diff, True)} points, 95% CI "
                          f"[{_pct(c.low, True)}, {_pct(c.high, True)}]")
    if values["json_out"]:
        print_json({**export.result_json(results[0]), "budget": spent} if len(results) == 1
                   else {"evals": [export.result_json(r) for r in results],
                         "pooled": [export.contrast_json(c) for c in pooled],
                         "formats": [t.to_dicts() for t in formats], "budget": spent})


def eval_config(values: dict[str, Any]):
    """The eval options -> (EvalConfig, run dir or None): the run's own engine and task
    settings (config.json) unless overridden, or a baseline / named-people eval without a run."""

    run, benchmark = values["run"], values["benchmark"]
    if run is None and benchmark is None:
        fail("give a RUN directory, or --benchmark with --people NAME / --only-baseline")
    options = {k: values[k] for k in ("eval_split", "num_questions", "top_k", "num_random",
                                      "handwritten", "paraphrase_null", "allow_overlap",
                                      "bootstrap_samples",
                                      "seed", "output_dir", "run_name", "name", "overwrite")}
    options.update(prompts=tuple(values["prompt"] or ()), formats=values["formats"] or (),
                   people_names=tuple(values["people"] or ()))
    if values["only_baseline"]:
        options.update(top_k=0, num_random=0, handwritten=False, prompts=(), people_names=(),
                       paraphrase_null=False)
    if run is not None:
        cfg = ev.config_for_run(run, **options)
    else:
        options.update(top_k=0)  # no run: no learned people
        cfg = EvalConfig(engine=EngineConfig(), task=TaskConfig(benchmark=benchmark), **options)
    task = {k: values[k] for k in ("benchmark", "scoring", "prompt_format", "num_fewshot",
                                   "data_dir") if values[k] is not None}
    engine = {k: values[k] for k in ("model", "dtype", "base_url", "api", "api_key_env",
                                     "max_concurrency") if values[k] is not None}
    if values["engine"] is not None:  # default: the engine the run was trained on
        engine["kind"] = values["engine"]
    cfg = replace(cfg, task=replace(cfg.task, **task), people=values["people_file"] or cfg.people,
                  engine=replace(cfg.engine, **engine))
    return cfg, run


def report(
    runs: Annotated[list[Path], typer.Argument(
        help="One or more run directories, or a study directory.")],
    out: Annotated[Path | None, typer.Option(help="Output directory (default: "
                                                "RUN/report/ for one run).")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary last.")] = False,
) -> None:
    """Figures and a summary page for one or several runs, or for a study directory."""

    if len(runs) > 1 and out is None:
        fail("several runs: give --out DIR for the comparison report")
    if len(runs) == 1 and (runs[0] / "manifest.json").is_file():  # a `prefixopt study` dir

        result = build_study_report(runs[0], out)
    else:
        result = rp.build_report(runs, out)
    err_console.print(f"report: {result['report_md']}", highlight=False)
    for fig in result["figures"]:
        err_console.print(f"  figure: {fig}", highlight=False)
    if json_out:
        print_json(result)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_)
    app.command()(report)
