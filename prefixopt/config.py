"""Frozen run configurations. Defaults live only here; CLI -> config -> function arguments.
Each field's command-line help lives on it too (`opt`): commands/options.py derives every
command's options from these fields. Each config round-trips through JSON (`to_json` /
`from_json`), so a run's config.json fully describes it; `--config FILE` is config_file.py.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

SCORINGS = ("letter", "cloze", "generate")  # the one list (engine, scoring, the Tasks)
PROMPT_FORMATS = ("chat", "harness")
DEFAULT_TEMPLATE = "You are {name}."  # the persona system prompt
# The CPU build's smallest prefix-cache block (its attention needs a multiple of 32): the engine's
# block when EngineConfig.block_size is None on a machine without CUDA.
CPU_BLOCK_SIZE = 32
DEFAULT_MODEL = "smollm2-135m"  # alias for the embedded SmolLM2-135M-Instruct (prefixopt setup)
OPENAI = "--engine openai: "
_RUNS = " (default: the run's)"


def opt(default: Any = None, help: str = "", **cli: Any) -> Any:  # noqa: A002
    """A field with its CLI option described once: `help`, and optionally `flag` (the
    option's declarations), `envvar`, `parse` ("floats" | "names": a comma string) and, per
    command, a dict of what differs there (`help`, `default`, `name`, `flag`)."""
    return field(default=default, metadata={"help": help, **cli})


def split_benchmarks(spec: str) -> tuple[str, ...]:
    """A --benchmark comma list -> its names: order kept, blanks and duplicates dropped
    ("mmlu, gsm8k,mmlu" -> ("mmlu", "gsm8k")); () for a blank spec."""
    return tuple(dict.fromkeys(b.strip() for b in spec.split(",") if b.strip()))


@dataclass(frozen=True)
class EngineConfig:
    """How to build the vLLM engine (engine.py reads this and nothing else)."""

    model: str = opt(DEFAULT_MODEL, "HF id, local path, or the alias smollm2-135m (also "
                     "--model_name)", eval={"help": "Model (default: the run's).", "default": None},
                     bench={"help": "HF id, local folder, or smollm2-135m"})
    dtype: str = opt("auto", "auto: bfloat16 on a CPU with native bf16 (avx512_bf16/amx_bf16), "
                     "float32 on other CPUs, the model's dtype on CUDA; or float32 | bfloat16 | "
                     "float16", eval={"help": "auto | float32 | bfloat16 | float16" + _RUNS,
                                      "default": None},
                     bench={"help": "model dtype for vLLM and the transformers references (auto: "
                            "CUDA -> the model's, CPU with native bf16 -> bfloat16, other CPUs -> "
                            "float32)"})
    max_model_len: int = opt(2048, "Engine context length", bench={"help": "vLLM max_model_len"})
    gpu_memory_utilization: float = opt(0.85, "vLLM GPU memory fraction")
    tensor_parallel_size: int = opt(1, "vLLM tensor parallel size")
    data_parallel_size: int = opt(1, "vLLM data parallel size")
    load_in_4bit: bool = opt(False, "bitsandbytes 4-bit (also --load_in_4bit)")  # quantization=
    enable_prefix_caching: bool = opt(True, "vLLM automatic prefix caching")
    # None: 32 on the CPU build (its smallest; vLLM's own CPU default of 128 never caches a head
    # shorter than 128 tokens: measured 1.4x slower on 0-shot ARC cloze, 1.26x on 5-shot MMLU
    # letter), vLLM's default (16) on CUDA.
    block_size: int | None = opt(None, "vLLM prefix-cache block in tokens (default: 32 on CPU, "
                                 "vLLM's 16 on CUDA)")
    trust_remote_code: bool = opt(False, "Allow model repo code")
    # None: eager on CPU (compiling costs 85-158 s at a machine's first start, ~8 s warm, and
    # the compiled model was no faster there: docs/engine_speed.md), compiled on CUDA
    enforce_eager: bool | None = opt(None, "Run vLLM eagerly: no torch.compile, no CUDA graphs "
                                     "(default: eager on CPU, compiled on CUDA)")
    cpu_kvcache_gib: float = opt(2.0, "KV cache GiB on CPU machines")  # VLLM_CPU_KVCACHE_SPACE
    seed: int = 0
    # recorded once; the CLI's --engine
    kind: str = opt("vllm", "vllm (in-process) | openai (an endpoint: --base-url) | synthetic "
                    "(planted accuracies, no LLM)", name="engine",
                    eval={"help": "vllm | openai | synthetic (default: the run's engine; vllm "
                          "without a run)", "default": None},
                    bench={"help": "vllm (in-process: ways (a)-(e)) | openai (an endpoint: one "
                           "iteration's time and the client's share of it)"})
    # --engine openai: the endpoint (a vLLM server or a hosted API). The key is read at start
    # from the environment variable api_key_env (or ./.env) and never written anywhere.
    base_url: str | None = opt(
        None, OPENAI + "the endpoint, e.g. http://127.0.0.1:8000/v1 (what `prefixopt serve` "
        "prints) or a hosted API", eval={"help": OPENAI + "the endpoint" + _RUNS},
        bench={"help": OPENAI + "the endpoint"},
        study={"help": OPENAI + "the endpoint every model is asked through (default: the spec's "
               "[train] base_url)"})
    api_key_env: str = opt(
        "OPENAI_API_KEY", OPENAI + "environment variable (or ./.env entry) holding the API key; "
        "never printed or stored", eval={"help": OPENAI + "variable holding the API key (default: "
                                         "the run's, else OPENAI_API_KEY)", "default": None},
        bench={"help": OPENAI + "variable (or ./.env entry) holding the key"})
    api: str = opt("auto", OPENAI + "auto (completions for a vLLM server, else chat) | "
                   "completions | chat",
                   eval={"help": OPENAI + "auto | completions | chat" + _RUNS, "default": None},
                   bench={"help": OPENAI + "auto | completions | chat"})
    max_concurrency: int = opt(64, OPENAI + "requests in flight at once",
                               eval={"default": None}, study={"default": None},
                               bench={"help": OPENAI + "requests in flight"})
    request_timeout: float = opt(300.0, OPENAI + "seconds to wait for one answer")
    max_retries: int = opt(5, OPENAI + "retries per request (backoff on 429/5xx/connection "
                           "errors)")


@dataclass(frozen=True)
class TaskConfig:
    """What is asked and how answers are read."""

    benchmark: str = opt("arc_easy", "{BENCHMARKS}, or several: mmlu,gsm8k,arc_challenge",
                         eval={"help": "Benchmark (default: the run's).", "default": None},
                         bench={"help": "benchmark the questions come from"})
    scoring: str | None = opt(None, "letter | cloze | generate (default: the benchmark's)",
                              eval={"help": "letter | cloze | generate (default: the run's)."})
    prompt_format: str = opt("chat", "chat | harness", eval={
        "help": "chat | harness (default: the run's).", "default": None})
    prefix_template: str = opt(DEFAULT_TEMPLATE, "Persona template; {name} is replaced literally")
    num_fewshot: int = opt(0, "Few-shot examples in each prompt",
                           eval={"help": "Few-shot examples (default: the run's).",
                                 "default": None},
                           bench={"help": "solved examples in every prompt"})
    data_dir: str | None = opt(  # <data_dir>/<benchmark>/<split>.jsonl; None -> default search
        None, "<data_dir>/<benchmark>/<split>.jsonl (default: ../shared/data/benchmarks when it "
        "exists, else the hub)", envvar="PREFIXOPT_DATA_DIR",
        eval={"help": "Benchmark data directory."},
        bench={"help": "<dir>/<benchmark>/<split>.jsonl"},
        study={"help": "Benchmark data directory (unless the spec's [train] sets data_dir)."})

    @property
    def benchmarks(self) -> tuple[str, ...]:
        """`benchmark` parsed once: "mmlu,gsm8k" -> ("mmlu", "gsm8k")."""
        return split_benchmarks(self.benchmark)


@dataclass(frozen=True)
class TrainConfig:
    """A learning run over the people table (REINFORCE by default)."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    train_split: str | None = opt(None, "Training split, HF syntax ok (default: the benchmark's)")
    people: str | None = opt(None, "People CSV (default notable_people_10k.csv)")
    exclude_fields: tuple[str, ...] = opt((), "Drop a field (repeatable)",
                                          flag=("--exclude-field",))
    exclude_occupations: tuple[str, ...] = opt((), "Drop an occupation (repeatable)",
                                               flag=("--exclude-occupation",))
    # prefixopt/learn/learners.py; the budget is iterations x K x B evaluations for all
    learner: str = opt("reinforce", "reinforce (softmax policy) | halving (batched sequential "
                       "halving) | ttts (top-two Thompson sampling); halving and ttts spend "
                       "iterations x K x B evaluations")
    iterations: int = opt(20, "Policy updates")
    samples_per_iteration: int = opt(16, "K people sampled per iteration",
                                     flag=("--samples-per-iteration", "-k"))
    batch_size: int = opt(32, "B questions per iteration, answered by all K",
                          flag=("--batch-size", "-b"))
    # Adam; chosen with `prefixopt simulate` (docs/learner_study.md)
    learning_rate: float = opt(0.05, "Step size (also --learning_rate)")
    optimizer: str = opt("adam", "adam | sgd")
    baseline: str = opt("rloo", "rloo (leave-one-out) | mean | ema")
    ema_decay: float = opt(0.9, "Decay of the ema baseline")
    ema_init: float | None = opt(None, "Start of the ema baseline (default: first batch mean; "
                                 "the seed used 0)")
    standardize: bool = opt(False, "Divide advantages by the batch reward std")
    entropy_coef: float = opt(0.0, "Entropy bonus coefficient")
    # without it one lucky person carried its whole field
    group_min_people: int = opt(20, "A field or era term moves at full speed only while its "
                                "probability is spread over >= this many members (0: off; "
                                "docs/learner_study.md)")
    # outside Adam (AdamW's weight decay): the restoring force that keeps a run from fixing on a
    # person without evidence. 20 and 0.02 chosen with `simulate` ("REINFORCE commits")
    logit_decay: float = opt(0.02, "Decay of the logits towards uniform, per step x learning "
                             "rate, outside Adam (0: off; docs/learner_study.md)")
    parameterization: str = opt("factored", "factored (person + field + era logits) | tabular")
    reward: str = opt("accuracy", "accuracy | margin (letter/cloze log-prob margin)")
    benchmark_weights: tuple[float, ...] = opt(
        (), "Several benchmarks: each iteration's B questions split by these weights, e.g. 1,1,2 "
        "(default: equal)", parse="floats")
    context: str | None = opt(None, "benchmark | subject: learn pi(person | context), people "
                              "sampled per context (default: one policy)")
    common_questions: bool = opt(True, "All K people answer the same B questions (fresh: one "
                                 "batch per person, the seed's way)",
                                 flag=("--common-questions/--fresh-questions",))
    checkpoint_every: int = opt(10, "theta snapshot every N iterations")
    seed: int = opt(0, "Seed of the run's Generator and the engine")
    output_dir: str = opt("runs", "Where run directories go (also --output_dir)")
    run_name: str | None = opt(None, "Run directory name (default: generated)")


def _ev(help_eval: str, help_run: str | None = None, name: str | None = None,
        default: Any = None, **cli: Any) -> Any:
    """An EvalConfig field: its help in `eval`, and in `run` (--eval-NAME) when it is there."""
    run = None if help_run is None else {"help": help_run, "name": name}
    return opt(default, help_eval, **({"run": run} if run else {}), **cli)


@dataclass(frozen=True)
class EvalConfig:
    """A held-out evaluation of a run's learned prefixes against baselines."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    eval_split: str | None = _ev(
        "Held-out split, HF syntax (default: the benchmark's eval split).",
        "Held-out split, HF syntax (default: the benchmark's eval split)", "eval_split")
    num_questions: int | None = _ev(
        "Evaluate N questions drawn with --seed (default: all).",
        "Evaluate N held-out questions drawn with --seed (default: all)", "eval_num_questions")
    top_k: int = _ev("Learned people: the top-k by final probability.",
                     "Learned people evaluated: the top-k by final probability", "eval_top_k", 5)
    num_random: int = _ev("Random people drawn uniformly from the pool.",
                          "Random people drawn uniformly from the pool", "eval_num_random", 5)
    prompts: tuple[str, ...] = _ev(  # extra hand-written prompts
        "Extra hand-written system prompt (repeatable).",
        "Extra hand-written system prompt (repeatable)", "eval_prompt", (),
        eval={"name": "prompt"})
    people_names: tuple[str, ...] = _ev(  # evaluate named people (no run needed)
        "Evaluate this named person (repeatable; no run needed).",
        "Also evaluate this named person (repeatable)", "eval_people", (),
        eval={"name": "people", "flag": ("--people",)})
    handwritten: bool = _ev("Include the hand-written prompts.", "Include the hand-written "
                            "prompts", "eval_handwritten", True)  # generic + domain-expert
    paraphrase_null: bool = _ev(  # the oracle ceiling's perturbation-only null (oracle.py)
        "Score k neutral paraphrases of a plain system prompt (k = learned people).",
        "Score k neutral paraphrases of a plain system prompt (k = learned people)",
        "eval_paraphrase_null", True)
    # people CSV for named/random people without a run
    people: str | None = _ev("People CSV without a run (default: notable_people_10k.csv).",
                             eval={"name": "people_file"})
    allow_overlap: bool = _ev(
        "Evaluate even if the split overlaps the run's training questions.",
        "Evaluate even if the eval split overlaps the training split", "eval_allow_overlap",
        False)
    bootstrap_samples: int = _ev("Paired-bootstrap resamples.", "Paired-bootstrap resamples",
                                 "eval_bootstrap_samples", 10_000)
    seed: int = _ev("Seed: question subsample, random people, bootstrap.", default=0)
    # eval/<name>.parquet; None -> from the split (+ _n<N>_seed<S>)
    name: str | None = _ev("Name of the eval tables (default: from the split, N and seed).",
                           "Name of the eval tables (default: from the split, N and seed)",
                           "eval_name")
    overwrite: bool = _ev("Replace an existing eval of that name.", default=False)
    output_dir: str = _ev("Where an eval without a run is written.", default="runs")
    run_name: str | None = _ev("Directory name for an eval without a run.")
    # (): the task's prompt format only; ("chat", "harness"): both, in one engine call, compared
    formats: tuple[str, ...] = _ev(
        "chat,harness: the same prefixes in both formats in one engine call, compared (a "
        "finding must survive both)", default=(), parse="names")


C = TypeVar("C")


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Build a (nested) config dataclass from a dict; unknown keys are an error."""
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        ftype = names[key].type
        sub = {"EngineConfig": EngineConfig, "TaskConfig": TaskConfig}.get(str(ftype))
        if sub is not None and isinstance(value, dict):
            value = from_dict(sub, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)  # type: ignore[call-arg]


def to_json(cfg: Any) -> str:
    return json.dumps(to_dict(cfg), indent=2, sort_keys=True)


def from_json(cls: type[C], text: str) -> C:
    return from_dict(cls, json.loads(text))


def load(cls: type[C], path: str | Path) -> C:
    return from_json(cls, Path(path).read_text(encoding="utf-8"))
