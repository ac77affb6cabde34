"""Held-out evaluation of a contextual run (`--context benchmark|subject`): every held-out
question gets its own context's top person (the "contextual assignment"; a context the run never
saw gets the global top person), compared paired with the global top person and with no prefix,
plus one row per context (Holm across contexts).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl

from prefixopt import runs, stats
from prefixopt.evaluate.prefixes import Prefix
from prefixopt.records import NO_PERSON, Question
from prefixopt.ask.prompts import persona
from prefixopt.learn.iteration import context_label

KIND = "contextual"


def assignment(run_dir: str | Path, questions: Sequence[Question], people,
               template: str) -> tuple[Prefix, list[str]] | None:
    """(the contextual-assignment prefix, each question's context) for a contextual run; None
    for a run without contexts."""

    meta = runs.read_config(run_dir)
    if not meta["config"].get("context"):
        return None
    ckpt = runs.load_checkpoint(run_dir)
    index = {name: i for i, name in enumerate(meta.get("contexts", []))}
    top = np.asarray(ckpt["context_probs"]).argmax(axis=1)  # (C,) each context's top row
    fallback = int(np.asarray(ckpt["probs"]).argmax())  # the global (shared) top row
    labels = context_labels(run_dir, questions)  # (Q,)
    rows = [int(top[index[c]]) if c in index else fallback for c in labels]  # (Q,)
    pairs = tuple((int(people.person_id[r]), persona(template, people.names[r])) for r in rows)
    return Prefix(KIND, "contextual assignment", NO_PERSON, None, -1, pairs), labels


def context_labels(run_dir: str | Path, questions: Sequence[Question]) -> list[str]:
    """Each question's context under the run's --context rule."""

    kind = runs.read_config(run_dir)["config"]["context"]
    return [context_label(kind, q) for q in questions]


def per_context(rows: pl.DataFrame, labels: Sequence[str], questions: Sequence[Question],
                rng: np.random.Generator, num_samples: int) -> pl.DataFrame:
    """One row per context: questions, contextual vs none accuracy and paired difference with
    its bootstrap interval, exact McNemar p and Holm across contexts."""
    label_of = dict(zip((q.question_id for q in questions), labels, strict=True))
    wide = (rows.filter(pl.col("prefix_kind").is_in([KIND, "none"]))
            .pivot(on="prefix_kind", index="question_id", values="correct")
            .with_columns(context=pl.col("question_id").replace_strict(label_of)))
    out = []
    for (context,), part in wide.sort("question_id").group_by(["context"], maintain_order=True):
        c = stats.compare_to_none(part[KIND].to_numpy(), part["none"].to_numpy(), rng,
                                  num_samples)
        out.append({"context": context, "n": c.n, "accuracy": c.accuracy,
                    "none_accuracy": float(part["none"].mean()), "diff_vs_none": c.diff,
                    "diff_low": c.diff_low, "diff_high": c.diff_high, "p_value": c.p_value})
    table = pl.DataFrame(out).sort("context")
    p_holm = stats.holm(table["p_value"].to_numpy())
    return table.with_columns(p_holm=pl.Series(p_holm),
                              significant=pl.Series(p_holm < stats.ALPHA))
