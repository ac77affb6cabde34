"""A finding's `budget`: the study's own budget object (prefixopt/budget.py's `of_study`: the
six keys, for train and eval) when the study recorded one; else derived from what every study
has, the iterations tables (wall_s, num_prompts, prompt/cached tokens), the eval tables and the
cells' wall times, with `"derived": true` and None where nothing was measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from prefixopt import budget as accounting
from prefixopt import runs
from prefixopt.errors import PrefixoptError

KEYS = ("estimated_s", "spent_s", "question_evaluations", "prompt_tokens", "computed_tokens",
        "cached_tokens")


def of_study(study_dir: Path, manifest: dict[str, Any],
             tables: list[tuple[pl.DataFrame, ...]]) -> dict[str, Any]:
    """{the six keys, "train": {...}, "eval": {...}, "derived": bool}."""
    if "budget" in manifest:  # recorded (budget accounting); a study made before it: derived
        got = accounting.of_study(study_dir, manifest)
        return {**{k: got[k] for k in KEYS}, "train": {k: got["train"][k] for k in KEYS},
                "eval": {k: got["eval"][k] for k in KEYS}, "derived": False}
    return derived(study_dir, manifest, tables)


def _train(run_dir: Path) -> dict[str, Any]:
    try:
        it = runs.scan(run_dir, "iterations").collect()
    except PrefixoptError:
        return {"spent_s": 0.0, "question_evaluations": 0, "prompt_tokens": 0,
                "cached_tokens": 0}
    seconds = it["wall_s"] if "wall_s" in it.columns else it["generate_s"]
    return {"spent_s": float(seconds.sum()), "question_evaluations": int(it["num_prompts"].sum()),
            "prompt_tokens": int(it["prompt_tokens"].sum()),
            "cached_tokens": int(it["cached_tokens"].sum())}


def derived(study_dir: Path, manifest: dict[str, Any],
            tables: list[tuple[pl.DataFrame, ...]]) -> dict[str, Any]:
    """Training from the iterations tables; eval: its prefix x question rows, and seconds as
    the cell's wall time less its training (None when the manifest has no wall time); eval
    tokens are not in the tables (None)."""
    parts = [_train(study_dir / c["run_dir"]) for c in manifest["cells"]]
    train = {k: sum(p[k] for p in parts) for k in parts[0]}
    train.update(estimated_s=None, computed_tokens=train["prompt_tokens"] - train["cached_tokens"])
    walls = [c.get("wall_s") for c in manifest["cells"]]
    eval_s = (None if any(w is None for w in walls) else
              float(sum(max(0.0, w - p["spent_s"]) for w, p in zip(walls, parts, strict=True))))
    evals = {"estimated_s": None, "spent_s": eval_s,
             "question_evaluations": int(sum(len(rows) for rows, _ in tables)),
             "prompt_tokens": None, "computed_tokens": None, "cached_tokens": None}
    total = {k: None if train[k] is None or evals[k] is None else train[k] + evals[k]
             for k in KEYS}
    return {**total, "train": {k: train[k] for k in KEYS}, "eval": evals, "derived": True}
