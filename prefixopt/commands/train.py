"""`prefixopt train` and `prefixopt simulate`: the learner's commands. Options -> TrainConfig
(a `--config FILE.json` gives the base, flags given on the command line override it) ->
validation before anything loads -> one library call -> a rich progress bar and a summary.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from prefixopt.commands.common import err_console, fail, print_json
from prefixopt.config import TrainConfig, from_dict, to_dict
from prefixopt.errors import PrefixoptError

D = TrainConfig()  # defaults shown in --help come from config.py, the one place they live
ENGINE_KEYS = {f.name for f in dataclasses.fields(D.engine)} - {"seed"}
TASK_KEYS = {f.name for f in dataclasses.fields(D.task)}


def given(ctx: typer.Context, name: str) -> bool:
    """Was this option given on the command line (not defaulted)? Compared by name: typer
    may vendor its own click, whose ParameterSource enum is a different class."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def resolve_config(ctx: typer.Context, values: dict[str, Any], config: Path | None) -> TrainConfig:
    """Base = --config FILE.json (or the defaults); every flag given explicitly overrides it.
    The file may be nested, flat, the reference homework's TrainingConfig or a run's
    config.json (prefixopt.config.train_config_from_mapping)."""
    import json

    from prefixopt.config import SEED_IGNORED_KEYS, train_config_from_mapping

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


