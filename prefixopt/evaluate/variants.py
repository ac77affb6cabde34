"""Variants of one evaluation that share its engine: one per benchmark of a multi-benchmark
run, and one per prompt format (`--formats chat,harness`: the same prefixes and questions
rendered both ways, scored in ONE engine call, then compared: each format's results, the rank
correlation of the prefixes' accuracies across formats, and which significant prefixes stay
significant in every format; a finding is what survives them all).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl

from prefixopt import runs
from prefixopt.ask import scoring
from prefixopt.benchmarks import get_task
from prefixopt.config import PROMPT_FORMATS, EvalConfig
from prefixopt.errors import PrefixoptError
from prefixopt.evaluate import heldout
from prefixopt.evaluate.heldout import eval_name


def per_benchmark(cfg: EvalConfig) -> list[EvalConfig]:
    """One evaluation per benchmark of a multi-benchmark config (named <benchmark>_<split...>,
    so they sit side by side in one run's eval/), or the config itself."""

    names = cfg.task.benchmarks
    if not names:
        raise PrefixoptError("--benchmark is empty; name one benchmark or several: mmlu,gsm8k")
    if len(names) == 1:
        return [cfg]
    out = []
    for b in names:
        split = cfg.eval_split or get_task(b).eval_split
        name = f"{b}_{cfg.name or eval_name(split, cfg.num_questions, cfg.seed)}"
        out.append(replace(cfg, task=replace(cfg.task, benchmark=b), name=name))
    return out


def per_format(cfg: EvalConfig) -> list[EvalConfig]:
    """One evaluation per --formats entry (named <name>_<format>), or the config itself."""

    if len(cfg.formats) <= 1:
        return [replace(cfg, task=replace(cfg.task, prompt_format=cfg.formats[0]))
                if cfg.formats else cfg]
    bad = [f for f in cfg.formats if f not in PROMPT_FORMATS]
    if bad or len(set(cfg.formats)) != len(cfg.formats):
        raise PrefixoptError(f"--formats {','.join(cfg.formats)}: give distinct formats from "
                             f"{', '.join(PROMPT_FORMATS)}, e.g. chat,harness")
    split = cfg.eval_split or get_task(cfg.task.benchmark).eval_split
    name = cfg.name or eval_name(split, cfg.num_questions, cfg.seed)
    return [replace(cfg, task=replace(cfg.task, prompt_format=f), name=f"{name}_{f}")
            for f in cfg.formats]


def score_formats(variants: list, run_dir: str | Path | None, engine,
                  timings: dict[str, float]) -> tuple[list, pl.DataFrame]:
    """variants: [(EvalInputs, prefixes_etc)] for the same questions and prefixes in several
    formats. ONE engine call for all of them; returns each format's EvalResult and the
    comparison table (written as eval/<name>_formats.parquet)."""

    t = time.perf_counter()
    built = [heldout.build_requests(inputs, pe, engine) for inputs, pe in variants]
    requests = [r for _, reqs in built for r in reqs]
    responses, answers = scoring.score(engine, requests, variants[0][0].mode)  # ONE call
    call_s = time.perf_counter() - t  # each format's share of it, by requests (its budget)
    results, at = [], 0
    for (inputs, _), (pe, reqs) in zip(variants, built, strict=True):
        part = slice(at, at + len(reqs))
        results.append(heldout.finish(inputs, pe, reqs, responses[part], answers[part],
                                       run_dir, engine,
                                       {**timings, "score_s": call_s * len(reqs) / len(requests)}))
        run_dir, at = results[-1].run_dir, at + len(reqs)  # one directory for every format
    table = compare(results)
    base = results[0].name.removesuffix("_" + variants[0][0].cfg.task.prompt_format)
    runs.write_parquet(runs.eval_path(run_dir, base, "_formats"), table)
    return results, table


def compare(results: list) -> pl.DataFrame:
    """One row per prefix: accuracy, difference vs none and significance in each format;
    `survives`: significant in every format, with the same sign; `rank_correlation`: Spearman
    correlation of the prefixes' accuracies between the first two formats (every row)."""
    from scipy.stats import spearmanr

    fmts = [r.name.rsplit("_", 1)[1] for r in results]
    cols = ["prefix_index", "prefix", "prefix_kind"]
    table = results[0].summary.select(cols)
    for f, r in zip(fmts, results, strict=True):
        table = table.join(r.summary.select(
            *cols[:1], pl.col("accuracy").alias(f"accuracy_{f}"),
            pl.col("diff_vs_none").alias(f"diff_{f}"),
            pl.col("significant").alias(f"significant_{f}")), on="prefix_index")
    sig = np.all([table[f"significant_{f}"].to_numpy() for f in fmts], axis=0)
    signs = np.sign([table[f"diff_{f}"].to_numpy() for f in fmts])
    rho = spearmanr(table[f"accuracy_{fmts[0]}"], table[f"accuracy_{fmts[1]}"]).statistic
    return table.with_columns(survives=pl.Series(sig & (signs == signs[0]).all(axis=0)),
                              rank_correlation=pl.lit(float(rho)))
