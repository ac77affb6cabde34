"""Every command's options derived from the config fields it sets: a field's metadata
(config.opt) carries its help, flags and per-command differences, its default is the field's.
`options(command, names, *classes)` builds the typer parameters; `with_options` gives a command
function the parameters of several groups (typer reads `inspect.signature`).
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from prefixopt.benchmarks import BENCHMARKS
from prefixopt.config import EngineConfig, EvalConfig, TaskConfig, TrainConfig
from prefixopt.config_cli import BenchConfig, CommandOptions, SimulateConfig
from prefixopt.engines import serve
from prefixopt.study.spec import StudyConfig


def _floats(value: str | None) -> tuple[float, ...] | None:
    """"1,1,2" -> (1.0, 1.0, 2.0)."""
    if value is None or isinstance(value, tuple):
        return value
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: give numbers separated by commas, e.g. 1,1,2") from None


def _names(value: str | None) -> tuple[str, ...] | None:
    """"chat,harness" -> ("chat", "harness")."""
    if value is None or isinstance(value, tuple):
        return value
    return tuple(v.strip() for v in value.split(",") if v.strip())


PARSERS = {"floats": _floats, "names": _names}


def _hint(hint: Any, default: Any, parse: str | None) -> Any:
    """The option's type: a comma string for `parse`, a repeatable list for a tuple field,
    optional when the default is None."""
    if parse is not None:
        return str | None
    if typing.get_origin(hint) is tuple:
        return list[typing.get_args(hint)[0]] | None
    if default is None and type(None) not in typing.get_args(hint):
        return hint | None
    return hint


def option(cls: type, name: str, command: str | None = None) -> inspect.Parameter:
    """The typer parameter of `cls.name` in `command` (its metadata's `command` entry, if any,
    overrides help, default, name, flags or type)."""
    spec = {f.name: f for f in dataclasses.fields(cls)}[name]
    meta = dict(spec.metadata)
    meta.update(meta.get(command) or {})
    hint = meta.get("type") or typing.get_type_hints(cls)[name]
    default = meta.get("default", spec.default)
    parse = meta.get("parse")
    hint = _hint(hint, default, parse)
    if parse is not None or isinstance(default, tuple):
        default = None  # a list option's "not given"; the config's () stands
    kwargs: dict[str, Any] = {"help": meta["help"].replace("{BENCHMARKS}", " | ".join(BENCHMARKS))}
    if meta.get("envvar"):
        kwargs["envvar"] = meta["envvar"]
    if parse is not None:
        kwargs["callback"] = PARSERS[parse]
    info = (typer.Argument(**kwargs) if meta.get("argument")
            else typer.Option(*meta.get("flag", ()), **kwargs))
    return inspect.Parameter(meta.get("name") or name, inspect.Parameter.KEYWORD_ONLY,
                             default=default, annotation=Annotated[hint, info])


def options(command: str | None, names: str, *classes: type) -> list[inspect.Parameter]:
    """The parameters of these fields, in this order; each name from the first class with it."""
    out = []
    for name in names.split():
        cls = next(c for c in classes if name in {f.name for f in dataclasses.fields(c)})
        out.append(option(cls, name, command))
    return out


RUN_CLASSES = (TrainConfig, TaskConfig, EngineConfig)
TRAIN = options(None, """
    benchmark model scoring learner iterations samples_per_iteration batch_size learning_rate
    optimizer baseline ema_decay ema_init standardize entropy_coef group_min_people logit_decay
    parameterization reward benchmark_weights context common_questions train_split prompt_format
    prefix_template num_fewshot data_dir people exclude_fields exclude_occupations
    checkpoint_every seed output_dir run_name dtype max_model_len gpu_memory_utilization
    tensor_parallel_size data_parallel_size load_in_4bit enable_prefix_caching trust_remote_code
    enforce_eager block_size cpu_kvcache_gib base_url api_key_env api max_concurrency
    request_timeout max_retries""", *RUN_CLASSES)
JOB = options(None, "config resume verbose json_out kind", CommandOptions, EngineConfig)
RUN_EVAL_FIELDS = ("eval_split num_questions top_k num_random prompts people_names handwritten "
                   "paraphrase_null allow_overlap bootstrap_samples name")
EVAL = options("run", RUN_EVAL_FIELDS, EvalConfig)
SIMULATE = options(None, """planted_field planted_people null small_effects delta base_accuracy
                   difficulty_sd budget out json_out""", SimulateConfig, CommandOptions)
EVAL_CMD = options("eval", """
    run benchmark eval_split num_questions top_k num_random prompts people_names people
    handwritten paraphrase_null only_baseline allow_overlap bootstrap_samples seed kind base_url
    api api_key_env max_concurrency model scoring prompt_format formats num_fewshot data_dir
    output_dir run_name name overwrite dtype mde verbose json_out""",
    EvalConfig, TaskConfig, EngineConfig, CommandOptions)
BENCH = options("bench", """
    model benchmark scoring prompt_format num_fewshot k b sequential_subset batched_subset dtype
    max_model_len data_dir people seed block_size enforce_eager verbose json_out kind base_url api
    api_key_env max_concurrency repeats""", BenchConfig, TaskConfig, EngineConfig, CommandOptions)
STUDY = options("study", "resume output_dir data_dir verbose json_out engine base_url "
                "max_concurrency mde", CommandOptions, StudyConfig, TaskConfig, EngineConfig)
MDE = options(None, "mde", CommandOptions)  # run's header check (eval and study have it too)
TRAIN_NAMES = frozenset(p.name for p in TRAIN)


def _serve(
    port: Annotated[int, typer.Option(help="TCP port of the server")] = serve.DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface; "
                                      "vLLM checks a key only when VLLM_API_KEY is set)")] = (
        serve.DEFAULT_HOST),
    served_model_name: Annotated[str | None, typer.Option(
        help="The model name clients send (default: --model as given)")] = None,
    log: Annotated[Path | None, typer.Option(
        help="Server output file (default: $TMPDIR/prefixopt-serve-PORT.log)")] = None,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Server output on this terminal instead of --log")] = False,
    dev_mode: Annotated[bool, typer.Option(
        help="vLLM's dev routes (POST /reset_prefix_cache, ...): trusted hosts only")] = False,
    ready_timeout: Annotated[float, typer.Option(
        help="Seconds to wait for the first answer")] = serve.READY_TIMEOUT_S,
) -> None:
    """The options of `prefixopt serve` that no config holds (the engine's are EngineConfig's):
    the server's own, with engines/serve.py's defaults."""


def _params(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    hints = typing.get_type_hints(fn, include_extras=True)  # annotations as objects
    return [p.replace(annotation=hints[p.name], kind=inspect.Parameter.KEYWORD_ONLY)
            for p in inspect.signature(fn).parameters.values()]


SERVE = _params(_serve)
# the engine options (EngineConfig), shared by `serve`
ENGINE = [p for p in TRAIN if p.name in {
    "model", "dtype", "max_model_len", "gpu_memory_utilization", "tensor_parallel_size",
    "data_parallel_size", "load_in_4bit", "enable_prefix_caching", "trust_remote_code",
    "enforce_eager", "block_size", "cpu_kvcache_gib"}]
# what `simulate` shares with `train`: the learner and the questions it is asked, not the model
LEARNER = [p for p in TRAIN if p.name in {
    "learner", "samples_per_iteration", "batch_size", "learning_rate", "optimizer", "baseline",
    "ema_decay", "ema_init", "standardize", "entropy_coef", "group_min_people", "logit_decay",
    "parameterization", "common_questions", "benchmark_weights", "context", "benchmark",
    "train_split", "data_dir", "people", "exclude_fields", "exclude_occupations", "seed"}]


def with_options(*groups: list[inspect.Parameter]) -> Callable[[Callable], Callable]:
    """Give `fn(ctx, **values)` the parameters of these groups (plus the typer Context)."""
    def decorate(fn: Callable) -> Callable:
        ctx = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                annotation=typer.Context)
        params = [ctx] + [p for group in groups for p in group]
        fn.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        fn.__annotations__ = {p.name: p.annotation for p in params}
        return fn

    return decorate


def eval_options(values: dict[str, Any]) -> dict[str, Any]:
    """`run`'s --eval-* values as EvalConfig fields."""
    out = {}
    for name, param in zip(RUN_EVAL_FIELDS.split(), EVAL, strict=True):
        value = values[param.name]
        out[name] = tuple(value or ()) if name in ("prompts", "people_names") else value
    return out
