"""The sentences and tables of report.md, written from the numbers report/page.py collected: each
research question gets an answer stated with its interval and a verdict that follows from the
interval ("no evidence" when it includes zero), never a claim the data does not carry.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import polars as pl

from prefixopt.evaluate.prefixes import curse_summary


def pts(x: float | None, signed: bool = True, missing: str = "n/a") -> str:
    """A proportion as percentage points with one decimal ('+3.2' when signed); None or NaN
    -> `missing`. The one formatter for report.md and the eval table."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return missing
    return f"{100 * x:+.1f}" if signed else f"{100 * x:.1f}"


def verdict(c) -> str:
    if c.excludes_zero:
        a, b = c.name.split(" vs ")
        return (f"evidence of a difference (the interval excludes 0): {a} "
                f"{'better' if c.diff > 0 else 'worse'} than {b}")
    return "no evidence of a difference (the interval includes 0)"


def resampled(c) -> str:
    """What a contrast's interval covers: a group of random people is a draw from the pool, so
    the bootstrap resamples them as well as the questions (the interval then covers which names
    were drawn); one random person cannot show that."""
    if c.resampled == "questions+people":
        return " (bootstrap over questions and the random people: covers which names were drawn)"
    if "random" in c.name:
        return (" (bootstrap over questions only: one random person, so a comparison with that "
                "name, not with random people)")
    return ""


def contrast_text(c, name: str | None = None) -> str:
    return (f"{name or c.name} {pts(c.diff)} points, 95% CI [{pts(c.low)}, {pts(c.high)}]"
            f"{resampled(c)}: {verdict(c)}.")


def contrast_line(d: dict[str, Any], e: dict[str, Any], name: str) -> str | None:
    c = e["contrasts"].get(name)
    if c is None:
        return None
    return f"- {d['id']} ({d['benchmark']}, {e['name']}, {e['n']} questions): {contrast_text(c)}"


def curse_text(cs: dict[str, Any]) -> str:
    """The winner's-curse sentence from prefixes.curse_summary."""
    raw, none = pts(cs["train_minus_heldout"]), pts(cs["none_train_minus_heldout"])
    if cs["method"] == "difference_of_differences":
        return (f"Winner's curse of the learned people (selection alone): mean "
                f"{pts(cs['curse_gap'])} points. That is their training minus held-out accuracy "
                f"({raw} points) less the same gap for no prefix on the same training questions "
                f"({none} points: the training and held-out questions' difference in "
                "difficulty, which no prefix shows without having been selected). A positive "
                "gap is the expected regression to the mean, not a bug.")
    return (f"Training minus held-out accuracy of the learned people: mean {raw} points. This is "
            "not the winner's curse alone: it includes the difference in difficulty between the "
            f"training and the held-out questions ({cs['note']}).")


def _md_table(df: pl.DataFrame) -> str:
    def fmt(v):
        if isinstance(v, float):
            return "n/a" if math.isnan(v) else f"{v:.4g}"
        return "" if v is None else str(v).replace("|", "/")

    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "\n".join("| " + " | ".join(fmt(v) for v in row) + " |"
                            for row in df.iter_rows()) + "\n"


def answers_md(data: list[dict[str, Any]], comparison: dict[str, Any] | None) -> str:
    how_to_read = (
        "How to read this: only the held-out evaluation (questions 1 and 4: new questions, "
        "paired tests against no prefix, Holm-corrected) is evidence that a prefix helps. "
        "How concentrated the learned policy is (a field holding most of the probability "
        "mass, a top person far above uniform) is NOT evidence: REINFORCE also "
        "concentrates on whoever got lucky on the training questions, and training "
        "rewards of the winners are biased upward (the winner's curse below).")
    evals = [(d, e) for d in data for e in d["evals"]]
    lines = ["# prefixopt report", "", "## Answers to the research questions", "",
             how_to_read, ""]
    lines += _q1_learned_vs_random(evals, data)
    lines += ["", "**2. Which kinds of people work best?**", *_q2_kinds(data)]
    lines += ["", "**3. Does the learned distribution cluster by field?**", *_q3_clusters(data)]
    lines += ["", "**4. Learned vs hand-written prompts?**"]
    got = [g for g in (contrast_line(d, e, "learned vs handwritten") for d, e in evals) if g]
    lines += got or [f"- {NO_EVAL if not evals else 'not answered: no hand-written prompts.'}"]
    lines += ["", "**5. Do benchmarks differ?**", *_q5_benchmarks(data, evals, comparison)]
    return "\n".join(lines) + "\n"