def _load_inputs(cfg: TrainConfig):
    from prefixopt.benchmarks import load_split
    from prefixopt.people import load_people

    questions = load_split(cfg.task.benchmark, cfg.train_split, data_dir=cfg.task.data_dir,
                           purpose="train")
    if cfg.batch_size > len(questions):
        raise PrefixoptError(f"--batch-size {cfg.batch_size} is larger than the training split "
                             f"({len(questions)} questions); lower it")
    people = load_people(cfg.people, exclude_fields=cfg.exclude_fields,
                         exclude_occupations=cfg.exclude_occupations)
    return questions, people


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        ctx: typer.Context,
        benchmark: Annotated[str, typer.Option(help="mmlu | gsm8k | arc_easy | arc_challenge | hellaswag")] = D.task.benchmark,
        model: Annotated[str, typer.Option(help="HF id, local path, or the alias smollm2-135m (also --model_name)")] = D.engine.model,
        scoring: Annotated[str | None, typer.Option(help="letter | cloze | generate (default: the benchmark's)")] = D.task.scoring,
        iterations: Annotated[int, typer.Option(help="Policy updates")] = D.iterations,
        samples_per_iteration: Annotated[int, typer.Option("--samples-per-iteration", "-k", help="K people sampled per iteration")] = D.samples_per_iteration,
        batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="B questions per iteration, answered by all K")] = D.batch_size,
        learning_rate: Annotated[float, typer.Option(help="Step size (also --learning_rate)")] = D.learning_rate,
        optimizer: Annotated[str, typer.Option(help="adam | sgd")] = D.optimizer,
        baseline: Annotated[str, typer.Option(help="rloo (leave-one-out) | mean | ema")] = D.baseline,
        ema_decay: Annotated[float, typer.Option(help="Decay of the ema baseline")] = D.ema_decay,
        ema_init: Annotated[float | None, typer.Option(help="Start of the ema baseline (default: first batch mean; the seed used 0)")] = D.ema_init,
        standardize: Annotated[bool, typer.Option(help="Divide advantages by the batch reward std")] = D.standardize,
        entropy_coef: Annotated[float, typer.Option(help="Entropy bonus coefficient")] = D.entropy_coef,
        parameterization: Annotated[str, typer.Option(help="factored (person + field + era logits) | tabular")] = D.parameterization,
        reward: Annotated[str, typer.Option(help="accuracy | margin (letter/cloze log-prob margin)")] = D.reward,
        common_questions: Annotated[bool, typer.Option("--common-questions/--fresh-questions", help="All K people answer the same B questions (fresh: one batch per person, the seed's way)")] = D.common_questions,
        train_split: Annotated[str | None, typer.Option(help="Training split, HF syntax ok (default: the benchmark's)")] = D.train_split,
        prompt_format: Annotated[str, typer.Option(help="chat | harness")] = D.task.prompt_format,
        prefix_template: Annotated[str, typer.Option(help="Persona template; {name} is replaced literally")] = D.task.prefix_template,
        num_fewshot: Annotated[int, typer.Option(help="Few-shot examples in each prompt")] = D.task.num_fewshot,
        data_dir: Annotated[str | None, typer.Option(help="<data_dir>/<benchmark>/<split>.jsonl")] = D.task.data_dir,
        people: Annotated[str | None, typer.Option(help="People CSV (default notable_people_10k.csv)")] = D.people,
        exclude_fields: Annotated[list[str] | None, typer.Option("--exclude-field", help="Drop a field (repeatable)")] = None,
        exclude_occupations: Annotated[list[str] | None, typer.Option("--exclude-occupation", help="Drop an occupation (repeatable)")] = None,
        checkpoint_every: Annotated[int, typer.Option(help="theta snapshot every N iterations")] = D.checkpoint_every,
        seed: Annotated[int, typer.Option(help="Seed of the run's Generator and the engine")] = D.seed,
        output_dir: Annotated[str, typer.Option(help="Where run directories go (also --output_dir)")] = D.output_dir,
        run_name: Annotated[str | None, typer.Option(help="Run directory name (default: generated)")] = D.run_name,
        dtype: Annotated[str, typer.Option(help="Model dtype")] = D.engine.dtype,
        max_model_len: Annotated[int, typer.Option(help="Engine context length")] = D.engine.max_model_len,
        gpu_memory_utilization: Annotated[float, typer.Option(help="vLLM GPU memory fraction")] = D.engine.gpu_memory_utilization,
        tensor_parallel_size: Annotated[int, typer.Option(help="vLLM tensor parallel size")] = D.engine.tensor_parallel_size,
        data_parallel_size: Annotated[int, typer.Option(help="vLLM data parallel size")] = D.engine.data_parallel_size,
        load_in_4bit: Annotated[bool, typer.Option(help="bitsandbytes 4-bit (also --load_in_4bit)")] = D.engine.load_in_4bit,
        enable_prefix_caching: Annotated[bool, typer.Option(help="vLLM automatic prefix caching")] = D.engine.enable_prefix_caching,
        trust_remote_code: Annotated[bool, typer.Option(help="Allow model repo code")] = D.engine.trust_remote_code,
        enforce_eager: Annotated[bool, typer.Option(help="Disable CUDA graphs")] = D.engine.enforce_eager,
        block_size: Annotated[int | None, typer.Option(help="vLLM prefix-cache block in tokens (default: 32 on CPU, vLLM's 16 on CUDA)")] = D.engine.block_size,
        cpu_kvcache_gib: Annotated[float, typer.Option(help="KV cache GiB on CPU machines")] = D.engine.cpu_kvcache_gib,
        config: Annotated[Path | None, typer.Option(help="TrainConfig JSON; flags given here override it")] = None,
        resume: Annotated[Path | None, typer.Option(help="Continue this run directory (only --iterations may change)")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary last")] = False,
        engine: Annotated[str, typer.Option(hidden=True, help="vllm | synthetic (tests)")] = "vllm",
    ) -> None:
        """REINFORCE training of the persona policy on a benchmark."""
        from prefixopt import runs

        values = {k: v for k, v in ctx.params.items()
                  if k not in ("config", "resume", "json_out", "engine")}
        if resume is not None:
            changed = [k for k in values if k not in ("iterations", "engine") and given(ctx, k)]
            if changed:
                fail(f"--resume continues a run as configured; drop --{changed[0].replace('_', '-')}"
                     " (only --iterations may change)")
            cfg = runs.read_train_config(resume)
            if not given(ctx, "engine"):  # a synthetic run continues on the synthetic engine
                stored = runs.read_config(resume).get("versions", {}).get("engine")
                engine = "synthetic" if stored == "synthetic" else "vllm"
            if given(ctx, "iterations"):
                cfg = dataclasses.replace(cfg, iterations=iterations)
        else:
            cfg = resolve_config(ctx, values, config)
        if engine not in ("vllm", "synthetic"):
            fail(f"--engine {engine!r} is not one of: vllm, synthetic")
        summary = run_train(cfg, resume=resume, engine_kind=engine, quiet=json_out)
        if json_out:
            print_json(summary)
        else:
            err_console.print(f"run: {summary['run_dir']}  iterations: {summary['iterations_done']}"
                              f"  entropy: {summary['entropy']:.3f}")
            for row in summary["top"][:5]:
                err_console.print(f"  {row['prob']:.4f}  {row['name']} ({row['field']})")

    @app.command()
    def simulate(
        ctx: typer.Context,
        planted_field: Annotated[str | None, typer.Option(help="Everyone in this field is --delta more accurate")] = None,
        planted_people: Annotated[int | None, typer.Option(help="This many random people are --delta more accurate")] = None,
        null: Annotated[bool, typer.Option("--null", help="No effect: everyone at --base-accuracy")] = False,
        delta: Annotated[float, typer.Option(help="Accuracy advantage of the planted set")] = 0.1,
        base_accuracy: Annotated[float, typer.Option(help="Accuracy of everyone else (and of no prefix)")] = 0.5,
        difficulty_sd: Annotated[float, typer.Option(help="SD of the per-question difficulty (logit scale)")] = 1.0,
        budget: Annotated[int, typer.Option(help="Question evaluations (iterations = budget // (K*B))")] = 50_000,
        samples_per_iteration: Annotated[int, typer.Option("--samples-per-iteration", "-k", help="K people per iteration")] = D.samples_per_iteration,
        batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="B questions per iteration")] = D.batch_size,
        learning_rate: Annotated[float, typer.Option(help="Step size")] = D.learning_rate,
        optimizer: Annotated[str, typer.Option(help="adam | sgd")] = D.optimizer,
        baseline: Annotated[str, typer.Option(help="rloo | mean | ema")] = D.baseline,
        ema_init: Annotated[float | None, typer.Option(help="Start of the ema baseline (seed: 0)")] = D.ema_init,
        standardize: Annotated[bool, typer.Option(help="Divide advantages by the reward std")] = D.standardize,
        entropy_coef: Annotated[float, typer.Option(help="Entropy bonus coefficient")] = D.entropy_coef,
        parameterization: Annotated[str, typer.Option(help="factored | tabular")] = D.parameterization,
        common_questions: Annotated[bool, typer.Option("--common-questions/--fresh-questions", help="Shared question batch (fresh: per person, the seed's way)")] = D.common_questions,
        benchmark: Annotated[str, typer.Option(help="Whose training question ids to ask")] = D.task.benchmark,
        train_split: Annotated[str | None, typer.Option(help="Training split")] = D.train_split,
        data_dir: Annotated[str | None, typer.Option(help="<data_dir>/<benchmark>/<split>.jsonl")] = D.task.data_dir,
        people: Annotated[str | None, typer.Option(help="People CSV (default notable_people_10k.csv)")] = D.people,
        seed: Annotated[int, typer.Option(help="Seed of the run and of the synthetic answers")] = D.seed,
        out: Annotated[Path | None, typer.Option(help="Keep the run here (a new directory) for eval/report")] = None,
        json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary last")] = False,
    ) -> None:
        """Run the learner on the synthetic engine (planted accuracies), no LLM."""
        if sum([planted_field is not None, planted_people is not None, null]) != 1:
            fail("choose exactly one scenario: --planted-field FIELD, --planted-people N or --null")
        if not 0 < base_accuracy < 1 or not 0 < base_accuracy + delta < 1:
            fail(f"--base-accuracy {base_accuracy} + --delta {delta} must stay inside (0, 1)")
        if budget < 1:
            fail(f"--budget must be >= 1 question evaluation (got {budget})")
        values = {k: v for k, v in ctx.params.items()
                  if k in D.__dataclass_fields__ or k in TASK_KEYS}
        cfg = resolve_config(ctx, values, None)
        cfg = dataclasses.replace(cfg, run_name=None, engine=dataclasses.replace(
            cfg.engine, model="synthetic"))
        summary = run_simulate(cfg, planted_field, planted_people, delta, base_accuracy,
                               difficulty_sd, budget, out, json_out)
        if json_out:
            print_json(summary)
            return
        err_console.print(f"{summary['description']}: planted mass {summary['planted_mass']:.3f} "
                          f"(pool share {summary['pool_share']:.3f}), entropy "
                          f"{summary['entropy']:.2f}/{summary['max_entropy']:.2f}, largest field "
                          f"{summary['largest_field']} at {summary['largest_field_ratio']:.1f}x its "
                          f"share, {summary['evaluations']:,} evaluations")


