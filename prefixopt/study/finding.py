"""`prefixopt finding STUDY_DIR`: a finished study exported as a committed finding,
docs/findings/<name>/: spec.toml (what the study ran), summary.json (the runs, ONE eval over every
learner's people with Holm recomputed over the finding's own family, oracle / router / ensemble,
budget, power) and report.md with small figures (study/finding_md.py); no Parquet. The files are
written to a temporary directory beside the target, then renamed into place.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from prefixopt import plan, runs, stats
from prefixopt.config import split_benchmarks
from prefixopt.errors import PrefixoptError
from prefixopt.evaluate import compare, oracle, robustness
from prefixopt.evaluate.export import contrast_json
from prefixopt.learn.confidence import run_top_confidence
from prefixopt.study import finding_budget, finding_md
from prefixopt.study.manifest import read_manifest
from prefixopt.study.spec import spec_from_mapping

SHARED = ("none", "random", "handwritten", "named", "paraphrase")  # the same in every cell
POWER, ALPHA = 0.8, stats.ALPHA


def clean(x: Any) -> Any:
    """JSON-able: numpy scalars to Python, NaN to None, tuples to lists (recursively)."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def done_cells(study_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(manifest, its cells) of a finished one-model, one-benchmark study; else one error."""
    if not Path(study_dir).is_dir():
        raise PrefixoptError(f"{study_dir} is not a directory; pass a study directory "
                             "(studies/<name>/)")
    manifest = read_manifest(study_dir)
    cells = manifest["cells"]
    left = [c["id"] for c in cells if c["status"] != "done"]
    if left or not cells:
        raise PrefixoptError(f"study {study_dir} is not finished ({len(cells) - len(left)} of "
                             f"{len(cells)} cells done); continue it with `prefixopt study "
                             "SPEC --resume`")
    what = {(c["model"], c["benchmark"]) for c in cells}
    if len(what) > 1 or len(split_benchmarks(cells[0]["benchmark"])) > 1:
        raise PrefixoptError(f"study {study_dir}: a finding is one model on one benchmark; this "
                             f"study has {sorted(what)}")
    return manifest, cells


def _labels(cells: list[dict[str, Any]], learners: list[str]) -> list[str]:
    """Each run's label: its learner, plus seed / budget / other options where they vary."""
    varying = [k for k in ("seed", "budget") if len({c[k] for c in cells}) > 1]
    opts = [k for k in cells[0]["options"] if k != "learner"
            and len({json.dumps(c["options"].get(k)) for c in cells}) > 1]
    out = [" ".join([who, *(f"{k} {c[k]}" for k in varying),
                     *(f"{k}={c['options'][k]}" for k in opts)])
           for c, who in zip(cells, learners, strict=True)]
    return out if len(set(out)) == len(out) else [c["id"] for c in cells]


def run_entry(run_dir: Path, cell: dict[str, Any], label: str) -> dict[str, Any]:
    """One learner run: learner, seed, evaluations, its top person and top_confidence."""
    meta = runs.read_config(run_dir)
    ckpt = runs.load_checkpoint(run_dir)
    people = runs.run_people(run_dir)
    top = int(runs.final_ranking(run_dir)[0])
    top_id = int(people.person_id[top])
    learner = str(meta.get("learner", meta["config"].get("learner", "reinforce")))
    if "top_confidence" in ckpt:  # halving / ttts keep theirs
        conf = float(ckpt["top_confidence"])
    else:  # REINFORCE's, from the answers table (what its training summary printed)
        conf = run_top_confidence(run_dir, top_id, int(meta["config"]["seed"]))
    return {"label": label, "cell": cell["id"], "learner": learner, "seed": cell["seed"],
            "budget": cell["budget"], "options": cell["options"],
            "iterations": int(ckpt["iteration"]) + 1,
            "question_evaluations": int(ckpt["evaluations"]),
            "top_person": str(people.frame["name"][top]), "top_person_id": top_id,
            "top_confidence": conf, "top_confidence_kind": meta.get("top_confidence_kind"),
            # the numerics: --dtype auto resolves per CPU, and a cell's eval may run on another
            # machine than its training (None: a synthetic engine, or an eval before this key)
            "train_dtype": meta.get("versions", {}).get("dtype"),
            "eval_dtype": meta.get("evals", {}).get(cell["evals"][cell["benchmark"]], {}
                                                   ).get("dtype")}


