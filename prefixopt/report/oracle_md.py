"""report.md's sentences on the oracle ceiling's perturbation-only null and the confidence
router (evaluate/oracle.py, recomputed by report/page.py from the saved eval rows; page puts
these lines in the eval's "oracle_lines" for prose.run_md): the ceiling of k people beside k
neutral paraphrases, "persona" or "perturbation", and the router's paired difference from no
prefix with its interval and McNemar p.
"""

from __future__ import annotations

from typing import Any

from prefixopt import stats
from prefixopt.report.prose import pts

PERTURBATION = ("{k} people reach no higher ceiling than {k} paraphrases: the oracle gain is "
                "perturbation, not persona.")
PERSONA = ("{k} learned people reach a ceiling above the interval of {k} paraphrases: more than "
           "perturbation alone gives, though a ceiling needs the answers to choose and is not "
           "reachable as such (the router is what a fixed rule reaches).")


def _ci(ci: list[float]) -> str:
    return f"[{pts(ci[0])}, {pts(ci[1])}]"


def verdict_sentence(null: dict[str, Any]) -> str:
    """The one honest sentence: persona or perturbation."""
    return (PERSONA if null["verdict"] == "persona" else PERTURBATION).format(k=null["k"])


def oracle_null_text(null: dict[str, Any]) -> str:
    k = null["k"]
    random = ("" if null["ceiling_random"] is None else
              f", + {k} random people {pts(null['ceiling_random'], False)}% (verdict "
              f"{null['verdict_random']})")
    return (f"Oracle ceiling (a question counts if any of the prefixes gets it right): no prefix "
            f"+ {k} learned people {pts(null['ceiling_learned'], False)}%{random}; no prefix + "
            f"{k} neutral paraphrases of a plain system prompt (the null: no person at all) "
            f"{pts(null['accuracy'], False)}%, 95% CI [{pts(null['ceiling_ci95'][0], False)}, "
            f"{pts(null['ceiling_ci95'][1], False)}] over questions, "
            f"{pts(null['diff_vs_no_prefix'])} points over no prefix "
            f"({pts(null['no_prefix_accuracy'], False)}%), CI {_ci(null['ci95'])}; learned "
            f"minus null ceiling {pts(null['learned_minus_null'])} points, paired CI "
            f"{_ci(null['learned_minus_null_ci95'])}. Verdict: {null['verdict']}. "
            f"{verdict_sentence(null)}"
            + (" Caution: every paraphrase answered exactly as no prefix (this engine ignores a "
               "person-free system prompt, as the synthetic one does), so the null measures no "
               "perturbation here." if null.get("identical_to_no_prefix") else ""))


def _beats(r: dict[str, Any]) -> str:
    if r["p_value"] < stats.ALPHA and r["ci95"][0] > 0:
        return "evidence that it beats no prefix"
    if r["p_value"] < stats.ALPHA and r["ci95"][1] < 0:
        return "evidence that it is worse than no prefix"
    return "no evidence of a difference from no prefix"


def router_text(r: dict[str, Any]) -> str:
    null = r.get("null")
    same = ("" if not null else
            f" The same rule over no prefix + {null['k']} paraphrases: "
            f"{pts(null['diff_vs_no_prefix'])} points, CI {_ci(null['ci95'])}, p = "
            f"{null['p_value']:.3g} (what routing among harmless rewordings gives).")
    return (f"Confidence router over no prefix + the {r['k']} learned people ({r['rule']}; "
            "fixed before the held-out questions, nothing fitted on them): accuracy "
            f"{pts(r['accuracy'], False)}%, {pts(r['diff_vs_no_prefix'])} points vs no "
            f"prefix, paired 95% CI {_ci(r['ci95'])}, exact McNemar p = {r['p_value']:.3g}: "
            f"{_beats(r)}; no prefix answered {r['share_no_prefix']:.0%} of the questions."
            + same)


def eval_lines(e: dict[str, Any]) -> list[str]:
    """The bullets for one eval's section (none without learned people / confidences)."""
    out = []
    if e.get("oracle_null"):
        out.append(f"- {oracle_null_text(e['oracle_null'])}")
    if e.get("router"):
        out.append(f"- {router_text(e['router'])}")
    return out