NO_EVAL = "not answered: no held-out evaluation yet (run `prefixopt eval RUN`)."


def _q1_learned_vs_random(evals: list[tuple[dict, dict]],
                          data: list[dict[str, Any]] = ()) -> list[str]:
    lines = ["**1. Do learned prefixes beat random ones?**"]
    for d in data:  # a finding is what survives every prompt format it was evaluated in
        for t in d.get("formats", []):
            fmts = [c.removeprefix("accuracy_") for c in t.columns if c.startswith("accuracy_")]
            sig = t.filter(pl.any_horizontal(pl.col(f"significant_{f}") for f in fmts))
            kept = sig.filter(pl.col("survives"))["prefix"].to_list()
            lost = sig.filter(~pl.col("survives"))["prefix"].to_list()
            lines.append(
                f"- {d['id']}, formats {' and '.join(fmts)} (rank correlation of the prefixes "
                f"{t['rank_correlation'][0]:.2f}): findings, significant in every format: "
                f"{', '.join(kept) or 'none'}; significant in one format only, so NOT "
                f"findings: {', '.join(lost) or 'none'}.")
    got = [g for g in (contrast_line(d, e, "learned vs random") for d, e in evals) if g]
    lines += got or [f"- {NO_EVAL}"]
    for d, e in evals:
        s = e["summary"].filter(pl.col("prefix_kind") == "learned")
        if len(s):
            sig = s.filter(pl.col("significant"))
            better = int((sig["diff_vs_none"] > 0).sum())
            lines.append(f"- {d['id']} ({e['name']}): {len(sig)} of {len(s)} learned people "
                         f"differ from no prefix after Holm correction ({better} better, "
                         f"{len(sig) - better} worse).")
            lines += [x for x in [contrast_line(d, e, "learned vs none")] if x]
    lines += [f"- {d['id']} ({e['name']}), oracle ceiling vs the paraphrase null: "
              f"{e['oracle_verdict']}" for d, e in evals if e.get("oracle_verdict")]
    return lines


def _q2_kinds(data: list[dict[str, Any]]) -> list[str]:
    lines = []
    for d in data:
        if "field_reward" in d:
            fr = d["field_reward"].filter(pl.col("samples") >= 5).head(3)
            best = ", ".join(f"{f} {r:.3f} ({n} samples)" for f, r, n in
                             zip(fr["field"], fr["mean_reward"], fr["samples"], strict=True))
            lines.append(f"- {d['id']}: highest mean training reward by field (fields sampled "
                         f"at least 5 times): {best}. Training rewards are measured on the "
                         "training questions and favour whoever got lucky; the held-out "
                         "comparison (1) is the test.")
        if "field_mass" in d:
            fm = d["field_mass"].filter(pl.col("ratio") > 1).sort("ratio", descending=True).head(3)
            if len(fm):
                lines.append(
                    f"- {d['id']}: the fields the policy over-weights (more mass than pool "
                    "share): " + ", ".join(f"{f} {m:.1%} of the mass ({r:.1f}x its pool share)"
                                           for f, m, r in zip(fm["field"], fm["mass"],
                                                              fm["ratio"], strict=True)) + ".")
            else:
                lines.append(f"- {d['id']}: no field holds more mass than its pool share.")
    if not any("field_mass" in d or "field_reward" in d for d in data):
        lines.append("- not answered: no training tables in these runs.")
    return lines