def _row(s: dict[str, Any], label: str, learner: str | None) -> dict[str, Any]:
    return {"kind": s["prefix_kind"], "label": label, "learner": learner,
            "person_id": s["person_id"], "accuracy": s["accuracy"],
            "accuracy_ci95": [s["ci_low"], s["ci_high"]], "diff_vs_no_prefix": s["diff_vs_none"],
            "ci95": [s["diff_low"], s["diff_high"]], "cell_p_value": s["p_value"],
            "cell_p_holm": s["p_holm"]}


def eval_tables(study_dir: Path, cells: list[dict[str, Any]]) -> list[tuple[pl.DataFrame, ...]]:
    """(rows, summary) of every cell's own eval; one error if they asked other questions."""
    out, qids = [], None
    for c in cells:
        run_dir, name = study_dir / c["run_dir"], c["evals"][c["benchmark"]]
        if not runs.eval_path(run_dir, name, "_summary").is_file():
            raise PrefixoptError(f"{run_dir}/eval/{name}_summary.parquet is missing; re-run its "
                                 "eval with `prefixopt study SPEC --resume`")
        rows = runs.scan(run_dir, f"eval/{name}").collect()
        summary = runs.scan(run_dir, f"eval/{name}_summary").sort("prefix_index").collect()
        q = sorted(rows["question_id"].unique().to_list())
        if qids is not None and q != qids:
            raise PrefixoptError(f"{run_dir}/eval/{name} asked other questions than the first "
                                 "cell; a finding needs every cell on the same held-out ones")
        qids = q
        out.append((rows, summary))
    return out


def finding_eval(tables: list[tuple[pl.DataFrame, ...]], labels: list[str]) -> dict[str, Any]:
    """The one eval: no prefix, every run's learned people (by label), the shared rows once
    (the primary's), each prefix's numbers from its cell's summary; p recomputed from the rows
    (stats.mcnemar_exact; the larger of it and p_cluster where questions cluster, as
    compare.summarise) and Holm over the finding's family (learned of all runs + random +
    hand-written + named vs no prefix; the paraphrases a family of their own)."""
    entries, vectors = [], []  # vectors: (Q,) correctness per entry, question-id order
    identical = True
    for i, ((rows, summary), label) in enumerate(zip(tables, labels, strict=True)):
        meta, correct = stats.correct_matrix(rows.lazy())  # (P,), (P, Q)
        for j, s in enumerate(summary.iter_rows(named=True)):
            kind = s["prefix_kind"]
            if kind == "learned" or (i == 0 and kind in SHARED):
                entries.append(_row(s, s["prefix"], label if kind == "learned" else None))
                vectors.append((correct[j].astype(bool), s.get("p_cluster")))
            elif kind in SHARED:  # the same text on the same questions: the same answers?
                first = next(k for k, e in enumerate(entries)
                             if e["kind"] == kind and e["label"] == s["prefix"])
                identical &= bool((vectors[first][0] == correct[j].astype(bool)).all())
    none = next(v for v, e in zip(vectors, entries, strict=True) if e["kind"] == "none")[0]
    p = np.array([math.nan if e["kind"] == "none" else stats.mcnemar_exact(v, none)
                  for e, (v, _) in zip(entries, vectors, strict=True)])
    pc = np.array([math.nan if c is None else c for _, c in vectors], float)
    p_used = np.where(np.isnan(pc), p, np.fmax(p, pc))
    kinds = np.array([e["kind"] for e in entries])
    family, para = ~np.isin(kinds, ["none", "paraphrase"]), kinds == "paraphrase"
    p_holm = np.full(len(entries), math.nan)
    p_holm[family], p_holm[para] = stats.holm(p_used[family]), stats.holm(p_used[para])
    for e, a, b in zip(entries, p, p_holm, strict=True):
        e.update(p_value=a, p_holm=b, significant=bool(np.nan_to_num(b, nan=1.0) < ALPHA))
    rows0 = tables[0][0]
    return {"num_questions": int(rows0["question_id"].n_unique()),
            "no_prefix_accuracy": float(none.mean()), "prefixes": entries,
            "holm": {"alpha": ALPHA, "size": int(family.sum()),
                     "family": [e["label"] for e, f in zip(entries, family, strict=True) if f],
                     "paraphrases": "their own Holm family (a control, not a claim)"},
            "shared_rows_identical": identical,
            "_learned": {lab: np.vstack([v for (v, _), e in zip(vectors, entries, strict=True)
                                         if e["learner"] == lab]) for lab in labels},
            "_none": none}


