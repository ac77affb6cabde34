"""The settings of commands beyond a run's config (config.py): a command's own flags
(--config, --resume, --verbose, --json, eval's RUN), simulate's planted scenario and bench's
sizes. Their defaults and help live here, once, as config.py's do (`opt`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefixopt.config import opt

_VERBOSE = "Show vLLM/torch logging"


@dataclass(frozen=True)
class CommandOptions:
    """Where a job's config comes from, what it continues, and what it prints."""

    run: Path | None = opt(None, "Run directory (omit with --people or --only-baseline and "
                           "--benchmark).", argument=True)
    config: Path | None = opt(None, "Config JSON (nested, flat, the seed's TrainingConfig, or a "
                              "run's config.json); flags given here override it")
    resume: Path | None = opt(
        None, "Continue this run directory (only --iterations may change)",
        study={"type": bool, "default": False, "help": "Continue the study: done cells are "
               "skipped, a half-done cell resumes exactly."})
    mde: float | None = opt(None, "Warn in the header when the eval is too small to detect "
                            "this accuracy difference (a fraction, e.g. 0.03; prefixopt plan's "
                            "rule at discordance 0.15; default: no check)")
    only_baseline: bool = opt(False, "Score the no-prefix baseline only (speed check against "
                              "the harness).")
    verbose: bool = opt(False, _VERBOSE + " on the terminal (default: RUN/engine.log)",
                        flag=("--verbose", "-v"),
                        eval={"help": _VERBOSE + " (default: RUN/engine.log)."},
                        bench={"help": "show vLLM/torch logging (default: silent)"},
                        study={"help": _VERBOSE + " (default: studies/<name>/engine.log)."})
    json_out: bool = opt(False, "Print a JSON summary last", flag=("--json",),
                         eval={"help": "Print a JSON summary last."},
                         bench={"help": "print a JSON summary"},
                         study={"help": "Print a JSON summary last: every cell with its run "
                                "directory and status."})


@dataclass(frozen=True)
class SimulateConfig:
    """`prefixopt simulate`'s planted scenario (the learner's settings are a TrainConfig)."""

    planted_field: tuple[str, ...] = opt((), "Everyone in this field is --delta more accurate; "
                                         "BENCHMARK=FIELD plants it on one benchmark only "
                                         "(repeatable)")
    planted_people: int | None = opt(None, "This many random people are --delta more accurate")
    null: bool = opt(False, "No effect: everyone at --base-accuracy", flag=("--null",))
    small_effects: float | None = opt(None, "Many small effects: each person's accuracy ~ "
                                      "N(--base-accuracy, SD), e.g. 0.02; 'planted' = the top 1% "
                                      "by accuracy")
    delta: float = opt(0.1, "Accuracy advantage of the planted set")
    base_accuracy: float = opt(0.5, "Accuracy of everyone else (and of no prefix)")
    difficulty_sd: float = opt(1.0, "SD of the per-question difficulty (logit scale)")
    budget: int = opt(50_000, "Question evaluations (iterations = budget // (K*B))")
    out: Path | None = opt(None, "Keep the run here (a new directory) for eval/report")


@dataclass(frozen=True)
class BenchConfig:
    """`prefixopt bench`'s sizes (the engine and the task are an EngineConfig and a TaskConfig)."""

    k: int = opt(16, "people (K)", flag=("-k", "--samples"))
    b: int = opt(32, "questions per person (B)", flag=("-b", "--questions"))
    sequential_subset: int = opt(16, "prompts timed one at a time through transformers for (d)")
    batched_subset: int | None = opt(None, "engine prompts timed in transformers batches for (e) "
                                     "(default: all)")
    people: str | None = opt(None, "people CSV for the names")
    seed: int = opt(0, "question sampling seed")
    repeats: int = opt(3, "--engine openai: timed iterations")
