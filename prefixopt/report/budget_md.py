"""The budget table of a run's or a study's report.md: estimated and spent seconds, question
evaluations, prompt / computed / cached tokens, for training, eval and the total
(prefixopt/budget.py's `budget` object; docs/planning.md "Budget accounting").
"""

from __future__ import annotations

from typing import Any


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:,.1f}"


def section(b: dict[str, Any], level: str = "###") -> str:
    """A small markdown table, one row per part (train, eval, total)."""
    lines = [f"{level} Budget", "",
             "| part | estimated s | spent s | question evaluations | prompt tokens | "
             "computed tokens | cached tokens |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, p in (("train", b["train"]), ("eval", b["eval"]), ("total", b)):
        lines.append(f"| {name} | {_s(p['estimated_s'])} | {_s(p['spent_s'])} | "
                     f"{p['question_evaluations']:,} | {p['prompt_tokens']:,} | "
                     f"{p['computed_tokens']:,} | {p['cached_tokens']:,} |")
    lines += ["", "Estimated before the work started at the planned throughput "
              "(docs/planning.md; - where none is planned); spent summed over every session, "
              "engine starts included; computed = prompt - cached tokens.", ""]
    return "\n".join(lines)