def per_run(rows: pl.DataFrame, summary: pl.DataFrame) -> dict[str, Any]:
    """The numbers the cell's eval printed, recomputed from its rows with its own seeds (as
    report does): ceilings, oracle null, router, ensemble, learned vs none / random."""
    seed, n_boot = int(summary["bootstrap_seed"][0]), int(summary["bootstrap_samples"][0])
    meta, correct = stats.correct_matrix(rows.lazy())
    ceilings = robustness.oracle_ceilings(meta["prefix_kind"].to_numpy(), correct)
    _, contrasts = compare.summarise(rows, stats.stats_rng(seed), n_boot)
    null, routed = oracle.from_rows(rows, seed, n_boot)
    named = {c.name: contrast_json(c) for c in contrasts}
    return {"oracle_ceiling": ceilings["oracle_ceiling"], "oracle_k": ceilings["oracle_k"],
            "oracle_ceiling_learned": ceilings["oracle_ceiling_learned"],
            "oracle_ceiling_random": ceilings["oracle_ceiling_random"],
            "oracle_null": null, "router": routed,
            "ensemble": robustness.ensemble(rows, stats.stats_rng(seed + 1), n_boot),
            "learned_vs_none": named.get("learned vs none"),
            "learned_vs_random": named.get("learned vs random"),
            "paraphrase_vs_none": named.get("paraphrase vs none"),
            "learned_vs_paraphrase": named.get("learned vs paraphrase")}


def power(ev: dict[str, Any]) -> dict[str, Any]:
    """MDE at 80% power, alpha 0.05 and Holm's first-step alpha for the family, for the
    eval's questions, with the discordance measured on the eval (learned vs no prefix)."""
    learned = np.vstack(list(ev["_learned"].values()))
    d = float(np.mean([plan.discordance_of(r, ev["_none"]) for r in learned]))
    n, m = ev["num_questions"], max(1, ev["holm"]["size"])
    h = plan.holm_alpha(ALPHA, m)

    def mde(alpha: float) -> float | None:  # no discordance: nothing could be detected
        return plan.detectable_mde(n, d, POWER, alpha) if d > 0 else None

    return {"power": POWER, "alpha": ALPHA, "num_questions": n, "discordance": d,
            "discordance_source": f"mean over the {len(learned)} learned people of the share "
                                  "of questions where the person and no prefix disagree",
            "comparisons": m, "holm_alpha": h, "mde": mde(ALPHA), "mde_holm": mde(h)}


