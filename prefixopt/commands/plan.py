"""`prefixopt plan`: size a held-out comparison and a training budget before any engine starts.
Options -> prefixopt.plan.make_plan -> a few lines on stdout (warnings on stderr), or `--json`.
The split's available questions are counted from its local file (never downloaded); the
discordance may come from a pilot run's eval table (`--pilot RUN_DIR`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import polars as pl
import typer

from prefixopt import analysis, benchmarks, device, plan, runs
from prefixopt.benchmarks.splits import count_rows, local_path, parse_split, resolve_slice
from prefixopt.commands.common import err_console, out_console, print_json
from prefixopt.errors import PrefixoptError


def available_questions(benchmark: str, split: str, data_dir: Path | None) -> int | None:
    """Rows of a (sliced) split from its local files; None when a piece is only on the hub."""
    root = benchmarks.resolve_data_dir(data_dir)
    valid = benchmarks.splits_of(benchmark, root)
    total = 0
    for piece in parse_split(split):
        if piece.split not in valid:
            raise PrefixoptError(f"--eval-split {split!r}: unknown split {piece.split!r} for "
                                 f"{benchmark}; valid: {', '.join(valid)}")
        path = local_path(root, benchmark, piece.split)
        if path is None:
            return None
        start, stop = resolve_slice(piece, count_rows(path))
        total += max(0, stop - start)
    return total


def _eval_table(pilot: Path) -> Path:
    """The eval rows table of a run directory (or the given .parquet file)."""
    if pilot.is_file():
        return pilot
    found = sorted(p for p in runs.eval_dir(pilot).glob("*.parquet")
                   if p.with_name(f"{p.stem}_summary.parquet").is_file())
    if len(found) != 1:
        what = "no eval table" if not found else f"{len(found)} eval tables"
        raise PrefixoptError(f"--pilot {pilot}: {what} under {pilot}/eval; pass a run directory "
                             "with one eval, or the eval/<name>.parquet file itself")
    return found[0]


def pilot_discordance(pilot: Path) -> tuple[float, str]:
    """Mean share of questions where a learned person and no prefix disagree, in a pilot eval."""
    if not pilot.exists():
        raise PrefixoptError(f"--pilot {pilot} does not exist; pass a run directory with an eval")
    table = _eval_table(pilot)
    meta, correct = analysis.correct_matrix(pl.scan_parquet(table))
    kinds = meta["prefix_kind"].to_list()
    learned = [i for i, k in enumerate(kinds) if k == "learned"]
    if "none" not in kinds or not learned:
        raise PrefixoptError(f"--pilot {table}: the eval has no learned people and no-prefix "
                             "rows to compare; pass an eval of a trained run")
    none = correct[kinds.index("none")]
    values = [plan.discordance_of(correct[i], none) for i in learned]
    return float(sum(values) / len(values)), (
        f"pilot {table} ({len(learned)} learned vs no prefix, {correct.shape[1]} questions)")


def _print(result: dict[str, Any]) -> None:
    def lines() -> list[str]:
        avail = result["available_questions"]
        avail_text = f"{avail:,}" if avail is not None else "unknown (hub-only split)"
        feasible = {True: "yes", None: "unknown (the split's size is unknown)",
                    False: f"NO: the split has fewer questions than the {result['mde']:g} "
                           "difference needs"}[result["feasible"]]
        mde = result["detectable_mde"]
        train = result["estimated_train_s"]
        return [
            f"prefixopt plan: {result['benchmark']} {result['eval_split']}, MDE {result['mde']:g}"
            f", discordance {result['discordance']:g} ({result['discordance_source']}), power "
            f"{result['power']:g}, alpha {result['alpha']:g} / {result['comparisons']} "
            f"comparison(s) = {result['alpha_per_test']:.4g}",
            f"questions needed: {result['questions_needed']:,}",
            f"available questions: {avail_text}",
            f"feasible: {feasible}",
            f"an eval of {result['eval_questions']:,} questions detects MDE "
            + (f"{mde:.3f}" if mde is not None else "none (too few questions)"),
            f"estimated wall time: {result['estimated_s']:,.0f} s = engine start "
            f"{result['engine_start_s']:.0f} s + train "
            + (f"{train:,.0f} s" if train is not None else "not estimated (pass --budget N)")
            + f" + eval {result['estimated_eval_s']:,.0f} s ({result['eval_questions']:,} "
            f"questions x {result['eval_prefixes']} prefixes) at {result['evals_per_s']:g} "
            f"question evaluations/s ({result['evals_per_s_source']})",
        ]

    for line in lines():
        out_console.print(line, highlight=False, soft_wrap=True)


def plan_cmd(
    mde: Annotated[float, typer.Option(help="accuracy difference to detect, as a fraction "
                                            "(0.03 = 3 points)")] = 0.03,
    discordance: Annotated[float | None, typer.Option(
        help="share of questions where the prefix and no prefix disagree (default: from "
             f"--pilot, else {plan.DEFAULT_DISCORDANCE})")] = None,
    pilot: Annotated[Path | None, typer.Option(
        help="a run directory (or eval .parquet) whose learned people vs no prefix give the "
             "discordance")] = None,
    power: Annotated[float, typer.Option(help="chance of detecting a true MDE")] = 0.8,
    alpha: Annotated[float, typer.Option(help="two-sided false-positive rate")] = 0.05,
    comparisons: Annotated[int, typer.Option(
        help="prefixes compared with no prefix; Holm's first test is at alpha / N")] = 1,
    benchmark: Annotated[str, typer.Option(help="benchmark the eval questions come from")] = (
        "arc_easy"),
    eval_split: Annotated[str | None, typer.Option(
        help="held-out split (default: the benchmark's eval split)")] = None,
    eval_questions: Annotated[int | None, typer.Option(
        help="questions the eval will use (default: the needed ones, at most the split's)")] = (
        None),
    eval_prefixes: Annotated[int, typer.Option(
        help="prefixes the eval scores (default: none + 5 learned + 5 random + 2 "
             "hand-written)")] = plan.DEFAULT_EVAL_PREFIXES,
    budget: Annotated[int | None, typer.Option(
        help="training budget in question evaluations (for the time estimate)")] = None,
    evals_per_s: Annotated[float | None, typer.Option(
        help="question evaluations per second (default: the documented figure for this CPU "
             "kind; measure with `prefixopt bench`)")] = None,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", envvar="PREFIXOPT_DATA_DIR",
        help="folder with <benchmark>/<split>.jsonl")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print a JSON summary")] = False,
) -> None:
    """Questions a paired comparison needs (McNemar), whether the split has them, and the wall
    time of a training budget plus the eval."""

    try:
        task = benchmarks.get_task(benchmark)
    except PrefixoptError as exc:
        raise PrefixoptError(f"--benchmark: {exc}") from None
    split = eval_split or task.eval_split
    source = "given"
    if discordance is None and pilot is not None:
        discordance, source = pilot_discordance(pilot)
    elif discordance is None:
        discordance, source = plan.DEFAULT_DISCORDANCE, "default"
    plan.check_inputs(mde, discordance, power, alpha, comparisons)
    rate_source = "given"
    if evals_per_s is None:
        bf16 = bool(device.cpu_flags() & device.BF16_CPU_FLAGS)
        evals_per_s, rate_source = plan.default_evals_per_s(bf16)
    result = plan.make_plan(
        mde=mde, discordance=discordance, power=power, alpha=alpha, comparisons=comparisons,
        available=available_questions(benchmark, split, data_dir), eval_questions=eval_questions,
        eval_prefixes=eval_prefixes, budget=budget, evals_per_s=evals_per_s)
    result.update(benchmark=benchmark, eval_split=split, discordance_source=source,
                  evals_per_s_source=rate_source)
    if json_out:
        print_json(result)
    else:
        _print(result)
    for warning in result["warnings"]:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_cmd)
