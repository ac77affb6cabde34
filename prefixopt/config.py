"""Frozen run configurations. Defaults live only here; CLI -> config -> function arguments.

Each config round-trips through JSON (`to_json` / `from_json`), so a run directory's
config.json fully describes the run and `--config FILE.json` can start a new one.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
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
    kind: str = "vllm"  # vllm | synthetic (planted accuracies) | openai (an endpoint): recorded once
    # --engine openai: the endpoint (a vLLM server or a hosted API). The key is read at start
    # from the environment variable api_key_env (or ./.env) and never written anywhere.
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    api: str = "auto"  # auto (completions for a vLLM server, else chat) | completions | chat
    max_concurrency: int = 64  # requests in flight at once
    request_timeout: float = 300.0  # seconds per request
    max_retries: int = 5  # per request, exponential backoff on 429/5xx/connection errors


@dataclass(frozen=True)
class TaskConfig:
    """What is asked and how answers are read."""

    benchmark: str = "arc_easy"  # one benchmark, or several: "mmlu,gsm8k,arc_challenge"
    scoring: str | None = None  # None -> the benchmark's default
    prompt_format: str = "chat"  # chat | harness
    prefix_template: str = DEFAULT_TEMPLATE
    num_fewshot: int = 0
    data_dir: str | None = None  # <data_dir>/<benchmark>/<split>.jsonl; None -> default search


@dataclass(frozen=True)
class TrainConfig:
    """A learning run over the people table (REINFORCE by default)."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    task: TaskConfig = field(default_factory=TaskConfig)
    train_split: str | None = None  # None -> the benchmark's default train split
    people: str | None = None  # people CSV; None -> notable_people_10k.csv at the repo root
    exclude_fields: tuple[str, ...] = ()
    exclude_occupations: tuple[str, ...] = ()
    # reinforce (the softmax policy) | halving (sequential halving) | ttts (top-two Thompson
    # sampling): prefixopt/learners.py; the budget is iterations x K x B evaluations for all
    learner: str = "reinforce"
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
    # a field/era term moves at full speed only while its probability is spread over >= this
    # many members (0: off); without it one lucky person carried its whole field
    group_min_people: int = 20
    # decay of the logits towards uniform per step (x learning rate), outside Adam (AdamW's
    # weight decay): the restoring force that keeps a run from fixing on a person without
    # evidence. 20 and 0.02 chosen with `simulate` (docs/learner_study.md, "REINFORCE commits")
    logit_decay: float = 0.02
    parameterization: str = "factored"  # factored | tabular
    reward: str = "accuracy"  # accuracy | margin
    # several benchmarks: each iteration's B questions split by these weights (empty: equal)
    benchmark_weights: tuple[float, ...] = ()
    # None: one policy; "benchmark" | "subject": pi(person | context), people sampled per context
    context: str | None = None
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
    name: str | None = None  # eval/<name>.parquet; None -> from the split (+ _n<N>_seed<S>)
    overwrite: bool = False  # replace an existing eval/<name>.parquet
    output_dir: str = "runs"  # where an eval without a run gets its directory
    run_name: str | None = None
    # (): the task's prompt format only; ("chat", "harness"): both, in one engine call, compared
    formats: tuple[str, ...] = ()


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


# ----------------------------------------------------------------------------- --config JSON

# The reference homework's TrainingConfig keys that prefixopt spells differently:
# key -> (section, field); section None = a TrainConfig field. Its learning_rate,
# samples_per_iteration, batch_size, load_in_4bit, output_dir and seed keep their names.
SEED_KEYS: dict[str, tuple[str | None, str]] = {
    "model_name": ("engine", "model"),
    "benchmark_name": ("task", "benchmark"),
    "benchmark_split": (None, "train_split"),
    "num_iterations": (None, "iterations"),
    "people_csv_path": (None, "people"),
    "baseline_decay": (None, "ema_decay"),
    "checkpoint_interval": (None, "checkpoint_every"),
}
# The homework's keys with no prefixopt equivalent: accepted and ignored (the CLI says so).
SEED_IGNORED_KEYS = frozenset(
    {"device_map", "benchmark_num_samples", "max_new_tokens", "temperature", "log_interval"}
)
_SECTIONS = {"engine": EngineConfig, "task": TaskConfig}


def _names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _target(key: str) -> tuple[str | None, str] | None:
    """Where a top-level key goes: (section, field), or None for an ignored seed key."""
    if key in SEED_KEYS:
        return SEED_KEYS[key]
    if key in _names(TrainConfig):
        return None, key
    for section, cls in _SECTIONS.items():
        if key in _names(cls):
            return section, key
    if key in SEED_IGNORED_KEYS:
        return None
    raise KeyError(key)


def config_keys() -> list[str]:
    """Every top-level key `train_config_from_mapping` accepts, sorted."""
    keys = set(_names(TrainConfig)) | set(SEED_KEYS) | SEED_IGNORED_KEYS
    for cls in _SECTIONS.values():
        keys |= set(_names(cls))
    return sorted(keys)


def _section(data: Mapping[str, Any], section: str) -> dict[str, Any]:
    value = data.get(section, {})
    if not isinstance(value, Mapping):
        raise TypeError(f"{section!r} must be an object of {_SECTIONS[section].__name__} fields")
    valid = _names(_SECTIONS[section])
    unknown = sorted(set(value) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown {section} key(s): {', '.join(unknown)}; valid: {', '.join(valid)}"
        )
    return dict(value)


def train_config_from_mapping(data: Mapping[str, Any]) -> TrainConfig:
    """A TrainConfig from any of the JSON forms `--config` takes: the nested form (`to_dict`),
    a flat one (any TrainConfig, EngineConfig or TaskConfig field at top level), the reference
    homework's TrainingConfig keys (`model_name`, `num_iterations`, ...), or a run's own
    config.json (its "config" entry; the run metadata beside it is ignored). Forms may mix;
    one setting given twice (flat and nested, or under two names) is an error, as is an
    unknown key (the message lists the valid ones). A top-level `seed` also seeds the engine
    unless `engine.seed` is given, as `--seed` does."""
    if not isinstance(data, Mapping):
        raise TypeError("a config must be a JSON object")
    if isinstance(data.get("config"), Mapping):  # a run directory's config.json
        if data.get("kind") == "eval":
            raise ValueError("this is an eval run's config.json; give a train run's")
        data = data["config"]
    nested: dict[str, Any] = {s: _section(data, s) for s in _SECTIONS}
    origin = {(s, k): f"{s}.{k}" for s in _SECTIONS for k in nested[s]}
    unknown = []
    for key, value in data.items():
        if key in _SECTIONS:
            continue
        try:
            target = _target(key)
        except KeyError:
            unknown.append(key)
            continue
        if target is None:
            continue
        if target in origin:
            raise ValueError(f"{key!r} and {origin[target]!r} both set {target[1]}; give one")
        origin[target] = key
        section, name = target
        (nested[section] if section else nested)[name] = value
    if unknown:
        raise ValueError(
            f"unknown config key(s): {', '.join(sorted(unknown))}; valid: {', '.join(config_keys())}"
            " (or nested 'engine' / 'task' objects, or a run's config.json)"
        )
    if "seed" in nested and ("engine", "seed") not in origin:
        nested["engine"]["seed"] = nested["seed"]
    return from_dict(TrainConfig, nested)
