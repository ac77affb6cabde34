"""The study report (studies/<name>/report/): the transfer matrix (rows: trained on, columns:
evaluated on; learned-vs-none pooled over a row's seeds at its largest budget, question by
question, with a paired bootstrap interval), learned vs none per model, budget curves, field
mass per benchmark side by side, and the Jensen-Shannon / top-20 overlap matrices between the
learned distributions. Numbers come from the runs' tables (runs.scan); tables go to Parquet.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from prefixopt import budget as cost_of, runs, stats
from prefixopt.config import split_benchmarks
from prefixopt.errors import PrefixoptError
from prefixopt.report import budget_md
from prefixopt.report import page as rp
from prefixopt.study import figures as sf
from prefixopt.study.manifest import read_manifest
from prefixopt.study.prose import study_md


def pooled_contrast(run_dirs: list[Path], eval_name: str, seed: int,
                    num_samples: int) -> dict[str, Any] | None:
    """Learned minus none over the runs' eval tables of that name, pooled per question: every
    learned row of every run is group a (R*k, Q), every none row group b (R, Q); a paired
    bootstrap over questions (stats.group_contrast, Generator stats.stats_rng(seed)). None when
    no run has that eval yet."""
    learned, none, qids = [], [], None
    for r in run_dirs:
        if not runs.eval_path(r, eval_name).is_file():
            continue
        rows = runs.scan(r, f"eval/{eval_name}").collect()
        meta, correct = stats.correct_matrix(rows.lazy())  # (P,) prefixes, (P, Q) sorted by qid
        q = sorted(rows["question_id"].unique().to_list())
        if qids is not None and q != qids:
            raise PrefixoptError(f"{r}/eval/{eval_name} asked other questions than the other "
                                 "runs of its row; the pooled contrast needs the same ones")
        qids = q
        kinds = np.asarray(meta["prefix_kind"].to_list())
        learned.append(correct[kinds == "learned"])
        none.append(correct[kinds == "none"])
    if qids is None:
        return None
    a, b = np.vstack(learned), np.vstack(none)  # (R*k, Q), (R, Q)
    c = stats.group_contrast("learned vs none", a, b, stats.stats_rng(seed), num_samples)
    return {"runs": len(learned), "questions": len(qids), "learned_acc": float(a.mean()),
            "none_acc": float(b.mean()), "diff": c.diff, "low": c.low, "high": c.high,
            "significant": bool(c.excludes_zero)}


def transfer_table(study_dir: Path, done: list[dict], cols: list[str], seed: int,
                   n_boot: int) -> pl.DataFrame:
    """One row per (row group, evaluated-on benchmark): the row's runs at its largest budget."""
    out = []
    for group, cells in _groups(done).items():
        top = max(c["budget"] for c in cells)
        final = [c for c in cells if c["budget"] == top]
        own = split_benchmarks(final[0]["benchmark"])
        for b in dict.fromkeys([*own, *cols]):
            name = final[0]["evals"].get(b)
            got = name and pooled_contrast([study_dir / c["run_dir"] for c in final], name,
                                           seed, n_boot)
            if got:
                out.append({"trained_on": group, "model": final[0]["model"],
                            "benchmark": final[0]["benchmark"], "evaluated_on": b,
                            "own": b in own, "budget": top, "eval": name, **got})
    return pl.DataFrame(out) if out else pl.DataFrame()


