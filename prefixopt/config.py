"""Frozen run configurations. Defaults live only here; CLI -> config -> function arguments.

Each config round-trips through JSON (`to_json` / `from_json`), so a run directory's
config.json fully describes the run and `--config FILE.json` can start a new one.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

BENCHMARKS = ("mmlu", "gsm8k", "arc_easy", "arc_challenge", "hellaswag")
SCORINGS = ("letter", "cloze", "generate")
PROMPT_FORMATS = ("chat", "harness")
# The CPU build's smallest prefix-cache block (its attention needs a multiple of 32): the engine's
# block when EngineConfig.block_size is None on a machine without CUDA.
CPU_BLOCK_SIZE = 32
DEFAULT_MODEL = "smollm2-135m"  # alias for the embedded SmolLM2-135M-Instruct (prefixopt setup)


@dataclass(frozen=True)
class EngineConfig:
    """How to build the vLLM engine (engine.py reads this and nothing else)."""

    model: str = DEFAULT_MODEL  # HF id, local path, or the alias smollm2-135m
    dtype: str = "auto"
    max_model_len: int = 2048
    gpu_memory_utilization: float = 0.85
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1
    load_in_4bit: bool = False  # -> vLLM quantization="bitsandbytes"
    enable_prefix_caching: bool = True
    # prefix-cache block in tokens; None: 32 on the CPU build (its smallest; vLLM's own CPU
    # default of 128 never caches a head shorter than 128 tokens: measured 1.4x slower on
    # 0-shot ARC cloze, 1.26x on 5-shot MMLU letter), vLLM's default (16) on CUDA.
    block_size: int | None = None
    trust_remote_code: bool = False
    enforce_eager: bool = False
    cpu_kvcache_gib: float = 2.0  # VLLM_CPU_KVCACHE_SPACE on CPU machines
    seed: int = 0


@dataclass(frozen=True)
class TaskConfig:
    """What is asked and how answers are read."""

    benchmark: str = "arc_easy"
    scoring: str | None = None  # None -> the benchmark's default
    prompt_format: str = "chat"  # chat | harness
    prefix_template: str = "You are {name}."
    num_fewshot: int = 0
    data_dir: str | None = None  # <data_dir>/<benchmark>/<split>.jsonl; None -> default search


@dataclass(frozen=True)
class TrainConfig:
    """A REINFORCE run over the people table."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    train_split: str | None = None  # None -> the benchmark's default train split
    people: str | None = None  # people CSV; None -> notable_people_10k.csv at the repo root
    exclude_fields: tuple[str, ...] = ()
    exclude_occupations: tuple[str, ...] = ()
    iterations: int = 20
    samples_per_iteration: int = 16  # K people sampled per iteration
    batch_size: int = 32  # B questions per iteration, shared by all K people
    learning_rate: float = 0.05  # Adam; chosen with `prefixopt simulate` (docs/learner_study.md)
    optimizer: str = "adam"  # adam | sgd
    baseline: str = "rloo"  # rloo | mean | ema
    ema_decay: float = 0.9
    ema_init: float | None = None  # None -> the first batch's mean (the seed used 0.0)
    standardize: bool = False
    entropy_coef: float = 0.0
    parameterization: str = "factored"  # factored | tabular
    reward: str = "accuracy"  # accuracy | margin
    common_questions: bool = True  # all K people answer the same B questions (False: seed-style)
    checkpoint_every: int = 10
    seed: int = 0
    output_dir: str = "runs"
    run_name: str | None = None  # None -> generated from benchmark and time


@dataclass(frozen=True)
class EvalConfig:
    """A held-out evaluation of a run's learned prefixes against baselines."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    eval_split: str | None = None  # None -> the benchmark's default eval split
    num_questions: int | None = None  # None -> all questions of the split
    top_k: int = 5
    num_random: int = 5
    prompts: tuple[str, ...] = ()  # extra hand-written prompts
    people_names: tuple[str, ...] = ()  # evaluate named people (no run needed)
    handwritten: bool = True  # the generic + domain-expert prompts (off: --no-handwritten)
    people: str | None = None  # people CSV for named/random people without a run
    allow_overlap: bool = False
    bootstrap_samples: int = 10_000
    seed: int = 0
    engine_kind: str = "vllm"  # vllm | synthetic (a simulate run's planted engine)
    name: str | None = None  # eval/<name>.parquet; None -> from the split (+ _n<N>_seed<S>)
    overwrite: bool = False  # replace an existing eval/<name>.parquet
    output_dir: str = "runs"  # where an eval without a run gets its directory
    run_name: str | None = None


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
