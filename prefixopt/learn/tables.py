"""The Parquet rows one training iteration writes, the same for every learner: `answers` (one
row per prompt, request order), `samples` (one row per sampled person: reward, advantage and
the probability it was drawn with) and `iterations` (one row of statistics). Pure polars.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from prefixopt.policy import entropy
from prefixopt.records import Question


def token_counts(responses: Sequence[Any]) -> np.ndarray:
    """(P, 3) prompt, cached and output tokens per response."""
    return np.array([(r.prompt_tokens, r.cached_tokens, r.output_tokens) for r in responses],
                    dtype=np.int64).reshape(-1, 3)


def answers_frame(it: int, sample: np.ndarray, pids: np.ndarray, asked: Sequence[Question],
                  answers: Sequence[Any], responses: Sequence[Any], modes: dict[str, str],
                  context: np.ndarray | None, chat: bool, text: bool = True) -> pl.DataFrame:
    """One row per prompt (P = K*B): sample (P,) its sample, pids (S,), asked (P,) its question,
    context (S,) the samples' context names or None; chat adds the letters a chat API left out
    of its top list (scored -inf); text False leaves out completions and missing letters."""
    tok = token_counts(responses)
    generated = "generate" in modes.values() and text
    return pl.DataFrame({
        "iteration": np.full(len(answers), it), "sample": sample,
        "person_id": pids[sample], "question_id": [q.question_id for q in asked],
        "benchmark": [q.benchmark for q in asked],
        "correct": np.fromiter((a.correct for a in answers), bool, len(answers)),
        "parsed": [a.parsed for a in answers],
        "pred": [a.pred for a in answers], "gold": [a.gold for a in answers],
        "margin": np.fromiter((a.margin for a in answers), float, len(answers)),
        "rule": [a.rule for a in answers],
        "prompt_tokens": tok[:, 0], "cached_tokens": tok[:, 1], "output_tokens": tok[:, 2],
        **({"completion": [r.text if modes[q.benchmark] == "generate" else None
                           for q, r in zip(asked, responses, strict=True)]} if generated else {}),
        **({"context": context[sample]} if context is not None else {}),
        **({"missing_letters": [r.missing_letters for r in responses]} if chat and text else {}),
    }, schema_overrides={"pred": pl.String, "gold": pl.String, "completion": pl.String})


def samples_frame(it: int, people, rows: np.ndarray, rewards: np.ndarray, adv: np.ndarray,
                  prob: np.ndarray, extra: dict[str, np.ndarray]) -> pl.DataFrame:
    """One row per sampled person: rows, rewards, adv, prob (S,); extra: the learner's own
    columns (context, reward_<benchmark>)."""
    return pl.DataFrame({
        "iteration": np.full(len(rows), it), "sample": np.arange(len(rows)),
        "person_id": people.person_id[rows], "row": rows,
        "name": [people.names[r] for r in rows],
        "field": [people.fields[people.field_index[r]] for r in rows],
        "era": [people.eras[people.era_index[r]] for r in rows],
        "reward": rewards, "advantage": adv, "prob": prob, **extra,
    })


def iteration_stats(it: int, people, rewards: np.ndarray, baseline: float, probs: np.ndarray,
                    top: int, confidence: float | None, tok: np.ndarray, generate_s: float,
                    evaluations: int, extra: dict[str, float]) -> dict[str, Any]:
    """The iterations row (without wall_s and host_s): probs (N,) the learner's distribution
    after the update, top its top person's row, confidence written when the learner measures
    it every iteration (halving, ttts)."""
    return {
        "iteration": it, "mean_reward": float(rewards.mean()),
        "std_reward": float(rewards.std()), "baseline": baseline,
        "entropy": entropy(probs) if probs.sum() > 0 else 0.0,
        "top_person_id": int(people.person_id[top]), "top_name": people.names[top],
        "top_prob": float(probs[top]),
        **({"top_confidence": confidence} if confidence is not None else {}),
        "num_prompts": len(tok), "prompt_tokens": int(tok[:, 0].sum()),
        "cached_tokens": int(tok[:, 1].sum()), "output_tokens": int(tok[:, 2].sum()),
        "generate_s": generate_s, "evaluations": evaluations, **extra,
    }