def run_simulate(cfg: TrainConfig, planted_field: str | None, planted_people: int | None,
                 delta: float, base_accuracy: float, difficulty_sd: float, budget: int,
                 out: Path | None, quiet: bool) -> dict:
    import numpy as np

    from prefixopt import runs, synthetic
    from prefixopt.train import validate

    validate(cfg)
    questions, people = _load_inputs(cfg)
    if planted_field is not None:
        scenario = synthetic.planted_field(people, planted_field, delta, base_accuracy)
    elif planted_people is not None:
        rng = np.random.default_rng([cfg.seed, 1])  # the planted set, apart from the run's rng
        scenario = synthetic.planted_people(people, planted_people, delta, base_accuracy, rng)
    else:
        scenario = synthetic.null(people, base_accuracy)
    iterations = max(1, budget // (cfg.samples_per_iteration * cfg.batch_size))
    with contextlib.ExitStack() as stack:
        if out is None:
            run_dir = stack.enter_context(runs.temp_run_dir())
        else:
            run_dir = runs.create_run_dir(out.parent, out.name)
        update = stack.enter_context(progress_bar(iterations, "simulate", quiet))
        return synthetic.simulate(cfg, scenario, people, questions, budget=budget,
                                  run_dir=run_dir, base_accuracy=base_accuracy,
                                  difficulty_sd=difficulty_sd, progress=update)


def run_train(cfg: TrainConfig, *, resume: Path | None, engine_kind: str, quiet: bool) -> dict:
    """Validate, load data and people, build the engine, run the loop with a progress bar."""
    import numpy as np

    from prefixopt import runs
    from prefixopt.train import train, validate

    validate(cfg)
    questions, people = _load_inputs(cfg)
    if engine_kind == "synthetic" and resume is not None and "synthetic" in runs.read_config(resume):
        from prefixopt.evaluate import synthetic_engine_for_run

        eng = synthetic_engine_for_run(resume)  # a simulate run continues on its planted engine
    elif engine_kind == "synthetic":
        from prefixopt.synthetic import SyntheticEngine

        eng = SyntheticEngine(people, np.full(len(people.person_id), 0.5), seed=cfg.seed)
    else:
        from prefixopt.engine import build_engine

        eng = build_engine(cfg.engine)
    fewshot = ()
    if cfg.task.num_fewshot:
        from prefixopt.benchmarks import fewshot_split  # noqa: F401  (documents the source)
        from prefixopt.prompts import fewshot_examples

        fewshot = fewshot_examples(cfg.task.benchmark, cfg.task.num_fewshot, cfg.seed,
                                   cfg.task.data_dir, exclude_ids=())
    run_dir = resume if resume is not None else runs.create_run_dir(cfg.output_dir, cfg.run_name)
    with progress_bar(cfg.iterations, "train", quiet) as update:
        return train(cfg, eng, people, questions, run_dir, progress=update,
                     resume=resume is not None, fewshot=fewshot)
