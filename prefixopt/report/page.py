"""`prefixopt report`: figures (matplotlib, Agg) and report.md for one run, or a comparison of
several runs (field mass side by side, Jensen-Shannon divergence between the learned
distributions, overlap of top people). Numbers come from analysis queries over runs.scan and
from stats.summarise recomputed on the saved eval rows; the sentences are written from them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from prefixopt.evaluate import compare
from prefixopt import analysis, budget, runs, stats

from prefixopt.evaluate import oracle, robustness
from prefixopt.errors import PrefixoptError
from prefixopt.report.figures import (
    fig_context_field,
    fig_eval,
    fig_field_mass_runs,
    fig_mass,
    fig_top_people,
    fig_training,
)
from prefixopt.evaluate.prefixes import curse_columns, curse_summary
from prefixopt.report import budget_md, oracle_md
from prefixopt.report.prose import answers_md, comparison_md, run_md


def _try(fn, *args):
    """A missing table (no training, no eval yet) leaves that part of the report out."""
    try:
        return fn(*args)
    except PrefixoptError:
        return None


# --- collecting one run's numbers -------------------------------------------------------------
def collect_run(run_dir: Path) -> dict[str, Any]:
    meta = runs.read_config(run_dir)
    cfg = meta.get("config", {})
    data: dict[str, Any] = {"run_dir": run_dir, "id": run_dir.name, "meta": meta,
                            "benchmark": cfg.get("task", {}).get("benchmark", "?"),
                            "model": cfg.get("engine", {}).get("model", "?")
                            if cfg.get("engine", {}).get("kind", "vllm") == "vllm" else
                            cfg.get("engine", {}).get("kind"),
                            "budget": budget.of_run(run_dir)}
    iters = _try(runs.scan, run_dir, "iterations")
    data["curve"] = None if iters is None else analysis.training_curve(iters).collect()
    samples = _try(runs.scan, run_dir, "samples")
    if samples is not None:
        data["field_reward"] = (samples.group_by("field")
                                .agg(samples=pl.len(), mean_reward=analysis.ordered_mean("reward"))
                                .sort("mean_reward", descending=True).collect())
    ckpt = _try(runs.load_checkpoint, run_dir)  # read once: final and per-context policies
    probs = None if ckpt is None else np.asarray(ckpt["probs"], dtype=float)
    if probs is not None:
        people = runs.run_people(run_dir)
        pp = analysis.people_probs(people.frame, probs)
        # halving / ttts: their own ranking (P(best) is ~0 for most of their top people)
        top = (pp.collect()[np.asarray(ckpt["ranking"], dtype=np.int64)[:20].tolist()]
               if "ranking" in ckpt else analysis.top_people(pp, 20).collect())
        data.update(probs_lf=pp, top=top,
                    field_mass=analysis.mass_by(pp, "field").collect(),
                    era_mass=analysis.mass_by(pp, "era").collect(), num_people=len(probs),
                    entropy=float(-np.sum(probs[probs > 0] * np.log(probs[probs > 0]))))
        if "context_probs" in ckpt:  # a contextual run: where each context puts its mass
            data["context_mass"] = analysis.context_field_mass(
                people.frame, ckpt["context_probs"], meta.get("contexts", [])).collect()
    data["evals"] = [collect_eval(run_dir, name) for name in _eval_names(run_dir)]
    data["formats"] = [runs.scan(run_dir, f"eval/{p.stem}").collect()  # --formats comparisons
                       for p in sorted(runs.eval_dir(run_dir).glob("*_formats.parquet"))]
    benchmarks = {e["summary"]["benchmark"][0] for e in data["evals"]}
    if len(benchmarks) > 1:  # one eval per benchmark of a multi-benchmark run: pool them too
        first = data["evals"][0]["summary"]
        data["pooled"] = robustness.pooled_contrasts(
            [e["rows"] for e in data["evals"]], stats.stats_rng(int(first["bootstrap_seed"][0])),
            int(first["bootstrap_samples"][0]))
    return data


def _eval_names(run_dir: Path) -> list[str]:
    return sorted(p.name.removesuffix("_summary.parquet")
                  for p in runs.eval_dir(run_dir).glob("*_summary.parquet"))


def collect_eval(run_dir: Path, name: str) -> dict[str, Any]:
    """The saved summary plus the group contrasts recomputed from the rows with the eval's own
    bootstrap seed (the same numbers `eval` printed)."""
    summary = runs.scan(run_dir, f"eval/{name}_summary").sort("prefix_index").collect()
    summary = curse_columns(summary)  # an eval made before the no-prefix training baseline
    rows = runs.scan(run_dir, f"eval/{name}").collect()
    seed, n_boot = int(summary["bootstrap_seed"][0]), int(summary["bootstrap_samples"][0])
    _, contrasts = compare.summarise(rows, stats.stats_rng(seed), n_boot)
    kinds = analysis.kind_accuracy(rows.lazy()).collect()
    null, routed = oracle.from_rows(rows, seed, n_boot)  # the numbers eval's --json gave
    e = {"name": name, "summary": summary, "contrasts": {c.name: c for c in contrasts},
         "kinds": kinds, "n": int(summary["n"][0]), "rows": rows, "oracle_null": null,
         "router": routed}
    return {**e, "oracle_lines": oracle_md.eval_lines(e),
            "oracle_verdict": null and oracle_md.verdict_sentence(null)}


# --- figures ----------------------------------------------------------------------------------
def run_figures(d: dict[str, Any], out: Path, prefix: str = "") -> list[Path]:
    figs = []
    title = f"{d['id']} ({d['benchmark']}, {d['model']})"
    if d["curve"] is not None and len(d["curve"]):
        figs.append(fig_training(d["curve"], out / f"{prefix}training_curves.png", title))
    if "top" in d:
        figs.append(fig_top_people(d["top"], out / f"{prefix}top_people.png",
                                   f"Top 20 people by final probability: {title}",
                                   d["num_people"]))
        figs.append(fig_mass(d["field_mass"], d["era_mass"], out / f"{prefix}mass_by_field_era.png",
                             title))
    if "context_mass" in d:
        figs.append(fig_context_field(d["context_mass"], out / f"{prefix}context_field_mass.png",
                                      f"Probability mass by context and field: {title}"))
    for e in d["evals"]:
        figs.append(fig_eval(e["summary"], out / f"{prefix}eval_{e['name']}.png",
                             f"Held-out evaluation {e['name']} ({e['n']} questions): {title}"))
    return figs


def compare_runs(data: list[dict[str, Any]]) -> dict[str, Any]:
    """Field mass side by side, pairwise JSD of the learned distributions, top-20 overlap."""
    with_probs = [d for d in data if "probs_lf" in d]
    out: dict[str, Any] = {"jsd": [], "top_overlap": []}
    if not with_probs:
        return out
    masses = {d["id"]: d["field_mass"].lazy() for d in with_probs}
    out["field_mass"] = analysis.field_mass_side_by_side(masses).collect()
    for i, a in enumerate(with_probs):
        for b in with_probs[i + 1:]:
            al = analysis.aligned_probs(a["probs_lf"], b["probs_lf"]).collect()
            jsd = analysis.jensen_shannon(al["prob_a"].to_numpy(), al["prob_b"].to_numpy())
            shared = set(a["top"]["person_id"]) & set(b["top"]["person_id"])
            out["jsd"].append({"a": a["id"], "b": b["id"], "jsd_bits": jsd})
            out["top_overlap"].append({"a": a["id"], "b": b["id"], "shared_top20": len(shared)})
    return out


def build_report(run_dirs: list[Path], out: Path | None = None) -> dict[str, Any]:
    """Write figures + report.md; return the key numbers (the test compares them to direct
    polars reads of the Parquet tables)."""
    run_dirs = [Path(r) for r in run_dirs]
    out = Path(out) if out is not None else run_dirs[0] / "report"
    out.mkdir(parents=True, exist_ok=True)
    data = [collect_run(r) for r in run_dirs]
    multi = len(data) > 1
    figs: list[Path] = []
    sections = []
    for d in data:
        d_figs = run_figures(d, out, prefix=f"{d['id']}_" if multi else "")
        figs += d_figs
        sections.append(run_md(d, d_figs, out))
        sections.append(budget_md.section(d["budget"]))
    comparison = compare_runs(data) if multi else None
    if comparison is not None and "field_mass" in comparison:
        figs.append(fig_field_mass_runs(comparison["field_mass"], out / "field_mass_runs.png"))
    text = answers_md(data, comparison) + "\n" + "\n".join(sections)
    if comparison is not None:
        text += "\n" + comparison_md(data, comparison, out)
    report_md = out / "report.md"
    runs.write_text(report_md, text)
    return {"report_md": str(report_md), "figures": [str(f) for f in figs],
            "numbers": key_numbers(data, comparison)}


def key_numbers(data: list[dict[str, Any]], comparison: dict[str, Any] | None) -> dict[str, Any]:
    nums: dict[str, Any] = {}
    for d in data:
        n: dict[str, Any] = {"benchmark": d["benchmark"]}
        if d["curve"] is not None and len(d["curve"]):
            n["iterations"] = len(d["curve"])
            n["final_mean_reward"] = float(d["curve"]["mean_reward"][-1])
            n["final_entropy"] = float(d["curve"]["entropy"][-1])
        if "top" in d:
            n["top_person"] = d["top"]["name"][0]
            n["top_prob"] = float(d["top"]["prob"][0])
            fm = d["field_mass"]
            n["top_field"], n["top_field_mass"] = fm["field"][0], float(fm["mass"][0])
            n["top_field_pool_share"] = float(fm["pool_share"][0])
        if "field_reward" in d:
            fr = d["field_reward"]
            n["field_reward"] = {f: {"samples": int(k), "mean_reward": float(r)} for f, k, r in
                                 zip(fr["field"], fr["samples"], fr["mean_reward"], strict=True)}
        for e in d["evals"]:
            s = e["summary"]
            learned = s.filter(pl.col("prefix_kind") == "learned")
            n[f"eval/{e['name']}"] = {
                "accuracy": dict(zip(s["prefix"], s["accuracy"].to_list(), strict=True)),
                "p_holm": dict(zip(s["prefix"], s["p_holm"].to_list(), strict=True)),
                "contrasts": {k: {"diff": c.diff, "low": c.low, "high": c.high,
                                  "resampled": c.resampled}
                              for k, c in e["contrasts"].items()},
                "learned_significant": int(learned["significant"].sum()),
                "curse_gap": dict(zip(learned["prefix"], learned["curse_gap"].to_list(),
                                      strict=True)),
                "train_minus_heldout": dict(zip(learned["prefix"],
                                                learned["train_minus_heldout"].to_list(),
                                                strict=True)),
                "winners_curse": curse_summary(s),
                "oracle_null": e["oracle_null"], "router": e["router"],
            }
        nums[d["id"]] = n
    if comparison:
        nums["comparison"] = {"jsd": comparison["jsd"], "top_overlap": comparison["top_overlap"]}
        if "field_mass" in comparison:
            fm = comparison["field_mass"]
            nums["comparison"]["field_mass"] = {
                row["field"]: {k: v for k, v in row.items() if k != "field"}
                for row in fm.iter_rows(named=True)}
    return nums
