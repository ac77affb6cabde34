"""`prefixopt train` and `prefixopt simulate`: the learner's commands. Options -> TrainConfig
(a `--config FILE.json` gives the base, flags given on the command line override it) ->
validation before anything loads -> one library call -> a rich progress bar and a summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

from prefixopt import budget, runs
from prefixopt.commands import estimate
from prefixopt.commands.common import err_console, fail, print_json
from prefixopt.commands.enginelog import engine_session
from prefixopt.commands.options import JOB, LEARNER, SIMULATE, TRAIN, TRAIN_NAMES, with_options
from prefixopt.config import TrainConfig, from_dict, to_dict
from prefixopt.config_file import SEED_IGNORED_KEYS, train_config_from_mapping
from prefixopt.errors import PrefixoptError
from prefixopt.learn import simulate as sim
from prefixopt.learn.job import prepare_train, run_train, training_resumes

D = TrainConfig()  # defaults shown in --help come from config.py, the one place they live
ENGINE_KEYS = {f.name for f in dataclasses.fields(D.engine)} - {"seed"}
TASK_KEYS = {f.name for f in dataclasses.fields(D.task)}


def given(ctx: typer.Context, name: str, env: bool = True) -> bool:
    """Was this option given on the command line (or, with env, by its environment variable)
    rather than defaulted? Compared by name: typer may vendor its own click, whose
    ParameterSource enum is a different class."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in (
        ("COMMANDLINE", "ENVIRONMENT") if env else ("COMMANDLINE",))


def resolve_config(ctx: typer.Context, values: dict[str, Any], config: Path | None) -> TrainConfig:
    """Base = --config FILE.json (or the defaults); every flag given explicitly overrides it.
    The file may be nested, flat, the reference homework's TrainingConfig or a run's
    config.json (prefixopt.config_file.train_config_from_mapping)."""
    base = D
    if config is not None:
        try:
            raw = json.loads(config.read_text(encoding="utf-8"))
            base = train_config_from_mapping(raw)
        except (OSError, ValueError, TypeError) as exc:
            raise PrefixoptError(f"cannot read --config {config}: {exc}") from None
        ignored = sorted(SEED_IGNORED_KEYS & set(raw))
        if ignored:
            err_console.print(f"note: --config {config}: ignoring {', '.join(ignored)} "
                              "(no prefixopt equivalent)", highlight=False, soft_wrap=True)
    data = to_dict(base)
    for name, value in values.items():
        if not given(ctx, name):
            continue
        value = tuple(value) if isinstance(value, list) else value
        if name in ENGINE_KEYS:
            data["engine"][name] = value
        elif name in TASK_KEYS:
            data["task"][name] = value
        else:
            data[name] = value
            if name == "seed":
                data["engine"]["seed"] = value
    return from_dict(TrainConfig, data)