def _q3_clusters(data: list[dict[str, Any]]) -> list[str]:
    lines = []
    for d in data:
        if "field_mass" not in d:
            continue
        fm = d["field_mass"].sort("ratio", descending=True)
        top = fm.row(0, named=True)  # the most over-represented field
        over = fm.filter(pl.col("ratio") >= 2)
        param = d["meta"].get("config", {}).get("parameterization")
        ans = ("yes" if top["ratio"] >= 2 else "weakly" if top["ratio"] >= 1.25 else
               "no, the mass follows the pool")
        lines.append(
            f"- {d['id']}: {ans}: {top['field']} holds {top['mass']:.1%} of the probability mass "
            f"against {top['pool_share']:.1%} of the pool ({top['ratio']:.1f}x); "
            f"{len(over)} field(s) are over-represented at least 2x."
            + (" The factored policy shares one term per field, so clustering is what it "
               "expresses." if param == "factored" else "")
            + " Clustering describes the policy, not the model: whether the favoured people "
            "are really better is answered only by the held-out comparison (question 1).")
    if not any("field_mass" in d for d in data):
        lines.append("- not answered: no checkpoint (final probabilities) in these runs.")
    return lines


def _q5_benchmarks(data: list[dict[str, Any]], evals: list[tuple[dict, dict]],
                   comparison: dict[str, Any] | None) -> list[str]:
    lines = []
    benches = sorted({d["benchmark"] for d in data})
    if len(benches) < 2:
        lines.append(f"- not answerable from one benchmark ({', '.join(benches)}): give "
                     "`prefixopt report` runs on several benchmarks.")
        comparison = comparison or {}
        for j, o in zip(comparison.get("jsd", []), comparison.get("top_overlap", []), strict=True):
            lines.append(f"- {j['a']} vs {j['b']} (same benchmark, so not a benchmark "
                         f"difference): Jensen-Shannon divergence {j['jsd_bits']:.3f} bits (0 "
                         f"same, 1 disjoint); {o['shared_top20']} of the top 20 people shared. "
                         "Between replicate runs (same settings, other seeds) this is the "
                         "run-to-run variation a benchmark difference has to exceed.")
        return lines
    for d in data:
        if "field_mass" in d:
            lines.append(f"- {d['benchmark']} ({d['id']}): top field "
                         f"{d['field_mass']['field'][0]} ({d['field_mass']['mass'][0]:.1%}).")
    for j, o in zip(comparison["jsd"], comparison["top_overlap"], strict=True):
        lines.append(f"- {j['a']} vs {j['b']}: Jensen-Shannon divergence {j['jsd_bits']:.3f} "
                     f"bits (0 same, 1 disjoint); {o['shared_top20']} of the top 20 people "
                     "shared.")
    for d, e in evals:
        line = contrast_line(d, e, "learned vs none")
        if line:
            lines.append(line)
    return lines


