"""The prefixes an evaluation compares: no prefix, the run's learned top-k, random people from
the pool, hand-written prompts (generic and the benchmark Task's domain-expert prompt) and
named people; and the people columns of an eval summary (field, era, final probability, and
for learned people the winner's-curse gap: training minus held-out accuracy, net of the same
gap for no prefix on the same training questions, which eval scores in its one engine call
through training_baseline / baseline_requests / take_baseline). With learned people, k neutral
paraphrases of a plain system prompt too (kind "paraphrase": the oracle ceiling's null).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from prefixopt import analysis, runs, stats

from prefixopt.ask import prompts

from prefixopt.ask import scoring
from prefixopt.benchmarks import get_task, load_split
from prefixopt.config import EvalConfig
from prefixopt.errors import PrefixoptError
from prefixopt.records import NO_PERSON, Question
from prefixopt.ask.prompts import persona
from prefixopt.evaluate.paraphrases import paraphrases

KINDS = ("none", "learned", "random", "handwritten", "named", "paraphrase")
GENERIC_PROMPT = "You are a helpful assistant."


@dataclass(frozen=True)
class Prefix:
    kind: str  # none | learned | random | handwritten | named | paraphrase
    label: str  # what the table shows: "(none)", a person's name, or the prompt text
    person_id: int  # NO_PERSON for none / hand-written prompts
    system: str | None  # the system message (None: no system message at all)
    row: int = -1  # the person's row in the people table (-1 for none / hand-written)
    # a contextual assignment: (person_id, system) per evaluated question, in question order
    assignment: tuple[tuple[int, str], ...] = ()


def build_prefixes(
    cfg: EvalConfig, people, probs: np.ndarray | None, rng: np.random.Generator,
    ranking: np.ndarray | None = None,
) -> list[Prefix]:
    """none, top-k learned (the learner's ranking, rows best first; else by final probability),
    R random people, hand-written, named, and as many neutral paraphrases as learned people
    (last, so the other rows' bootstrap draws stay as they were)."""

    template = cfg.task.prefix_template

    def person(kind: str, row: int) -> Prefix:
        name = people.names[row]
        return Prefix(kind, name, int(people.person_id[row]), persona(template, name), row)

    out = [Prefix("none", "(none)", NO_PERSON, None)]
    if probs is not None and cfg.top_k > 0:
        order = np.argsort(-probs, kind="stable") if ranking is None else ranking
        top = order[: cfg.top_k]  # (k,) rows, best first
        out += [person("learned", int(r)) for r in top]
    if people is not None and cfg.num_random > 0:
        n = len(people.names)
        out += [person("random", int(r)) for r in rng.choice(n, min(cfg.num_random, n), False)]
    if cfg.handwritten:
        expert = get_task(cfg.task.benchmark).expert_prompt
        texts = [GENERIC_PROMPT, expert, *cfg.prompts]
        out += [Prefix("handwritten", t, NO_PERSON, t) for t in dict.fromkeys(texts)]
    for name in cfg.people_names:
        out.append(person("named", _find_person(people, name)))
    learned = sum(p.kind == "learned" for p in out)
    # k x Q more requests in the one call; labelled apart from the hand-written generic prompt
    if cfg.paraphrase_null:
        out += [Prefix("paraphrase", f"paraphrase {i + 1}: {t}", NO_PERSON, t)
                for i, t in enumerate(paraphrases(learned))]
    return out


def _find_person(people, name: str) -> int:
    lowered = [n.casefold() for n in people.names]
    if name.casefold() in lowered:
        return lowered.index(name.casefold())
    import difflib

    close = difflib.get_close_matches(name, people.names, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; browse with `prefixopt people`"
    raise PrefixoptError(f"no person named {name!r} in the people table{hint}")


@dataclass(frozen=True)
class TrainBaseline:
    """What the winner's-curse gap needs beyond the training rewards: per learned person the
    training questions of this benchmark it answered (how often, how often right), and no
    prefix on the same distinct questions, in training's scoring mode and prompt format."""

    rewards: pl.DataFrame  # analysis.person_train_rewards: person_id, train_reward, ...
    asked: pl.DataFrame  # analysis.person_train_answers: person_id, question_id, asked, right
    questions: tuple[Question, ...] = ()  # what no prefix answers (empty: not scored)
    render: dict[str, Any] = field(default_factory=dict)  # training's scoring, prompt format
    note: str | None = None  # why no prefix is not scored (the gap then stays raw)
    none_correct: pl.DataFrame | None = None  # question_id, none_correct (take_baseline)


def training_baseline(run_dir: str | Path, cfg: EvalConfig, prefixes: list[Prefix],
                      rewards: pl.DataFrame | None) -> TrainBaseline | None:
    """The learned people's training answers on cfg's benchmark and the questions no prefix
    must answer (the distinct ones, from the run's train split, with the run's scoring mode
    and prompt format). No engine: it is checked and loaded before one starts. None without
    training rewards (no learned people)."""
    if rewards is None:
        return None
    bench = cfg.task.benchmark
    learned = [p.person_id for p in prefixes if p.kind == "learned"]
    try:
        answers = runs.scan(run_dir, "answers")
    except PrefixoptError:
        return TrainBaseline(rewards, pl.DataFrame(), note="the run has no answers table")
    asked = analysis.person_train_answers(answers, learned, bench).collect()
    saved = runs.read_config(run_dir).get("config", {})
    task = saved.get("task", {})
    mode = scoring.resolve_scoring(bench, task.get("scoring"))
    if mode != scoring.resolve_scoring(bench, cfg.task.scoring):
        return TrainBaseline(rewards, asked, note=f"training scored {mode}, this evaluation "
                             "another mode, so no prefix cannot share its engine call")
    pool = {q.question_id: q for q in load_split(bench, saved.get("train_split"),
                                                 data_dir=cfg.task.data_dir, purpose="train")}
    ids = asked["question_id"].unique().sort().to_list() if len(asked) else []
    missing = sum(i not in pool for i in ids)
    if missing or not ids:
        return TrainBaseline(rewards, asked, note=f"{missing} of the {len(ids)} training "
                             "questions are not in the run's train split")
    render = {"scoring": mode, "prompt_format": task.get("prompt_format", "chat")}
    return TrainBaseline(rewards, asked, tuple(pool[i] for i in ids), render)


def baseline_requests(train: Any, engine: object, fewshot: Any = ()) -> tuple[list, Any]:
    """No prefix's requests for the training questions, to go at the END of eval's one call,
    with the evaluation's few-shot examples (the run's own, when it recorded them). A training
    question shown as a solved example is no test: it leaves both sides of the gap (the
    person's training answers too). Returns the requests and train with those questions."""
    if not isinstance(train, TrainBaseline) or not train.questions:
        return [], train
    shown = {q.question_id for q in fewshot}
    if shown & {q.question_id for q in train.questions}:
        keep = tuple(q for q in train.questions if q.question_id not in shown)
        train = replace(train, questions=keep, asked=train.asked.filter(
            ~pl.col("question_id").is_in(list(shown))))
    return prompts.build_grid(engine, [(NO_PERSON, None)], list(train.questions),
                              fewshot=fewshot, **train.render), train


def take_baseline(train: Any, requests: list, responses: list, answers: list
                  ) -> tuple[list, list, list, Any]:
    """Split baseline_requests' answers off the end of the call's; train gets them."""
    n = len(train.questions) if isinstance(train, TrainBaseline) else 0
    if not n:
        return requests, responses, answers, train
    cut = len(requests) - n
    none = pl.DataFrame({"question_id": [q.question_id for q in train.questions],
                         "none_correct": [bool(a.correct) for a in answers[cut:]]})
    return requests[:cut], responses[:cut], answers[:cut], replace(train, none_correct=none)


CURSE_COLUMNS = {"train_reward": pl.Float64, "times_sampled": pl.Int64,
                 "train_questions": pl.Int64, "train_accuracy": pl.Float64,
                 "none_train_accuracy": pl.Float64, "train_minus_heldout": pl.Float64,
                 "none_train_minus_heldout": pl.Float64, "curse_gap": pl.Float64,
                 "curse_note": pl.String}


def _train_table(train: Any) -> pl.DataFrame:
    """Per learned person: training reward (the learner's) and, from the answers, training
    accuracy on this benchmark, distinct questions, and no prefix's accuracy on the same
    questions weighted the same way (null when it was not scored)."""
    rewards = train.rewards if isinstance(train, TrainBaseline) else train
    out = rewards.select("person_id", "train_reward", "times_sampled")
    if not isinstance(train, TrainBaseline) or not len(train.asked):
        return out
    asked = train.asked
    none = (train.none_correct if train.none_correct is not None else
            pl.DataFrame(schema={"question_id": pl.String, "none_correct": pl.Boolean}))
    per = (asked.join(none, on="question_id", how="left")
           .group_by("person_id")
           .agg(train_questions=pl.len().cast(pl.Int64),
                train_accuracy=pl.col("right").sum() / pl.col("asked").sum(),
                none_train_accuracy=(pl.col("asked") * pl.col("none_correct")).sum()
                / pl.col("asked").sum()))
    if train.none_correct is None:
        per = per.with_columns(none_train_accuracy=pl.lit(None, pl.Float64))
    return out.join(per, on="person_id", how="left")


def people_columns(summary: pl.DataFrame, prefixes: list[Prefix], people, probs, train
                   ) -> pl.DataFrame:
    """name/field/era of person prefixes, final probability, and for learned people the
    training reward and the winner's-curse columns (CURSE_COLUMNS). train: a TrainBaseline,
    or the training-rewards table alone (then no no-prefix baseline), or None."""
    def col(values):
        return [values(p) if p.row >= 0 and people is not None else None for p in prefixes]

    out = summary.with_columns(
        pl.Series("field", col(lambda p: people.fields[people.field_index[p.row]]), pl.String),
        pl.Series("era", col(lambda p: people.eras[people.era_index[p.row]]), pl.String),
        pl.Series("final_prob", [float(probs[p.row]) if probs is not None and p.row >= 0
                                 else None for p in prefixes], pl.Float64),
    )
    if train is None:
        return out.with_columns(pl.lit(None, t).alias(c) for c, t in CURSE_COLUMNS.items())
    table = _train_table(train)
    out = out.join(table, on="person_id", how="left").sort("prefix_index").with_columns(
        pl.when(pl.col("prefix_kind") == "learned").then(pl.col(c)).alias(c)
        for c in table.columns if c != "person_id")
    out = out.with_columns(pl.lit(None, t).alias(c) for c, t in CURSE_COLUMNS.items()
                           if c not in out.columns)
    learned = pl.col("prefix_kind") == "learned"
    if "train_accuracy" not in table.columns:  # no answers table: the learner's reward
        out = out.with_columns(train_accuracy=pl.when(learned).then(pl.col("train_reward")))
    scored = isinstance(train, TrainBaseline) and train.none_correct is not None
    note = (train.note if isinstance(train, TrainBaseline) and train.note else None if scored
            else "no prefix was not scored on the training questions")
    none_acc = float(out.filter(pl.col("prefix_kind") == "none")["accuracy"][0])
    train_acc, acc = (out[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
                      for c in ("train_accuracy", "accuracy"))  # (P,)
    none_train = out["none_train_accuracy"].cast(pl.Float64).fill_null(np.nan).to_numpy()
    gap = stats.winners_curse(train_acc, acc, none_train, none_acc)  # (P,) nan: no figure
    return out.with_columns(
        train_minus_heldout=pl.Series(train_acc - acc).fill_nan(None),
        none_train_minus_heldout=pl.Series(none_train - none_acc).fill_nan(None),
        curse_gap=pl.Series(gap).fill_nan(None),
        curse_note=pl.when(learned).then(pl.lit(note, pl.String)))


def curse_columns(summary: pl.DataFrame) -> pl.DataFrame:
    """A saved eval summary with today's winner's-curse columns. One written before the
    no-prefix baseline has curse_gap = training reward - held-out accuracy (the splits'
    difference in difficulty included): that becomes train_minus_heldout, curse_gap null."""
    if "curse_note" in summary.columns:
        return summary
    old = summary.with_columns(pl.lit(None, t).alias(c) for c, t in CURSE_COLUMNS.items()
                               if c not in summary.columns and c != "curse_gap")
    learned = pl.col("prefix_kind") == "learned"
    raw = pl.col("curse_gap") if "curse_gap" in summary.columns else pl.lit(None, pl.Float64)
    return old.with_columns(
        train_minus_heldout=raw, curse_gap=pl.lit(None, pl.Float64),
        curse_note=pl.when(learned & raw.is_not_null()).then(pl.lit(
            "made before the no-prefix training baseline: training reward minus held-out "
            "accuracy")))


def curse_summary(summary: pl.DataFrame) -> dict[str, Any] | None:
    """The winner's-curse figures of an eval summary (means over the learned people), with how
    they were made; None without learned people with training rewards."""
    s = curse_columns(summary).filter(pl.col("prefix_kind") == "learned")
    s = s.filter(pl.col("train_minus_heldout").is_not_null())
    if s.is_empty():
        return None
    notes = s["curse_note"].drop_nulls().unique().sort().to_list()
    # method: difference_of_differences (each learned person's training - held-out accuracy
    # minus no prefix's on the same training questions: selection alone) or, without no
    # prefix's figures, raw_includes_split_difficulty (training - held-out accuracy)
    return {"method": "raw_includes_split_difficulty" if notes else "difference_of_differences",
            "note": "; ".join(notes) or None, "curse_gap": s["curse_gap"].mean(),
            "train_minus_heldout": s["train_minus_heldout"].mean(),
            "none_train_minus_heldout": s["none_train_minus_heldout"].mean()}
