"""The study's report.md, written from the tables study/page.py computed: what was run, the
transfer matrix and learned vs none with their intervals and verdicts, budget curves, and the
learned distributions (field mass, JSD, top-20 overlap) with the warning that concentration is
not evidence.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from prefixopt.report.prose import _md_table, pts


def _cell(r: dict) -> str:
    return (f"{pts(r['diff'])} [{pts(r['low'])}, {pts(r['high'])}]"
            + (" *" if r["significant"] else ""))


def transfer_md(t: pl.DataFrame) -> list[str]:
    if not len(t):
        return ["No held-out evaluations yet.", ""]
    cols = list(dict.fromkeys(t["evaluated_on"]))
    grid = {(r["trained_on"], r["evaluated_on"]): _cell(r) for r in t.iter_rows(named=True)}
    rows = list(dict.fromkeys(t["trained_on"]))
    table = pl.DataFrame({"trained on \\ evaluated on": rows,
                          **{c: [grid.get((r, c), "") for r in rows] for c in cols}})
    return [("Rows: what the policy was trained on (the largest budget, every seed pooled); "
            "columns: the benchmark its learned top-k were evaluated on. Each cell: held-out "
            "accuracy of the learned people minus no prefix, in points, with its 95% paired "
            "bootstrap interval over questions; * = the interval excludes 0 (not corrected for "
            "the number of cells: with many cells, expect some * by chance). Off-diagonal "
            "cells are transfer: people learned on one benchmark asked another's questions."),
            "", _md_table(table), "![transfer_matrix](transfer_matrix.png)", ""]


def verdicts(t: pl.DataFrame) -> list[str]:
    lines = []
    for r in t.filter(pl.col("own")).iter_rows(named=True):
        verdict = (("evidence that the learned people are "
                    f"{'better' if r['diff'] > 0 else 'worse'} than no prefix")
                   if r["significant"] else "no evidence of a difference (the interval "
                   "includes 0)")
        lines.append(f"- {r['model']}, trained on {r['benchmark']} ({r['trained_on']}), "
                     f"evaluated on {r['evaluated_on']} ({r['runs']} runs x {r['questions']} "
                     "questions): "
                     f"learned {pts(r['learned_acc'], False)}% vs none "
                     f"{pts(r['none_acc'], False)}%, difference {_cell(r)}: {verdict}.")
    return lines or ["- no own-benchmark evaluation yet."]


def _scenario(syn: dict[str, Any]) -> str:
    what = (", ".join(syn.get("planted_field") or ()) or
            (f"{syn['planted_people']} random people" if syn.get("planted_people") else ""))
    if not what:
        return f"none (everyone at {syn.get('base_accuracy', 0.5)})"
    return f"{what} at +{syn.get('delta', 0.1)} over {syn.get('base_accuracy', 0.5)}"


def study_md(manifest: dict[str, Any], tables: dict[str, pl.DataFrame], figs: list[Path],
             out: Path) -> str:
    spec, cells = manifest["spec"], manifest["cells"]
    done = sum(c["status"] == "done" for c in cells)
    names = {f.name for f in figs}
    syn = spec.get("synthetic") or {}
    lines = [f"# Study {spec['name']}", "",
             f"engine {spec['engine']}; models {', '.join(spec['models'])}; benchmarks "
             f"{', '.join(spec['benchmarks'])}; budgets {', '.join(map(str, spec['budgets']))} "
             f"question evaluations; seeds {', '.join(map(str, spec['seeds']))}"
             + "".join(f"; {k} {', '.join(map(str, v))}" for k, v in spec["options"])
             + f". {done} of {len(cells)} "
             "cells done (manifest.json)."
             + (f" Planted scenario: {_scenario(syn)}." if spec["engine"] == "synthetic"
                else ""), "",
             "## Learned vs no prefix, per model", "", *verdicts(tables["transfer"]), ""]
    if "learned_vs_none.png" in names:
        lines += ["![learned_vs_none](learned_vs_none.png)", ""]
    lines += ["## Transfer matrix", "", *transfer_md(tables["transfer"])]
    b = tables["budget"]
    if len(b):
        lines += ["## Budget curves", "", _md_table(b.select(
            "group", "evaluated_on", "budget", "evaluations", "seeds",
            *(pl.col(c) * 100 for c in ("diff", "low", "high")),
            *(c for c in ("planted_mass", "planted_mass_min", "planted_mass_max")
              if b[c].null_count() < len(b)))),
            ("(diff, low, high: learned - no prefix in points, seeds pooled, 95% CI; "
            "planted_mass: probability on the planted people, mean/min/max over seeds.)"), ""]
        if "budget_curves.png" in names:
            lines += ["![budget_curves](budget_curves.png)", ""]
    lines += ["## Learned distributions (largest budget)", "",
              ("Concentration is not evidence: a policy concentrates on lucky noise as readily "
              "as on a real effect. Compare the off-diagonal numbers with the diagonal "
              "(replicates: same settings, other seeds), and trust only the held-out rows "
              "above."), ""]
    if "field_mass" in tables:
        lines += ["Probability mass by field (mean over seeds) and the pool share:", "",
                  _md_table(tables["field_mass"]), "![field_mass](field_mass.png)", ""]
    lines += [("Jensen-Shannon divergence between learned distributions (bits; 0 same, "
              "1 disjoint; mean over run pairs):"), "", _md_table(tables["jsd"]),
              "Shared top-20 people (mean over run pairs):", "",
              _md_table(tables["top_overlap"]), ""]
    if "distribution_matrices.png" in names:
        lines += ["![distribution_matrices](distribution_matrices.png)", ""]
    lines += ["## Cells", "", _md_table(pl.DataFrame(
        [{"cell": c["id"], "status": c["status"], "iterations": c["iterations"],
          "run": c["run_dir"]} for c in cells]))]
    return "\n".join(lines) + "\n"