def run_md(d: dict[str, Any], figs: list[Path], out: Path) -> str:
    cfg = d["meta"].get("config", {})
    bandit = cfg.get("learner") if cfg.get("learner", "reinforce") != "reinforce" else None
    lines = [f"## Run {d['id']}", "",
             f"benchmark {d['benchmark']}, model {d['model']}, kind {d['meta'].get('kind', '?')}"
             + (f", K={cfg.get('samples_per_iteration')}, B={cfg.get('batch_size')}, "
                + (f"lr={cfg.get('learning_rate')}, {cfg.get('optimizer')}, "
                   f"{cfg.get('parameterization')}" if bandit is None else
                   f"learner {bandit} (ranking: {d['meta'].get('ranking', '?')})")
                if "batch_size" in cfg else ""), ""]
    c = d["curve"]
    if c is not None and len(c):
        tail = c.tail(min(5, len(c)))
        lines.append(f"Training: {len(c)} iterations; mean reward {c['mean_reward'][0]:.3f} at "
                     f"the first, {tail['mean_reward'].mean():.3f} over the last {len(tail)}; "
                     f"entropy {c['entropy'][0]:.3f} -> {c['entropy'][-1]:.3f} nats.")
    if "top" in d and bandit is not None:  # its ranking; prob is P(best), not a policy
        lines.append(f"Top-ranked person: {d['top']['name'][0]} ({d['top']['field'][0]}), "
                     f"P(best) {d['top']['prob'][0]:.4f}.")
    elif "top" in d:
        lines.append(f"Top person: {d['top']['name'][0]} ({d['top']['field'][0]}), probability "
                     f"{d['top']['prob'][0]:.4f} (uniform would be {1 / d['num_people']:.6f}); "
                     f"policy entropy {d['entropy']:.3f} nats (uniform "
                     f"{math.log(d['num_people']):.3f}).")
    if "context_mass" in d:
        best = (d["context_mass"].sort("mass", descending=True)
                .group_by("context", maintain_order=True).first().sort("context"))
        lines.append("Contextual policy, each context's heaviest field: " + "; ".join(
            f"{c}: {f} {m:.0%} ({r:.1f}x its pool share)" for c, f, m, r in
            best.select("context", "field", "mass", "ratio").iter_rows()) + ".")
    lines.append("")
    if d.get("pooled"):
        lines += ["### All benchmarks pooled", "", ("Each evaluation's questions together (per "
                  "question the mean of each group; paired bootstrap over all questions):"), ""]
        lines += [f"- {contrast_text(c)}" for c in d["pooled"]] + [""]
    for e in d["evals"]:
        s = e["summary"]
        lines += [f"### Held-out evaluation {e['name']} ({e['n']} questions)", "",
                  _md_table(s.select(
                      "prefix", "prefix_kind",
                      *(pl.col(x) * 100 for x in ("accuracy", "ci_low", "ci_high",
                                                  "diff_vs_none", "diff_low", "diff_high")),
                      "p_value", "p_holm", "significant")),
                  ("(accuracy and differences in points; CI 95%: Wilson for accuracy, paired "
                  "bootstrap for differences; p: exact McNemar vs no prefix; p_holm: Holm "
                  "across all prefixes, the paraphrases (the oracle null) a family apart.)"), ""]
        lines += [f"- {contrast_text(con, name)}" for name, con in e["contrasts"].items()]
        lines += e.get("oracle_lines", [])  # the oracle null and the router (report/oracle_md)
        cs = curse_summary(s)
        if cs is not None:
            cols = ("train_reward", "train_accuracy", "accuracy", "train_minus_heldout",
                    "none_train_minus_heldout", "curse_gap")
            lines += ["", curse_text(cs), "", _md_table(
                s.filter(pl.col("prefix_kind") == "learned")
                .select("prefix", "times_sampled", *(pl.col(x) * 100 for x in cols))),
                ("(points; train_reward: the person's mean reward over the training batches it "
                 "was sampled on; train_accuracy: its accuracy on its training answers of this "
                 "benchmark; accuracy: held out; none_train_minus_heldout: no prefix's accuracy "
                 "on the same training questions minus its held-out accuracy; curse_gap: "
                 "train_minus_heldout minus none_train_minus_heldout.)")]
        lines.append("")
    for f in figs:
        lines += [f"![{f.stem}]({f.relative_to(out)})", ""]
    return "\n".join(lines)


def comparison_md(data: list[dict[str, Any]], comparison: dict[str, Any], out: Path) -> str:
    lines = ["## Across runs", ""]
    if "field_mass" in comparison:
        lines += ["Probability mass by field:", "", _md_table(comparison["field_mass"]), "",
                  "![field_mass_runs](field_mass_runs.png)", ""]
    for j, o in zip(comparison["jsd"], comparison["top_overlap"], strict=True):
        lines.append(f"- {j['a']} vs {j['b']}: JSD {j['jsd_bits']:.4f} bits, "
                     f"{o['shared_top20']} shared top-20 people")
    return "\n".join(lines) + "\n"
