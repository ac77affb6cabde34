"""What keeps an evaluation's questions held out, and the few-shot examples of both sides.

A question counts as held out when neither its id nor its normalised text (benchmarks.text_hash)
is one the run trained on or showed as a solved example. An evaluation drops, and counts,
repeats within its own split ("eval_duplicates"), questions equal to a training question under
another id ("train_duplicates"; the same id is an overlap, refused unless --allow-overlap) and
questions equal to one of its few-shot examples ("fewshot_duplicates"). Training picks its
few-shot examples once (`training_fewshot`): never a question of the benchmark's held-out split,
taken out of its own training questions, their ids recorded in config.json ("fewshot_ids");
an evaluation of the run reuses exactly those (`eval_fewshot`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefixopt import runs
from prefixopt.ask.prompts import FewShot, fewshot_examples, recorded_fewshot
from prefixopt.benchmarks import dedupe, get_task, load_split, split_seen
from prefixopt.config import EvalConfig, TrainConfig
from prefixopt.errors import PrefixoptError
from prefixopt.records import Question


@dataclass(frozen=True)
class TrainSide:
    """What a run has seen of one benchmark: its whole training split and its few-shot
    examples (None: the run used none, or recorded none: a run from before the record)."""

    questions: tuple[Question, ...] = ()
    fewshot: FewShot | None = None
    num_fewshot: int = 0
    from_run: bool = False  # read from a training run's config.json


@dataclass
class HeldOut:
    """The held-out questions of an evaluation and what was left out of them, and why."""

    questions: list[Question]
    counts: dict[str, Any] = field(default_factory=dict)  # config.json / summary / --json


def run_side(run_dir: str | Path, cfg: EvalConfig) -> TrainSide:
    """The training side of `cfg.task.benchmark` in a run (nothing for an eval-only directory
    or a benchmark the run did not train on)."""

    meta = runs.read_config(run_dir)
    if meta.get("kind") != "train":
        return TrainSide()
    tcfg = runs.read_train_config(run_dir)
    benchmark = cfg.task.benchmark
    if benchmark not in tcfg.task.benchmarks:
        return TrainSide()
    try:
        questions = load_split(benchmark, tcfg.train_split, data_dir=cfg.task.data_dir,
                               purpose="train")
    except PrefixoptError as exc:
        raise PrefixoptError(f"cannot check that the eval questions are held out from "
                             f"{run_dir}'s training split: {exc}") from None
    ids = meta.get("fewshot_ids", {}).get(benchmark)
    k = tcfg.task.num_fewshot
    fewshot = recorded_fewshot(benchmark, ids, cfg.task.data_dir) if k and ids else None
    return TrainSide(tuple(questions), fewshot, k, from_run=True)


def training_fewshot(cfg: TrainConfig, questions: Sequence[Question],
                     resumed: dict[str, Any] | None = None) -> tuple[FewShot, list[Question]]:
    """(the run's few-shot examples, its training questions without them). New run: drawn from
    the few-shot split minus the questions of the benchmark's held-out split (an eval split
    never holds a training question, so those are left in). Resumed run: the ids config.json
    recorded (`resumed` is that file), so its prompts never change mid-run."""

    benchmark = cfg.task.benchmarks[0]  # few-shot: one benchmark (validate)
    k, data_dir = cfg.task.num_fewshot, cfg.task.data_dir
    if k <= 0:
        return FewShot(benchmark), list(questions)
    if resumed is not None:
        ids = resumed.get("fewshot_ids", {}).get(benchmark)
        if not ids:
            raise PrefixoptError("this run was started before prefixopt recorded its few-shot "
                                 "examples (config.json has no fewshot_ids), so resuming would "
                                 "change them mid-run; start a new run")
        fewshot = recorded_fewshot(benchmark, ids, data_dir)
    else:
        task, trained = get_task(benchmark), {q.question_id for q in questions}
        held = [q for q in load_split(benchmark, None, data_dir=data_dir, purpose="eval")
                if q.question_id not in trained]
        try:
            fewshot = fewshot_examples(benchmark, k, cfg.seed, data_dir, exclude=held)
        except PrefixoptError as exc:
            if task.fewshot_split != task.eval_split:
                raise
            raise PrefixoptError(
                f"{exc} ({len(held)} are held-out questions of {task.eval_split}); take the "
                f"examples from training questions with e.g. --train-split "
                f"'{task.fewshot_split}[:50%]', or use --num-fewshot 0") from None
    kept, _, _ = split_seen(questions, fewshot)  # no training question is its own example
    return fewshot, kept


def held_out(cfg: EvalConfig, split: str, questions: Sequence[Question], side: TrainSide,
             fewshot: FewShot | None, flag: str = "--allow-overlap") -> HeldOut:
    """Drop (and count) what is not held out: repeats within the split, training questions
    under another id, few-shot examples. A training question under its own id is an overlap:
    one line unless cfg.allow_overlap (then kept, with text twins, and counted as "overlap")."""
    total = len(questions)
    questions, repeats = dedupe(questions)
    fresh, same_id, same_text = split_seen(questions, side.questions)
    if same_id and not cfg.allow_overlap:
        where = "the run's training split" if side.from_run else "the training split"
        raise PrefixoptError(
            f"eval split {split!r} shares {len(same_id)} of its {total} questions with {where}, "
            f"so it is not held out; choose another --eval-split or pass {flag}")
    kept = questions if cfg.allow_overlap else fresh
    shots = 0
    if fewshot is not None and len(fewshot):
        kept, a, b = split_seen(kept, fewshot)
        shots = len(a) + len(b)
    overlap = len(same_id) + len(same_text) if cfg.allow_overlap else 0
    return HeldOut(kept, {"eval_duplicates": repeats,
                          "train_duplicates": 0 if cfg.allow_overlap else len(same_text),
                          "fewshot_duplicates": shots, "overlap": overlap})


def eval_fewshot(cfg: EvalConfig, side: TrainSide) -> tuple[FewShot | None, str]:
    """(the evaluation's few-shot examples, where they come from). None: drawn once the scored
    questions are known (`draw_fewshot`): the run recorded none, or another --num-fewshot."""
    benchmark, k = cfg.task.benchmark, cfg.task.num_fewshot
    if k <= 0:
        return FewShot(benchmark), "none"
    if side.fewshot is not None and side.num_fewshot == k:
        return side.fewshot, "the run's (config.json fewshot_ids)"
    why = ("the run recorded none" if side.from_run and side.num_fewshot == k
           else f"the run used {side.num_fewshot}" if side.from_run else "no training run")
    if get_task(benchmark).fewshot_sampler == "first_n":  # fixed examples: the harness's
        return fewshot_examples(benchmark, k, cfg.seed, cfg.task.data_dir), (
            f"the harness's first {k} per {benchmark} group ({why})")
    return None, f"drawn with the eval seed {cfg.seed}, none of them scored ({why})"


def draw_fewshot(cfg: EvalConfig, scored: Sequence[Question]) -> FewShot:
    """The fallback: k examples drawn with the eval's seed, none a scored question (by id or
    normalised text)."""
    return fewshot_examples(cfg.task.benchmark, cfg.task.num_fewshot, cfg.seed,
                            cfg.task.data_dir, exclude=scored)
