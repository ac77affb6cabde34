"""What a training run's options and inputs must be, checked before anything is loaded
(`validate`) and against each benchmark's data (`check_inputs`), and the fingerprint of its
training questions (config.json "data_fingerprint", checked on --resume).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from prefixopt.benchmarks import BENCHMARKS
from prefixopt.config import PROMPT_FORMATS, SCORINGS, TrainConfig
from prefixopt.errors import PrefixoptError
from prefixopt.learn.iteration import CONTEXTS, benchmark_names
from prefixopt.policy import BASELINES, OPTIMIZERS, PARAMETERIZATIONS
from prefixopt.records import Question

# a chat API lists only its top log-probs: a letter outside them has no log-prob, so no margin
MARGIN_ON_CHAT = ("--reward margin needs every choice's log-prob, which a chat API does not "
                  "return (a letter outside its top list has none); use --reward accuracy, or a "
                  "completions endpoint (--api completions)")


def validate(cfg: TrainConfig) -> None:
    """One-line errors for bad values, before anything (data, people, engine) is loaded."""

    def check(ok: bool, message: str) -> None:
        if not ok:
            raise PrefixoptError(message)

    def one_of(flag: str, value: Any, options: Sequence[Any]) -> None:
        check(value in options, f"{flag} {value!r} is not one of: {', '.join(options)}")

    names = benchmark_names(cfg.task)
    for name in names:
        one_of("--benchmark", name, BENCHMARKS)
    several = len(names) > 1 or cfg.context is not None
    if cfg.context is not None:
        one_of("--context", cfg.context, CONTEXTS)
    check(not cfg.benchmark_weights or len(cfg.benchmark_weights) == len(names),
          f"--benchmark-weights has {len(cfg.benchmark_weights)} values for {len(names)} "
          "benchmarks; give one per benchmark")
    check(all(w > 0 for w in cfg.benchmark_weights), "--benchmark-weights must be > 0")
    check(not several or cfg.baseline != "ema",
          "--baseline ema keeps one running value; with several benchmarks or a --context use "
          "rloo or mean")
    check(not several or cfg.common_questions,
          "--fresh-questions works with one benchmark and no --context")
    check(not several or cfg.task.num_fewshot == 0 or len(names) == 1,
          "--num-fewshot works with one benchmark at a time")
    if cfg.task.scoring is not None:
        one_of("--scoring", cfg.task.scoring, SCORINGS)
    one_of("--prompt-format", cfg.task.prompt_format, PROMPT_FORMATS)
    one_of("--optimizer", cfg.optimizer, OPTIMIZERS)
    one_of("--baseline", cfg.baseline, BASELINES)
    one_of("--parameterization", cfg.parameterization, PARAMETERIZATIONS)
    one_of("--reward", cfg.reward, ("accuracy", "margin"))
    check(cfg.reward != "margin" or not (cfg.engine.kind == "openai" and cfg.engine.api == "chat"),
          MARGIN_ON_CHAT)
    check(cfg.learning_rate > 0, f"--learning-rate must be > 0 (got {cfg.learning_rate})")
    check(cfg.samples_per_iteration >= 1,
          f"--samples-per-iteration (K) must be >= 1 (got {cfg.samples_per_iteration})")
    check(cfg.baseline != "rloo" or cfg.samples_per_iteration >= 2,
          "--baseline rloo needs --samples-per-iteration >= 2 (or use --baseline ema)")
    check(cfg.batch_size >= 1, f"--batch-size (B) must be >= 1 (got {cfg.batch_size})")
    check(cfg.iterations >= 1, f"--iterations must be >= 1 (got {cfg.iterations})")
    check(cfg.checkpoint_every >= 1,
          f"--checkpoint-every must be >= 1 (got {cfg.checkpoint_every})")
    check(0 <= cfg.ema_decay < 1, f"--ema-decay must be in [0, 1) (got {cfg.ema_decay})")
    check(cfg.entropy_coef >= 0, f"--entropy-coef must be >= 0 (got {cfg.entropy_coef})")
    check(cfg.group_min_people >= 0 and cfg.logit_decay >= 0,
          "--group-min-people and --logit-decay must be >= 0")
    check(cfg.task.num_fewshot >= 0, f"--num-fewshot must be >= 0 (got {cfg.task.num_fewshot})")


def check_inputs(cfg: TrainConfig, mode: str, num_questions: int,
                 batch: int | None = None, benchmark: str | None = None) -> None:
    """What the options need of one benchmark's data: a margin to reward, its share of the B
    questions (all of B for a single benchmark) to draw."""
    benchmark = benchmark or cfg.task.benchmark
    if cfg.reward == "margin" and mode == "generate":
        raise PrefixoptError(f"--reward margin needs letter or cloze scoring; {benchmark} "
                             "is scored by generation here (pass --reward accuracy)")
    batch = cfg.batch_size if batch is None else batch
    if batch > num_questions:
        share = "" if batch == cfg.batch_size else f" (its {batch} {benchmark} questions)"
        raise PrefixoptError(f"--batch-size {cfg.batch_size}{share} is larger than the training "
                             f"split ({num_questions} {benchmark} questions); lower it")


def questions_fingerprint(questions: Sequence[Question]) -> str:
    return hashlib.sha256("\n".join(q.question_id for q in questions).encode()).hexdigest()