def _groups(cells: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for c in cells:
        out.setdefault(c["group"], []).append(c)
    return out


def planted_mass(run_dir: Path, people_cache: dict[str, Any]) -> float | None:
    """Final probability mass on the planted people of the run's benchmarks (synthetic)."""
    meta = runs.read_config(run_dir)
    syn = meta.get("synthetic")
    if not syn:
        return None
    key = meta.get("people_fingerprint", "")
    if key not in people_cache:
        people_cache[key] = runs.run_people(run_dir)
    by = syn.get("planted_person_ids_by_benchmark")
    ids = ({i for b in split_benchmarks(meta["config"]["task"]["benchmark"]) for i in by.get(b, [])}
           if by else set(syn.get("planted_person_ids", [])))
    mask = np.isin(people_cache[key].person_id, np.fromiter(ids, np.int64, len(ids)))  # (N,)
    return float(runs.final_probs(run_dir)[mask].sum())


def budget_table(study_dir: Path, done: list[dict], seed: int, n_boot: int) -> pl.DataFrame:
    """Per group, budget and own benchmark: pooled learned-vs-none and the planted mass
    (mean, min, max over seeds) against the evaluations actually made."""
    out, cache = [], {}
    for group, cells in _groups(done).items():
        for budget in sorted({c["budget"] for c in cells}):
            at = [c for c in cells if c["budget"] == budget]
            dirs = [study_dir / c["run_dir"] for c in at]
            evaluations = int(runs.load_checkpoint(dirs[0])["evaluations"])
            masses = [m for m in (planted_mass(d, cache) for d in dirs) if m is not None]
            for b in split_benchmarks(at[0]["benchmark"]):
                got = pooled_contrast(dirs, at[0]["evals"][b], seed, n_boot) or {}
                out.append({"group": group, "model": at[0]["model"], "evaluated_on": b,
                            "budget": budget, "evaluations": evaluations, "seeds": len(at),
                            "diff": got.get("diff"), "low": got.get("low"),
                            "high": got.get("high"),
                            "planted_mass": float(np.mean(masses)) if masses else None,
                            "planted_mass_min": min(masses) if masses else None,
                            "planted_mass_max": max(masses) if masses else None})
    return pl.DataFrame(out, infer_schema_length=None) if out else pl.DataFrame()


def group_matrix(pairs: list[dict], value: str, run_group: dict[str, str],
                 groups: list[str]) -> pl.DataFrame:
    """Pairwise run numbers (report.compare_runs) -> a group x group matrix of their means;
    the diagonal is the mean over replicate pairs (same settings, other seeds)."""
    acc: dict[tuple[str, str], list[float]] = {}
    for p in pairs:
        ga, gb = run_group[p["a"]], run_group[p["b"]]
        acc.setdefault((ga, gb), []).append(p[value])
        if ga != gb:
            acc.setdefault((gb, ga), []).append(p[value])
    return pl.DataFrame({"group": groups, **{h: [float(np.mean(acc[(g, h)])) if (g, h) in acc
                                                  else math.nan for g in groups]
                                             for h in groups}})


def build_study_report(study_dir: str | Path, out: Path | None = None) -> dict[str, Any]:
    """Collect, write the tables (Parquet), the figures and report.md; return key numbers."""

    study_dir = Path(study_dir)
    out = Path(out) if out is not None else study_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(study_dir)
    spec, done = manifest["spec"], [c for c in manifest["cells"] if c["status"] == "done"]
    seed = int(spec["eval"].get("seed", 0))
    n_boot = int(spec["eval"].get("bootstrap_samples", 10_000))
    cols = list(dict.fromkeys(b for c in done for b in c["evals"]))
    groups = list(_groups(done))
    tables: dict[str, pl.DataFrame] = {}
    tables["transfer"] = transfer_table(study_dir, done, cols, seed, n_boot)
    tables["budget"] = budget_table(study_dir, done, seed, n_boot)
    final = [c for g in _groups(done).values()
             for c in g if c["budget"] == max(x["budget"] for x in g)]
    data = [rp.collect_run(study_dir / c["run_dir"]) for c in final]
    comparison = rp.compare_runs(data) if len(data) > 1 else {"jsd": [], "top_overlap": []}
    run_group = {c["id"]: c["group"] for c in final}
    if "field_mass" in comparison:
        fm = comparison["field_mass"]
        pool = data[0]["field_mass"].select("field", "pool_share")
        tables["field_mass"] = fm.select("field", *(pl.mean_horizontal(
            [c["id"] for c in final if c["group"] == g]).alias(g) for g in groups)).join(
            pool, on="field", how="left").sort("field")
    tables["jsd"] = group_matrix(comparison["jsd"], "jsd_bits", run_group, groups)
    tables["top_overlap"] = group_matrix(comparison["top_overlap"], "shared_top20", run_group,
                                         groups)
    for name, df in tables.items():
        if len(df):
            runs.write_parquet(out / f"{name}.parquet", df)
    figs = sf.study_figures(tables, out, spec["name"])

    cost = cost_of.of_study(study_dir, manifest)  # every cell's run, the engine starts
    runs.write_text(out / "report.md", study_md(manifest, tables, figs, out) + "\n"
                    + budget_md.section(cost, "##"))
    return {"report_md": str(out / "report.md"), "figures": [str(f) for f in figs],
            "tables": {k: str(out / f"{k}.parquet") for k, v in tables.items() if len(v)},
            "numbers": {"transfer": tables["transfer"].to_dicts(),
                        "budget": tables["budget"].to_dicts()}}