def collect(study_dir: str | Path, name: str, out: str | Path) -> dict[str, Any]:
    """summary.json's content (plus `_tables` for the figures), from the study's files."""
    study_dir = Path(study_dir)
    manifest, cells = done_cells(study_dir)
    spec = manifest["spec"]
    runs_out = [run_entry(study_dir / c["run_dir"], c, "") for c in cells]
    labels = _labels(cells, [r["learner"] for r in runs_out])
    for r, lab in zip(runs_out, labels, strict=True):
        r["label"] = lab
    tables = eval_tables(study_dir, cells)
    if any(not (summary["prefix_kind"] == "learned").any() for _, summary in tables):
        raise PrefixoptError(f"study {study_dir}: a cell's eval has no learned people ([eval] "
                             "top_k = 0); a finding compares learned people with no prefix")
    ev = finding_eval(tables, labels)
    each = {lab: per_run(*t) for lab, t in zip(labels, tables, strict=True)}
    first = each[labels[0]]
    ev.update(primary_learner=labels[0], per_learner=each,
              **{k: first[k] for k in ("oracle_ceiling", "oracle_ceiling_learned", "oracle_k",
                                       "oracle_ceiling_random", "oracle_null", "router",
                                       "ensemble")})
    pw = power(ev)
    learned, none = ev.pop("_learned"), ev.pop("_none")
    spec_path = Path(out) / name / "spec.toml"
    study_out = Path(spec["output_dir"]) / spec["name"]
    return {"name": name, "study": spec["name"], "engine": spec["engine"],
            "model": cells[0]["model"], "benchmark": cells[0]["benchmark"],
            "scoring": spec["train"].get("scoring"), "primary_learner": labels[0],
            "primary_note": "the first run of the spec's grid, named before the eval was read",
            "command": f"prefixopt study {spec_path} && prefixopt finding {study_out} --name "
                       f"{name} --out {out} --overwrite",
            "synthetic": spec.get("synthetic") or None, "runs": runs_out, "eval": ev,
            "budget": finding_budget.of_study(study_dir, manifest, tables),
            "power": pw, "_tables": {"learned": learned, "none": none}}


def export(study_dir: str | Path, name: str | None = None, out: str | Path = "docs/findings",
           overwrite: bool = False) -> dict[str, Any]:
    """Write docs/findings/<name>/ (spec.toml, summary.json, report.md, figures) atomically;
    refuse an existing one unless overwrite. Every check and number comes before any write."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise PrefixoptError(f"{study_dir} is not a directory; pass a study directory "
                             "(studies/<name>/)")
    name = name or read_manifest(study_dir)["name"]
    if name != runs.split_slug(name) or name in ("", ".", ".."):
        raise PrefixoptError(f"--name {name!r}: use letters, digits, '_', '-', '.' only")
    target = Path(out) / name
    if target.exists() and not overwrite:
        raise PrefixoptError(f"{target} exists; pass --overwrite to replace it, or --name NEW")
    summary = collect(study_dir, name, out)
    spec = read_manifest(study_dir)["spec"]
    spec_from_mapping(finding_md.spec_mapping(spec))  # the spec.toml written will load
    Path(out).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out))
    mask = os.umask(0)
    os.umask(mask)
    tmp.chmod(0o777 & ~mask)  # mkdtemp's 0700 would stay on the finding
    try:
        tables = summary.pop("_tables")
        (tmp / "spec.toml").write_text(finding_md.spec_toml(spec), encoding="utf-8")
        figs = finding_md.figures(summary, tables, study_dir, tmp)
        summary = clean(summary)
        summary["paragraph"] = finding_md.paragraph(summary)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n",
                                          encoding="utf-8")
        (tmp / "report.md").write_text(finding_md.report_md(summary, figs), encoding="utf-8")
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=out))
            os.replace(target, old / name)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    files = sorted(p for p in target.iterdir() if p.is_file())
    return {"finding_dir": str(target), "files": [str(p) for p in files],
            "bytes": sum(p.stat().st_size for p in files), "paragraph": summary["paragraph"],
            "command": summary["command"]}
