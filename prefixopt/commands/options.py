"""Each option of the learner and evaluation commands declared ONCE, as the parameters of a
dummy function (defaults from config.py, the one place they live). `with_options` gives a
command the parameters of several groups (typer reads `inspect.signature`), so `train` and `run`
share the train options and `run` adds the eval ones with an `eval-` prefix.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from prefixopt.engines import serve
from prefixopt.benchmarks import BENCHMARKS
from prefixopt.config import EvalConfig, TrainConfig

D = TrainConfig()
E = EvalConfig()


def _floats(value: str | None) -> tuple[float, ...] | None:
    """"1,1,2" -> (1.0, 1.0, 2.0)."""
    if value is None or isinstance(value, tuple):
        return value
    try:
        return tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"{value!r}: give numbers separated by commas, e.g. 1,1,2")


def _names(value: str | None) -> tuple[str, ...] | None:
    """"chat,harness" -> ("chat", "harness")."""
    if value is None or isinstance(value, tuple):
        return value
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _train(
    benchmark: Annotated[str, typer.Option(help=f"{' | '.join(BENCHMARKS)}, or several: mmlu,gsm8k,arc_challenge")] = D.task.benchmark,
    model: Annotated[str, typer.Option(help="HF id, local path, or the alias smollm2-135m (also --model_name)")] = D.engine.model,
    scoring: Annotated[str | None, typer.Option(help="letter | cloze | generate (default: the benchmark's)")] = D.task.scoring,
    learner: Annotated[str, typer.Option(help="reinforce (softmax policy) | halving (batched sequential halving) | ttts (top-two Thompson sampling); halving and ttts spend iterations x K x B evaluations")] = D.learner,
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
    group_min_people: Annotated[int, typer.Option(help="A field or era term moves at full speed only while its probability is spread over >= this many members (0: off; docs/learner_study.md)")] = D.group_min_people,
    logit_decay: Annotated[float, typer.Option(help="Decay of the logits towards uniform, per step x learning rate, outside Adam (0: off; docs/learner_study.md)")] = D.logit_decay,
    parameterization: Annotated[str, typer.Option(help="factored (person + field + era logits) | tabular")] = D.parameterization,
    reward: Annotated[str, typer.Option(help="accuracy | margin (letter/cloze log-prob margin)")] = D.reward,
    benchmark_weights: Annotated[str | None, typer.Option(callback=_floats, help="Several benchmarks: each iteration's B questions split by these weights, e.g. 1,1,2 (default: equal)")] = None,
    context: Annotated[str | None, typer.Option(help="benchmark | subject: learn pi(person | context), people sampled per context (default: one policy)")] = D.context,
    common_questions: Annotated[bool, typer.Option("--common-questions/--fresh-questions", help="All K people answer the same B questions (fresh: one batch per person, the seed's way)")] = D.common_questions,
    train_split: Annotated[str | None, typer.Option(help="Training split, HF syntax ok (default: the benchmark's)")] = D.train_split,
    prompt_format: Annotated[str, typer.Option(help="chat | harness")] = D.task.prompt_format,
    prefix_template: Annotated[str, typer.Option(help="Persona template; {name} is replaced literally")] = D.task.prefix_template,
    num_fewshot: Annotated[int, typer.Option(help="Few-shot examples in each prompt")] = D.task.num_fewshot,
    data_dir: Annotated[str | None, typer.Option(envvar="PREFIXOPT_DATA_DIR", help="<data_dir>/<benchmark>/<split>.jsonl (default: ../shared/data/benchmarks when it exists, else the hub)")] = D.task.data_dir,
    people: Annotated[str | None, typer.Option(help="People CSV (default notable_people_10k.csv)")] = D.people,
    exclude_fields: Annotated[list[str] | None, typer.Option("--exclude-field", help="Drop a field (repeatable)")] = None,
    exclude_occupations: Annotated[list[str] | None, typer.Option("--exclude-occupation", help="Drop an occupation (repeatable)")] = None,
    checkpoint_every: Annotated[int, typer.Option(help="theta snapshot every N iterations")] = D.checkpoint_every,
    seed: Annotated[int, typer.Option(help="Seed of the run's Generator and the engine")] = D.seed,
    output_dir: Annotated[str, typer.Option(help="Where run directories go (also --output_dir)")] = D.output_dir,
    run_name: Annotated[str | None, typer.Option(help="Run directory name (default: generated)")] = D.run_name,
    dtype: Annotated[str, typer.Option(help="auto: bfloat16 on a CPU with native bf16 (avx512_bf16/amx_bf16), float32 on other CPUs, the model's dtype on CUDA; or float32 | bfloat16 | float16")] = D.engine.dtype,
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
    base_url: Annotated[str | None, typer.Option(help="--engine openai: the endpoint, e.g. http://127.0.0.1:8000/v1 (what `prefixopt serve` prints) or a hosted API")] = D.engine.base_url,
    api_key_env: Annotated[str, typer.Option(help="--engine openai: environment variable (or ./.env entry) holding the API key; never printed or stored")] = D.engine.api_key_env,
    api: Annotated[str, typer.Option(help="--engine openai: auto (completions for a vLLM server, else chat) | completions | chat")] = D.engine.api,
    max_concurrency: Annotated[int, typer.Option(help="--engine openai: requests in flight at once")] = D.engine.max_concurrency,
    request_timeout: Annotated[float, typer.Option(help="--engine openai: seconds to wait for one answer")] = D.engine.request_timeout,
    max_retries: Annotated[int, typer.Option(help="--engine openai: retries per request (backoff on 429/5xx/connection errors)")] = D.engine.max_retries,
) -> None:
    """The options of a training run (TrainConfig, its EngineConfig and TaskConfig)."""


def _job(
    config: Annotated[Path | None, typer.Option(help="Config JSON (nested, flat, the seed's TrainingConfig, or a run's config.json); flags given here override it")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue this run directory (only --iterations may change)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show vLLM/torch logging on the terminal (default: RUN/engine.log)")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary last")] = False,
    engine: Annotated[str, typer.Option(help="vllm (in-process) | openai (an endpoint: --base-url) | synthetic (planted accuracies, no LLM)")] = "vllm",
) -> None:
    """The options of a job: where its config comes from, resume, output."""


def _eval(
    eval_split: Annotated[str | None, typer.Option(help="Held-out split, HF syntax (default: the benchmark's eval split)")] = E.eval_split,
    eval_num_questions: Annotated[int | None, typer.Option(help="Evaluate N held-out questions drawn with --seed (default: all)")] = E.num_questions,
    eval_top_k: Annotated[int, typer.Option(help="Learned people evaluated: the top-k by final probability")] = E.top_k,
    eval_num_random: Annotated[int, typer.Option(help="Random people drawn uniformly from the pool")] = E.num_random,
    eval_prompt: Annotated[list[str] | None, typer.Option(help="Extra hand-written system prompt (repeatable)")] = None,
    eval_people: Annotated[list[str] | None, typer.Option(help="Also evaluate this named person (repeatable)")] = None,
    eval_handwritten: Annotated[bool, typer.Option(help="Include the hand-written prompts")] = E.handwritten,
    eval_allow_overlap: Annotated[bool, typer.Option(help="Evaluate even if the eval split overlaps the training split")] = E.allow_overlap,
    eval_bootstrap_samples: Annotated[int, typer.Option(help="Paired-bootstrap resamples")] = E.bootstrap_samples,
    eval_name: Annotated[str | None, typer.Option(help="Name of the eval tables (default: from the split, N and seed)")] = E.name,
) -> None:
    """The options of the held-out evaluation inside `prefixopt run`."""


def _eval_cmd(
    run: Annotated[Path | None, typer.Argument(help="Run directory (omit with --people or --only-baseline and --benchmark).")] = None,
    benchmark: Annotated[str | None, typer.Option(help="Benchmark (default: the run's).")] = None,
    eval_split: Annotated[str | None, typer.Option(help="Held-out split, HF syntax (default: the benchmark's eval split).")] = E.eval_split,
    num_questions: Annotated[int | None, typer.Option(help="Evaluate N questions drawn with --seed (default: all).")] = E.num_questions,
    top_k: Annotated[int, typer.Option(help="Learned people: the top-k by final probability.")] = E.top_k,
    num_random: Annotated[int, typer.Option(help="Random people drawn uniformly from the pool.")] = E.num_random,
    prompt: Annotated[list[str] | None, typer.Option(help="Extra hand-written system prompt (repeatable).")] = None,
    people: Annotated[list[str] | None, typer.Option("--people", help="Evaluate this named person (repeatable; no run needed).")] = None,
    people_file: Annotated[str | None, typer.Option(help="People CSV without a run (default: notable_people_10k.csv).")] = E.people,
    handwritten: Annotated[bool, typer.Option(help="Include the hand-written prompts.")] = E.handwritten,
    only_baseline: Annotated[bool, typer.Option(help="Score the no-prefix baseline only (speed check against the harness).")] = False,
    allow_overlap: Annotated[bool, typer.Option(help="Evaluate even if the split overlaps the run's training questions.")] = E.allow_overlap,
    bootstrap_samples: Annotated[int, typer.Option(help="Paired-bootstrap resamples.")] = E.bootstrap_samples,
    seed: Annotated[int, typer.Option(help="Seed: question subsample, random people, bootstrap.")] = E.seed,
    engine: Annotated[str | None, typer.Option(help="vllm | openai | synthetic (default: the run's engine; vllm without a run)")] = None,
    base_url: Annotated[str | None, typer.Option(help="--engine openai: the endpoint (default: the run's)")] = None,
    api: Annotated[str | None, typer.Option(help="--engine openai: auto | completions | chat (default: the run's)")] = None,
    api_key_env: Annotated[str | None, typer.Option(help="--engine openai: variable holding the API key (default: the run's, else OPENAI_API_KEY)")] = None,
    max_concurrency: Annotated[int | None, typer.Option(help="--engine openai: requests in flight at once")] = None,
    model: Annotated[str | None, typer.Option(help="Model (default: the run's).")] = None,
    scoring: Annotated[str | None, typer.Option(help="letter | cloze | generate (default: the run's).")] = None,
    prompt_format: Annotated[str | None, typer.Option(help="chat | harness (default: the run's).")] = None,
    formats: Annotated[str | None, typer.Option(callback=_names, help="chat,harness: the same prefixes in both formats in one engine call, compared (a finding must survive both)")] = None,
    num_fewshot: Annotated[int | None, typer.Option(help="Few-shot examples (default: the run's).")] = None,
    data_dir: Annotated[str | None, typer.Option(envvar="PREFIXOPT_DATA_DIR", help="Benchmark data directory.")] = None,
    output_dir: Annotated[str, typer.Option(help="Where an eval without a run is written.")] = E.output_dir,
    run_name: Annotated[str | None, typer.Option(help="Directory name for an eval without a run.")] = E.run_name,
    name: Annotated[str | None, typer.Option(help="Name of the eval tables (default: from the split, N and seed).")] = E.name,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing eval of that name.")] = E.overwrite,
    dtype: Annotated[str | None, typer.Option(help="auto | float32 | bfloat16 | float16 (default: the run's)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show vLLM/torch logging (default: RUN/engine.log).")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary last.")] = False,
) -> None:
    """The options of `prefixopt eval` (defaults from EvalConfig)."""


def _simulate(
    planted_field: Annotated[list[str] | None, typer.Option(help="Everyone in this field is --delta more accurate; BENCHMARK=FIELD plants it on one benchmark only (repeatable)")] = None,
    planted_people: Annotated[int | None, typer.Option(help="This many random people are --delta more accurate")] = None,
    null: Annotated[bool, typer.Option("--null", help="No effect: everyone at --base-accuracy")] = False,
    small_effects: Annotated[float | None, typer.Option(help="Many small effects: each person's accuracy ~ N(--base-accuracy, SD), e.g. 0.02; 'planted' = the top 1% by accuracy")] = None,
    delta: Annotated[float, typer.Option(help="Accuracy advantage of the planted set")] = 0.1,
    base_accuracy: Annotated[float, typer.Option(help="Accuracy of everyone else (and of no prefix)")] = 0.5,
    difficulty_sd: Annotated[float, typer.Option(help="SD of the per-question difficulty (logit scale)")] = 1.0,
    budget: Annotated[int, typer.Option(help="Question evaluations (iterations = budget // (K*B))")] = 50_000,
    out: Annotated[Path | None, typer.Option(help="Keep the run here (a new directory) for eval/report")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary last")] = False,
) -> None:
    """The planted scenario of `prefixopt simulate` (the learner options come from _train)."""


def _serve(
    port: Annotated[int, typer.Option(help="TCP port of the server")] = serve.DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0: every interface; vLLM checks a key only when VLLM_API_KEY is set)")] = serve.DEFAULT_HOST,
    served_model_name: Annotated[str | None, typer.Option(help="The model name clients send (default: --model as given)")] = None,
    log: Annotated[Path | None, typer.Option(help="Server output file (default: $TMPDIR/prefixopt-serve-PORT.log)")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Server output on this terminal instead of --log")] = False,
    dev_mode: Annotated[bool, typer.Option(help="vLLM's dev routes (POST /reset_prefix_cache, ...): trusted hosts only")] = False,
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for the first answer")] = serve.READY_TIMEOUT_S,
) -> None:
    """The options of `prefixopt serve` (the engine options come from _train)."""


def _params(fn: Callable[..., Any]) -> list[inspect.Parameter]:
    hints = typing.get_type_hints(fn, include_extras=True)  # annotations as objects
    return [p.replace(annotation=hints[p.name], kind=inspect.Parameter.KEYWORD_ONLY)
            for p in inspect.signature(fn).parameters.values()]


TRAIN = _params(_train)
JOB = _params(_job)
EVAL = _params(_eval)
SIMULATE = _params(_simulate)
EVAL_CMD = _params(_eval_cmd)
SERVE = _params(_serve)
TRAIN_NAMES = frozenset(p.name for p in TRAIN)
# the engine options (EngineConfig), shared by `serve`
ENGINE = [p for p in TRAIN if p.name in {
    "model", "dtype", "max_model_len", "gpu_memory_utilization", "tensor_parallel_size",
    "data_parallel_size", "load_in_4bit", "enable_prefix_caching", "trust_remote_code",
    "enforce_eager", "block_size", "cpu_kvcache_gib"}]
# what `simulate` shares with `train`: the learner and the questions it is asked, not the model
LEARNER = [p for p in TRAIN if p.name in {
    "learner", "samples_per_iteration", "batch_size", "learning_rate", "optimizer", "baseline", "ema_decay",
    "ema_init", "standardize", "entropy_coef", "group_min_people", "logit_decay",
    "parameterization", "common_questions",
    "benchmark_weights", "context",
    "benchmark", "train_split", "data_dir", "people", "exclude_fields", "exclude_occupations",
    "seed"}]


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
    return {
        "eval_split": values["eval_split"], "num_questions": values["eval_num_questions"],
        "top_k": values["eval_top_k"], "num_random": values["eval_num_random"],
        "prompts": tuple(values["eval_prompt"] or ()),
        "people_names": tuple(values["eval_people"] or ()),
        "handwritten": values["eval_handwritten"], "allow_overlap": values["eval_allow_overlap"],
        "bootstrap_samples": values["eval_bootstrap_samples"], "name": values["eval_name"],
    }
