"""Budget accounting (docs/planning.md "Budget accounting"): what a run or a study was estimated
to cost before it started and what it spent, for training and for eval: seconds, question
evaluations, prompt / computed / cached tokens. Training numbers are sums over the iterations
table; each eval's are in config.json; first estimates and engine starts in budget.json.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from prefixopt import device, plan, runs
from prefixopt.errors import PrefixoptError

KEYS = ("estimated_s", "spent_s", "question_evaluations", "prompt_tokens", "computed_tokens",
        "cached_tokens")
PARTS = ("train", "eval")
HANDWRITTEN = 2  # the generic prompt and the benchmark's expert prompt (evaluate/prefixes.py)
PACE_MIN_ITERATIONS = 3  # a resumed job estimates at its own pace once it has this many


def part(estimated_s: float | None = None, spent_s: float = 0.0, question_evaluations: int = 0,
         prompt_tokens: int = 0, cached_tokens: int = 0) -> dict[str, Any]:
    """One part's six keys; computed_tokens = prompt_tokens - cached_tokens."""
    return {"estimated_s": None if estimated_s is None else float(estimated_s),
            "spent_s": float(spent_s), "question_evaluations": int(question_evaluations),
            "prompt_tokens": int(prompt_tokens),
            "computed_tokens": int(prompt_tokens) - int(cached_tokens),
            "cached_tokens": int(cached_tokens)}


