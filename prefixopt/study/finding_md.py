"""A finding's text and files (study/finding.py collects the numbers): spec.toml written back
from the manifest's spec, the figures (report/figures.py's eval and training figures), the ONE
paragraph stating the finding, each sentence chosen by a rule on the numbers (RULES), and
report.md around it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import polars as pl

from prefixopt import analysis, runs, stats
from prefixopt.report.figures import fig_eval, fig_training
from prefixopt.report.oracle_md import oracle_null_text, router_text
from prefixopt.report.prose import pts

ZHENG = ('Zheng et al. 2024 ("Is \'A Helpful Assistant\' the Best Role for Large Language '
         'Models? A Systematic Evaluation of Social Roles in System Prompts", Findings of EMNLP '
         '2024)')
RULES = (
    "- learned people: a learner's people **helped** (or **hurt**) when at least one of them "
    "differs from no prefix after Holm over the finding's family (p_holm < 0.05), positive (or "
    "negative); else **no evidence** that they change accuracy;",
    "- a prompt with no person: the neutral paraphrases **helped** (or **hurt**) when their "
    "group's paired 95% interval vs no prefix excludes 0 on that side, else **no evidence**; the "
    "primary learner's people **add to a plain prompt** (or **do worse than** one) only when "
    "their interval vs the paraphrases excludes 0 above (or below); not said when every "
    "paraphrase answered as no prefix;",
    "- oracle: **persona** when the ceiling of no prefix + k learned people lies above the 95% "
    "interval of no prefix + k neutral paraphrases (`oracle_null.verdict`), else "
    "**perturbation**; **cannot be told** when every paraphrase answered as no prefix;",
    "- router: **beats** (or **is worse than**) no prefix when McNemar p < 0.05 and its paired "
    "interval excludes 0 on that side; else **no evidence**;",
    "- power: the MDE at 80% power, alpha 0.05 (and Holm's first-step alpha) for the eval's "
    "questions at the discordance measured on it (prefixopt/plan.py's McNemar formula);",
    "- Zheng et al.: **agrees** (no reliable gain) unless a learned person helped; their "
    "large oracle gains are **matched** only with a persona verdict (not said without a usable "
    "null); their 'automatic "
    "selection about random' **agrees** unless the learned-vs-random interval excludes 0.",
)


# --- spec.toml ---------------------------------------------------------------------------------
def spec_mapping(spec: dict[str, Any]) -> dict[str, Any]:
    """The manifest's spec (study.spec.spec_dict) as the TOML spec's tables."""
    grid = {"models": spec["models"], "benchmarks": spec["benchmarks"],
            "budgets": spec["budgets"], "seeds": spec["seeds"],
            **{k: v for k, v in spec["options"]}}
    transfer = {"enabled": spec["transfer"], **({"benchmarks": spec["transfer_benchmarks"]}
                                                if spec["transfer_benchmarks"] else {})}
    out = {"name": spec["name"], "engine": spec["engine"], "output_dir": spec["output_dir"],
           "grid": grid, "train": spec["train"], "eval": spec["eval"], "transfer": transfer}
    return {**out, **({"synthetic": spec["synthetic"]} if spec["synthetic"] else {})}


def _toml(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a TOML basic string
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    raise TypeError(f"spec value {v!r} has no TOML form here")


def _key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def spec_toml(spec: dict[str, Any]) -> str:
    m = spec_mapping(spec)
    lines = [f"# The spec study {spec['name']} ran, as its manifest.json recorded it "
             "(written by `prefixopt finding`).", ""]
    lines += [f"{_key(k)} = {_toml(v)}" for k, v in m.items() if not isinstance(v, dict)]
    for k, table in m.items():
        if isinstance(table, dict):
            lines += ["", f"[{k}]", *(f"{_key(a)} = {_toml(b)}" for a, b in table.items()
                                      if b is not None)]
    return "\n".join(lines) + "\n"


# --- figures -----------------------------------------------------------------------------------
def figures(summary: dict[str, Any], tables: dict[str, Any], study_dir: Path,
            out: Path) -> list[Path]:
    """The eval (every prefix, the finding's Holm stars) and each run's training curves."""
    ev = summary["eval"]
    frame = pl.DataFrame({
        "prefix": [f"{p['learner']}: {p['label']}" if p["learner"] else p["label"]
                   for p in ev["prefixes"]],
        "prefix_kind": [p["kind"] for p in ev["prefixes"]],
        "significant": [p["significant"] for p in ev["prefixes"]],
        **{c: [float(p[k][i]) if i is not None else float(p[k]) for p in ev["prefixes"]]
           for c, k, i in (("accuracy", "accuracy", None), ("ci_low", "accuracy_ci95", 0),
                           ("ci_high", "accuracy_ci95", 1),
                           ("diff_vs_none", "diff_vs_no_prefix", None),
                           ("diff_low", "ci95", 0), ("diff_high", "ci95", 1))}})
    figs = [fig_eval(frame, out / "eval.png", f"{summary['name']}: {summary['model']} on "
                     f"{summary['benchmark']}, {ev['num_questions']} held-out questions")]
    for i, r in enumerate(summary["runs"]):
        curve = analysis.training_curve(runs.scan(study_dir / "runs" / r["cell"],
                                                  "iterations")).collect()
        figs.append(fig_training(curve, out / f"training_{i}.png", f"{r['label']} "
                                 f"({r['question_evaluations']:,} question evaluations)"))
    return figs


# --- the paragraph -----------------------------------------------------------------------------
def _ci(ci: list[float]) -> str:
    return f"[{pts(ci[0])}, {pts(ci[1])}]"


def learned_sentence(ev: dict[str, Any], label: str, primary: bool) -> tuple[str, int]:
    """(the sentence, +1 helped / -1 hurt / 0 no evidence) for one learner's people."""
    rows = [p for p in ev["prefixes"] if p["kind"] == "learned" and p["learner"] == label]
    group = ev["per_learner"][label]["learned_vs_none"]
    who = f"{label}{' (the primary learner, fixed in advance)' if primary else ''}"
    sig = sorted((p for p in rows if p["significant"]), key=lambda p: -abs(p["diff_vs_no_prefix"]))
    if sig:
        p = sig[0]
        sign = 1 if p["diff_vs_no_prefix"] > 0 else -1
        return (f"Of the {len(rows)} people {who} learned, {len(sig)} differ from no prefix "
                f"after Holm; the largest: accuracy {'helped' if sign > 0 else 'hurt'} by "
                f"{p['label']}, {pts(p['diff_vs_no_prefix'])} points (95% CI "
                f"{_ci(p['ci95'])}, Holm p = {p['p_holm']:.2g}); the {len(rows)} together: "
                f"{pts(group['diff'])} points {_ci([group['low'], group['high']])}.", sign)
    best = min((p["p_holm"] for p in rows), default=None)
    return (f"There is no evidence that the {len(rows)} people {who} learned change accuracy: "
            f"together {pts(group['diff'])} points vs no prefix (95% CI "
            f"{_ci([group['low'], group['high']])}), and none differs after Holm over the "
            f"{ev['holm']['size']} comparisons (smallest Holm p = "
            f"{'n/a' if best is None else f'{best:.2g}'}).", 0)


def plain_prompt_sentence(ev: dict[str, Any], label: str) -> str:
    """What a system prompt with no person did (the paraphrases together vs no prefix), and
    whether the primary learner's people did more than it: a persona effect must be more than
    'any system prompt' (empty when the paraphrases measured nothing)."""
    e, null = ev["per_learner"][label], ev["oracle_null"]
    para, vs = e.get("paraphrase_vs_none"), e.get("learned_vs_paraphrase")
    if para is None or vs is None or null is None or null.get("identical_to_no_prefix"):
        return ""
    sig = sum(p["significant"] for p in ev["prefixes"] if p["kind"] == "paraphrase")
    n = sum(p["kind"] == "paraphrase" for p in ev["prefixes"])
    side = ("helped" if para["low"] > 0 else "hurt" if para["high"] < 0 else None)
    text = (f"{pts(para['diff'])} points together (95% CI {_ci([para['low'], para['high']])}; "
            f"{sig} of {n} differ from no prefix after Holm over their own family)")
    said = (f"A system prompt with no person {side} too: the {n} neutral paraphrases, {text}"
            if side else f"There is no evidence that a system prompt with no person changes "
            f"accuracy: the {n} neutral paraphrases, {text}")
    than = ("add to a plain prompt" if vs["low"] > 0 else "do worse than a plain prompt"
            if vs["high"] < 0 else "add nothing measurable to a plain prompt")
    return (said + f"; {label}'s people against them: {pts(vs['diff'])} points "
            f"{_ci([vs['low'], vs['high']])}, so the people {than}.")


def oracle_sentence(null: dict[str, Any] | None) -> str:
    if null is None:
        return "The paraphrase null was not scored, so the oracle gain cannot be told apart " \
               "from perturbation."
    gain = (f"The oracle ceiling of no prefix + {null['k']} learned people "
            f"({pts(null['ceiling_learned'], False)}%) ")
    if null.get("identical_to_no_prefix"):
        return (gain + f"cannot be told from perturbation here: every one of the {null['k']} "
                "neutral paraphrases answered exactly as no prefix (an engine that ignores a "
                "person-free prompt), so the null measures nothing.")
    if null["verdict"] == "persona":
        return (gain + f"lies above that of {null['k']} neutral paraphrases "
                f"({pts(null['accuracy'], False)}%, 95% CI "
                f"[{pts(null['ceiling_ci95'][0], False)}, {pts(null['ceiling_ci95'][1], False)}]):"
                " more than perturbation, though no rule can pick per question "
                "knowing the answers.")
    return (gain + f"does not exceed that of {null['k']} neutral paraphrases "
            f"({pts(null['accuracy'], False)}%, 95% CI [{pts(null['ceiling_ci95'][0], False)}, "
            f"{pts(null['ceiling_ci95'][1], False)}]): the per-question oracle gain is "
            "perturbation, not persona.")


def router_sentence(r: dict[str, Any] | None, label: str) -> tuple[str, int]:
    if r is None:
        return "No confidence router could be formed (no confidences).", 0
    who = f"The confidence router over no prefix + {label}'s {r['k']} people"
    text = (f"{pts(r['diff_vs_no_prefix'])} points, 95% CI {_ci(r['ci95'])}, McNemar p = "
            f"{r['p_value']:.2g}")
    if r["p_value"] < stats.ALPHA and r["ci95"][0] > 0:
        return f"{who} beats no prefix ({text}).", 1
    if r["p_value"] < stats.ALPHA and r["ci95"][1] < 0:
        return f"{who} is worse than no prefix ({text}).", -1
    return f"There is no evidence that {who[0].lower()}{who[1:]} beats no prefix ({text}).", 0


def power_sentence(pw: dict[str, Any]) -> str:
    if pw["mde"] is None:
        return (f"With {pw['num_questions']:,} held-out questions (discordance "
                f"{pw['discordance']:.2f}) this eval was too small to detect any effect at 80% "
                "power.")
    holm = ("" if pw["mde_holm"] is None else f", {pts(pw['mde_holm'], False)} at the Holm "
            f"alpha {pw['holm_alpha']:.2g} of its {pw['comparisons']} comparisons")
    return (f"This eval ({pw['num_questions']:,} questions, discordance {pw['discordance']:.2f}) "
            f"could detect effects of {pts(pw['mde'], False)} points or more (80% power, alpha "
            f"0.05{holm}).")


def zheng_sentence(helped: int, null: dict[str, Any] | None,
                   vs_random: dict[str, Any] | None) -> str:
    first = ("Unlike " + ZHENG + ", who found no reliable gain from adding personas, a learned "
             "persona helped here" if helped > 0 else "This agrees with " + ZHENG + ", who "
             "found no reliable gain from adding personas")
    if null is None or null.get("identical_to_no_prefix"):
        oracle = ""  # no usable null: nothing to say about their oracle gains
    else:
        oracle = "; their large per-question oracle gains " + (
            "are matched by more than perturbation here" if null["verdict"] == "persona" else
            "are here no larger than neutral paraphrases give")
    if vs_random is None:
        sel = ""
    elif vs_random["excludes_zero"] and vs_random["diff"] > 0:
        sel = (f"; and the learned people beat random ones ({pts(vs_random['diff'])} "
               f"{_ci([vs_random['low'], vs_random['high']])}), unlike their finding that "
               "automatic selection is about as good as random")
    else:
        sel = (f"; and, as they found for automatic persona selection, the learned people did "
               f"not beat random ones ({pts(vs_random['diff'])} "
               f"{_ci([vs_random['low'], vs_random['high']])})")
    return first + oracle + sel + "."


def paragraph(summary: dict[str, Any]) -> str:
    """The finding in one paragraph, every sentence chosen by RULES from the numbers."""
    ev = summary["eval"]
    labels = list(ev["per_learner"])
    dtypes = sorted({d for r in summary["runs"] for d in (r.get("train_dtype"),
                                                            r.get("eval_dtype")) if d})
    numerics = f", {' and '.join(dtypes)}" if summary["engine"] == "vllm" and dtypes else ""
    head = (f"On {summary['benchmark']} with {summary['model']} ({summary['engine']} engine"
            f"{numerics}), "
            f"no prefix answered {pts(ev['no_prefix_accuracy'], False)}% of "
            f"{ev['num_questions']:,} held-out questions.")
    said = [learned_sentence(ev, lab, lab == summary["primary_learner"]) for lab in labels]
    helped = max((s for _, s in said), default=0)
    first = ev["per_learner"][summary["primary_learner"]]
    parts = [head, *(s for s, _ in said), plain_prompt_sentence(ev, summary["primary_learner"]),
             oracle_sentence(ev["oracle_null"]),
             router_sentence(ev["router"], summary["primary_learner"])[0],
             power_sentence(summary["power"]),
             zheng_sentence(helped, ev["oracle_null"], first["learned_vs_random"])]
    return " ".join(p for p in parts if p)  # an empty sentence: its rule says nothing


# --- report.md ---------------------------------------------------------------------------------
def _n(x: Any) -> str:
    return "-" if x is None else f"{x:,.1f}" if isinstance(x, float) else f"{x:,}"


def _conf(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def report_md(s: dict[str, Any], figs: list[Path]) -> str:
    ev, pw, b = s["eval"], s["power"], s["budget"]
    lines = [f"# Finding: {s['name']}", "", s["paragraph"], "",
             f"Reproduce: `{s['command']}`", "", "## How the sentences follow from the numbers",
             "", *RULES, "", "## Runs", "",
             "| run | learner | seed | question evaluations | top person | top_confidence |",
             "|---|---|---:|---:|---|---:|"]
    lines += [f"| {r['label']} | {r['learner']} | {r['seed']} | {r['question_evaluations']:,} | "
              f"{r['top_person']} | {_conf(r['top_confidence'])} ({r['top_confidence_kind']}) |"
              for r in s["runs"]]
    lines += ["", f"## Held-out eval ({ev['num_questions']:,} questions, the same for every run)",
              "", f"Holm over {ev['holm']['size']} comparisons (learned people of every run, "
              "random, hand-written, named vs no prefix; the paraphrases their own family). "
              f"Primary learner: {s['primary_learner']} ({s['primary_note']}).", "",
              "| prefix | kind | learner | accuracy % | diff vs none | 95% CI | p | p_holm |",
              "|---|---|---|---:|---:|---|---:|---:|"]
    for p in ev["prefixes"]:
        pv = "-" if p["p_value"] is None else f"{p['p_value']:.3g}"
        ph = "-" if p["p_holm"] is None else f"{p['p_holm']:.3g}" + (" *" if p["significant"]
                                                                      else "")
        lines.append(f"| {p['label']} | {p['kind']} | {p['learner'] or ''} | "
                     f"{pts(p['accuracy'], False)} | {pts(p['diff_vs_no_prefix'])} | "
                     f"{_ci(p['ci95'])} | {pv} | {ph} |")
    lines.append("")
    for lab, e in ev["per_learner"].items():
        lines += [f"**{lab}**: oracle ceiling (any prefix) {pts(e['oracle_ceiling'], False)}%, "
                  f"no prefix + {e['oracle_k']} learned {pts(e['oracle_ceiling_learned'], False)}"
                  f"%, + {e['oracle_k']} random {pts(e['oracle_ceiling_random'], False)}%.", ""]
        lines += [f"- {oracle_null_text(e['oracle_null'])}"] if e["oracle_null"] else []
        lines += [f"- {router_text(e['router'])}"] if e["router"] else []
        if e["ensemble"]:
            en = e["ensemble"]
            lines.append(f"- Ensemble ({en['persona']} + no prefix, the more confident): "
                         f"{pts(en['diff_vs_none'])} points "
                         f"{_ci([en['diff_low'], en['diff_high']])}, p = {en['p_value']:.3g}.")
        lines.append("")
    lines += ["## Power", "", power_sentence(pw) + f" ({pw['discordance_source']}.)", "",
              "## Budget" + (" (derived from the tables)" if b.get("derived") else ""), "",
              "| part | estimated s | spent s | question evaluations | prompt tokens | "
              "computed tokens | cached tokens |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, p in (("train", b["train"]), ("eval", b["eval"]), ("total", b)):
        lines.append(f"| {name} | " + " | ".join(_n(p[k]) for k in (
            "estimated_s", "spent_s", "question_evaluations", "prompt_tokens",
            "computed_tokens", "cached_tokens")) + " |")
    lines += ["", "## Figures", "", *(f"![{f.stem}]({f.name})" for f in figs), ""]
    return "\n".join(lines)