@contextlib.contextmanager
def progress_bar(total: int, label: str, quiet: bool = False) -> Iterator[Any]:
    """A rich progress bar on stderr fed by the loop's per-iteration stats."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if quiet:
        yield lambda stats: None
        return
    columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("{task.fields[metrics]}"))
    with Progress(*columns, console=err_console) as bar:
        task = bar.add_task(label, total=total, metrics="")

        def update(stats: dict[str, Any]) -> None:
            hit = stats["cached_tokens"] / max(stats["prompt_tokens"], 1)
            rate = stats["num_prompts"] / max(stats["generate_s"], 1e-9)
            metrics = (f"reward {stats['mean_reward']:.3f}  H {stats['entropy']:.2f}  "
                       f"top {stats['top_name']} {stats['top_prob']:.3f}  "
                       f"cache {hit:.0%}  {rate:,.0f} prompts/s")
            bar.update(task, completed=stats["iteration"] + 1, metrics=metrics)

        yield update


def train_job(ctx: typer.Context, values: dict[str, Any]):
    """Options -> a checked TrainJob (prepare_train): a new run from the flags and
    --config, or --resume DIR as it was configured (only --iterations may change)."""

    opts = {k: v for k, v in values.items() if k in TRAIN_NAMES}
    resume, engine = values["resume"], values["engine"]
    if resume is not None:
        changed = [k for k in opts if k != "iterations" and given(ctx, k, env=False)]
        changed += ["config"] if values["config"] is not None else []
        if changed:
            fail(f"--resume continues a run as configured; drop --{changed[0].replace('_', '-')}"
                 " (only --iterations may change)")
        cfg = runs.read_train_config(resume)
        if given(ctx, "iterations"):
            cfg = dataclasses.replace(cfg, iterations=values["iterations"])
    else:
        cfg = resolve_config(ctx, opts, values["config"])
    if given(ctx, "engine") or resume is None:  # a resumed run keeps the engine it was run on
        cfg = dataclasses.replace(cfg, engine=dataclasses.replace(cfg.engine, kind=engine))
    return prepare_train(cfg, resume=resume)


def print_train(summary: dict[str, Any]) -> None:
    err_console.print(f"run: {summary['run_dir']}  iterations: {summary['iterations_done']}"
                      f"  entropy: {summary['entropy']:.3f}", highlight=False)
    for row in summary["top"][:5]:
        err_console.print(f"  {row['prob']:.4f}  {row['name']} ({row['field']})", highlight=False)


def register(app: typer.Typer) -> None:
    @app.command()
    @with_options(TRAIN, JOB)
    def train(ctx: typer.Context, **values: Any) -> None:
        """Learn which persona helps on a benchmark (--learner reinforce | halving | ttts)."""

        job = train_job(ctx, values)  # every check passes before the engine starts
        quiet = values["json_out"]
        whole, left = budget.train_evaluations(job.cfg, job.run_dir, job.resume)
        est, notes = estimate.header_estimate(job.cfg.engine.kind, left, {}, [], None, whole,
                                              "train", job.run_dir)
        estimate.record(job.run_dir, est)  # before the engine: a resumed run keeps the first
        with engine_session("train", job.cfg.engine, job.run_dir,
                            values["verbose"], model_path=job.model_path, notes=notes,
                            evaluations=estimate.evaluations(est),
                            resumes=training_resumes(job),
                            people=job.people, seed=job.cfg.seed) as (eng, s), \
                progress_bar(job.cfg.iterations, "train", quiet) as update:
            budget.record_start(job.run_dir, "train", s)
            summary = {**run_train(job, eng, update), "engine_start_s": s,
                       "dtype": eng.info().get("dtype")}
        summary["budget"] = budget.of_run(job.run_dir)
        if quiet:
            print_json(summary)
        else:
            print_train(summary)
            err_console.print(estimate.spent_line(summary["budget"]), highlight=False,
                              soft_wrap=True)
            err_console.print(f"files: {job.run_dir}/ (config.json, iterations/, samples/, "
                              "answers/, checkpoints/, engine.log)", highlight=False)

    @app.command()
    @with_options(SIMULATE, LEARNER)
    def simulate(ctx: typer.Context, **values: Any) -> None:
        """Run the learner on the synthetic engine (planted accuracies), no LLM."""
        planted_field, planted_people = values["planted_field"], values["planted_people"]
        delta, base_accuracy, budget = values["delta"], values["base_accuracy"], values["budget"]
        small = values["small_effects"]
        if sum([planted_field is not None, planted_people is not None, values["null"],
                small is not None]) != 1:
            fail("choose exactly one scenario: --planted-field FIELD, --planted-people N, "
                 "--small-effects SD or --null")
        if small is not None and not 0 < small < 0.5:
            fail(f"--small-effects is an accuracy SD in (0, 0.5), e.g. 0.02 (got {small})")
        if not 0 < base_accuracy < 1 or not 0 < base_accuracy + delta < 1:
            fail(f"--base-accuracy {base_accuracy} + --delta {delta} must stay inside (0, 1)")
        if budget < 1:
            fail(f"--budget must be >= 1 question evaluation (got {budget})")
        cfg = resolve_config(ctx, {k: v for k, v in values.items() if k in TRAIN_NAMES}, None)
        cfg = dataclasses.replace(cfg, run_name=None, engine=dataclasses.replace(
            cfg.engine, kind="synthetic"))

        iterations = max(1, budget // (cfg.samples_per_iteration * cfg.batch_size))
        with progress_bar(iterations, "simulate", values["json_out"]) as update:
            summary = sim.run(cfg, planted_field=planted_field, planted_people=planted_people,
                              delta=delta, base_accuracy=base_accuracy,
                              difficulty_sd=values["difficulty_sd"], budget=budget,
                              out=values["out"], progress=update, small_effects=small)
        if values["json_out"]:
            print_json(summary)
            return
        err_console.print(f"{summary['description']}: planted mass {summary['planted_mass']:.3f} "
                          f"(pool share {summary['pool_share']:.3f}), entropy "
                          f"{summary['entropy']:.2f}/{summary['max_entropy']:.2f}, largest field "
                          f"{summary['largest_field']} at "
                          f"{summary['largest_field_ratio']:.1f}x its "
                          f"share, {summary['evaluations']:,} evaluations")
        conf = summary["top_confidence"]
        err_console.print(f"{summary['learner']}: top-1 {summary['top'][0]['name']} is "
                          f"{'' if summary['top_planted'] else 'not '}planted; planted share of "
                          f"the top 10 {summary['planted_in_top10']:.1f}; simple regret "
                          f"{summary['simple_regret']:.3f}; top_confidence "
                          f"{'-' if conf is None else format(conf, '.2f')} "
                          f"({summary['top_confidence_kind']})", highlight=False)