def add(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The six keys summed; estimated_s summed where known (None when none is)."""
    parts = list(parts)
    known = [p["estimated_s"] for p in parts if p.get("estimated_s") is not None]
    return {"estimated_s": float(sum(known)) if known else None,
            "spent_s": float(sum(p["spent_s"] for p in parts)),
            **{k: int(sum(p[k] for p in parts)) for k in KEYS[2:]}}


def whole(train: dict[str, Any], evals: dict[str, Any]) -> dict[str, Any]:
    """The `budget` object: train + eval summed at the top, and each part."""
    return {**add([train, evals]), "train": train, "eval": evals}


def from_responses(responses: Sequence[Any], spent_s: float) -> dict[str, Any]:
    """An eval's part from its engine Responses (its estimate is kept in budget.json). A
    response an eval score cache served (`from_score_cache`) computed nothing now: all its
    prompt tokens count as cached."""
    reused = [r.from_score_cache for r in responses]
    return part(None, spent_s, len(responses), sum(r.prompt_tokens for r in responses),
                sum(r.prompt_tokens if c else r.cached_tokens
                    for r, c in zip(responses, reused, strict=True)))


# --- budget.json: first estimates and engine starts ---------------------------------------------
def read(run_dir: str | Path) -> dict[str, Any]:
    path = runs.budget_path(run_dir)
    if not path.is_file():
        return {"estimated_s": {}, "engine_starts": []}
    return json.loads(path.read_text(encoding="utf-8"))


def _write(run_dir: str | Path, data: dict[str, Any]) -> None:
    runs.write_text(runs.budget_path(run_dir), json.dumps(data, indent=2, sort_keys=True))


def record_estimate(run_dir: str | Path, key: str, seconds: float | None) -> None:
    """budget.json estimated_s[key] = seconds ("train" or "eval/<name>"), unless a first
    estimate is there already (a resumed run keeps it)."""
    data = read(run_dir)
    if key in data["estimated_s"]:
        return
    data["estimated_s"][key] = seconds
    _write(run_dir, data)


def record_start(run_dir: str | Path, which: str, seconds: float) -> None:
    """One engine start of a session, counted in the spent_s of `which` (train | eval)."""
    data = read(run_dir)
    data["engine_starts"].append({"part": which, "s": float(seconds),
                                  "at": time.strftime("%Y-%m-%dT%H:%M:%S")})
    _write(run_dir, data)


def _starts(data: dict[str, Any], which: str) -> float:
    return float(sum(s["s"] for s in data.get("engine_starts", []) if s["part"] == which))


# --- a run's budget -----------------------------------------------------------------------------
def train_part(run_dir: str | Path, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sums over the iterations table (wall_s; generate_s for learners without it) plus the
    engine starts counted in train; every finished iteration of every session."""
    data = read(run_dir) if data is None else data
    estimated = data["estimated_s"].get("train")
    try:
        it = runs.scan(run_dir, "iterations").collect()
    except PrefixoptError:  # no finished iteration
        return part(estimated, _starts(data, "train"))
    seconds = it["wall_s"] if "wall_s" in it.columns else it["generate_s"]
    return part(estimated, float(seconds.sum()) + _starts(data, "train"),
                int(it["num_prompts"].sum()), int(it["prompt_tokens"].sum()),
                int(it["cached_tokens"].sum()))


def eval_part(run_dir: str | Path, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Every recorded eval's part (config.json evals[name].budget) plus engine starts in eval."""
    data = read(run_dir) if data is None else data
    evals = runs.read_config(run_dir).get("evals", {})
    parts = [e["budget"] for e in evals.values() if "budget" in e]
    estimates = [s for k, s in data["estimated_s"].items()
                 if k.startswith("eval/") and s is not None]
    out = add(parts) if parts else part()
    out["spent_s"] += _starts(data, "eval")
    out["estimated_s"] = float(sum(estimates)) if estimates else None
    return out


def of_run(run_dir: str | Path) -> dict[str, Any]:
    """The run's `budget` object, accumulated over every session."""
    data = read(run_dir)
    has_config = (Path(run_dir) / "config.json").is_file()
    evals = eval_part(run_dir, data) if has_config else part()
    return whole(train_part(run_dir, data), evals)


def of_study(study_dir: str | Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """A study's `budget`: every cell's run summed, plus the study's engine starts (counted in
    train: a model's engine starts before its first cell trains); estimated_s the manifest's."""
    study_dir = Path(study_dir)
    cells = [of_run(study_dir / c["run_dir"]) for c in manifest["cells"]
             if (study_dir / c["run_dir"] / "config.json").is_file()]
    train = add([c["train"] for c in cells] or [part()])
    evals = add([c["eval"] for c in cells] or [part()])
    info = manifest.get("budget", {})
    train["spent_s"] += float(sum(s["s"] for s in info.get("engine_starts", [])))
    est = info.get("estimated_s", {})
    train["estimated_s"], evals["estimated_s"] = est.get("train"), est.get("eval")
    return whole(train, evals)


# --- estimates before the work (prefixopt/plan.py's throughput) --------------------------------
def evals_per_s(kind: str) -> tuple[float | None, str]:
    """This machine's planned question evaluations per second for the in-process vLLM engine;
    None for other engines (the plan's figures are not theirs)."""
    if kind != "vllm":
        return None, f"no planned throughput for --engine {kind}"
    return plan.default_evals_per_s(bool(device.cpu_flags() & device.BF16_CPU_FLAGS))


def eval_prefixes(cfg: Any, num_people: int | None = None, learned: bool = True) -> int:
    """Prefixes an EvalConfig scores (evaluate/prefixes.build_prefixes): none, top-k, random,
    hand-written, named, one paraphrase per learned person."""
    n = num_people if num_people is not None else 10**9
    k = min(cfg.top_k, n) if learned else 0
    hand = len(dict.fromkeys(cfg.prompts)) + HANDWRITTEN if cfg.handwritten else 0
    return (1 + k + min(cfg.num_random, n) + hand + len(cfg.people_names)
            + (k if cfg.paraphrase_null else 0))


def train_evaluations(cfg: Any, run_dir: str | Path, resume: bool) -> tuple[int, int]:
    """(a TrainConfig's whole training budget, what is left of it): iterations x K x B, less
    the evaluations a resumed run's checkpoint has made."""
    whole = cfg.iterations * cfg.samples_per_iteration * cfg.batch_size
    done = 0
    if resume and runs.has_checkpoint(run_dir):
        done = int(runs.load_checkpoint(run_dir)["evaluations"])
    return whole, max(0, whole - done)


def measured_pace(run_dirs: Iterable[str | Path]) -> tuple[float, str] | None:
    """(question evaluations/s, source) of a resumed job: the median over its runs' finished
    iterations of num_prompts / generate_s, the engine's pace on this job's own prompts (the
    flagship's ARC cloze ran 3.3/s where bench's mix gives 3.86/s). A median, so an iteration
    that was paused (kill -STOP) or shared the CPU does not pull it. None under
    PACE_MIN_ITERATIONS iterations."""
    rates: list[float] = []
    for run_dir in run_dirs:
        if not runs.has_checkpoint(run_dir):  # no finished iteration
            continue
        done = int(runs.load_checkpoint(run_dir)["iteration"])  # not a crashed one's rows
        try:
            it = runs.scan(run_dir, "iterations", through=done).select(
                "num_prompts", "generate_s").collect()
        except PrefixoptError:
            continue
        it = it.filter(pl.col("generate_s") > 0)
        rates += (it["num_prompts"] / it["generate_s"]).to_list()
    if len(rates) < PACE_MIN_ITERATIONS:
        return None
    return float(np.median(rates)), f"measured: median of this job's {len(rates)} iterations"


def estimate(kind: str, train_evaluations: int | None, eval_evaluations: int,
             starts_engine_in: str | None,
             pace: tuple[float, str] | None = None) -> dict[str, Any]:
    """{"train", "eval": seconds or None, "evals_per_s", "source", "engine_start_s"}: the
    engine start counted in the part that starts it (None: no engine start). pace: a resumed
    job's measured_pace, used instead of the planned throughput."""
    rate, source = pace if pace is not None else evals_per_s(kind)
    out: dict[str, Any] = {"train": None, "eval": None, "evals_per_s": rate, "source": source,
                           "engine_start_s": plan.ENGINE_START_S if starts_engine_in else 0.0,
                           "train_evaluations": train_evaluations,
                           "eval_evaluations": eval_evaluations}
    if rate is None:
        return out
    secs = plan.estimate_seconds(train_evaluations, eval_evaluations, rate, 0.0)
    out["train"], out["eval"] = secs["estimated_train_s"], secs["estimated_eval_s"]
    if starts_engine_in is not None and out[starts_engine_in] is not None:
        out[starts_engine_in] += plan.ENGINE_START_S
    return out

