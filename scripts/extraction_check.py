"""Measure answer extraction on real generations: today's rules against older ones.

Generates, the product's way (prompts.build_grid, chat format, 0-shot, greedy, then
scoring.score: ONE engine call per benchmark), the answers of the embedded model to N evenly
spaced eval questions of each benchmark, once with no system prompt and once per persona, stores
the raw generations as JSONL, then reads every generation with the old rules (extract.py at
--old-rev, loaded from git) and the current ones (task.extract) and reports per benchmark:
how many extractions changed, the parsed rate, accuracy against gold, the rule counts, and
every changed case for review by eye (docs/extraction.md).

Run once with the engine (the raw generations go to OUT/generations.jsonl):
  VLLM_CPU_NUM_OF_RESERVED_CPU=0 VLLM_CPU_KVCACHE_SPACE=2 \
    nice .venv/bin/python scripts/extraction_check.py -n 100 --out runs/extraction_check
Re-read stored generations with the rules of the working tree (no engine):
  .venv/bin/python scripts/extraction_check.py --generations runs/extraction_check/generations.jsonl
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import types
from collections import Counter
from pathlib import Path

from prefixopt.ask import prompts

from prefixopt.ask import scoring
from prefixopt.benchmarks import get_task, load_split
from prefixopt.config import DEFAULT_TEMPLATE, EngineConfig
from prefixopt.records import NO_PERSON, Question

ROOT = Path(__file__).resolve().parents[1]
OLD_REV = "4df13be"  # the commit before the issue-8 extraction fix
BENCHMARKS = ("gsm8k", "arc_easy", "mmlu")
PERSONS = ("Albert Einstein",)


def old_rules(rev: str) -> types.ModuleType:
    """prefixopt/benchmarks/extract.py as it was at `rev`, as a module of its own."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:prefixopt/benchmarks/extract.py"],
                         check=True, capture_output=True, text=True).stdout
    module = types.ModuleType(f"extract_at_{rev}")
    exec(compile(src, f"extract.py@{rev}", "exec"), module.__dict__)  # noqa: S102 - our own file
    return module


def generate(benchmarks: list[str], n: int, persons: list[str]) -> list[dict]:
    """Raw generations: one row per (benchmark, prefix, question)."""
    from prefixopt.engines.vllm_engine import build_engine

    t0 = time.perf_counter()
    engine = build_engine(EngineConfig(max_model_len=2048))
    print(f"engine start {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    prefixes = [(NO_PERSON, None)] + [(i, prompts.persona(DEFAULT_TEMPLATE, name))
                                      for i, name in enumerate(persons)]
    rows = []
    for bench in benchmarks:
        split = get_task(bench).eval_split
        pool = load_split(bench, split)
        questions = pool[:: max(len(pool) // n, 1)][:n]  # evenly spaced: MMLU's subjects mix
        requests = prompts.build_grid(engine, prefixes, questions, scoring="generate")
        t0 = time.perf_counter()
        responses, _ = scoring.score(engine, requests, "generate")  # ONE engine call
        print(f"{bench}: {len(requests)} generations in {time.perf_counter() - t0:.0f} s",
              file=sys.stderr)
        systems = dict(prefixes)
        rows += [{"benchmark": bench, "split": split, "question_id": r.question.question_id,
                  "person_id": r.person_id, "system": systems[r.person_id], "text": resp.text,
                  "output_tokens": resp.output_tokens}
                 for r, resp in zip(requests, responses, strict=True)]
    return rows


def questions_of(rows: list[dict]) -> dict[str, Question]:
    """question_id -> Question for every (benchmark, split) the rows name."""
    out: dict[str, Question] = {}
    for bench, split in {(r["benchmark"], r["split"]) for r in rows}:
        out.update((q.question_id, q) for q in load_split(bench, split))
    return out


def judge(rows: list[dict], old: types.ModuleType) -> list[dict]:
    """Each row with its old and new (pred, rule) and the reference answer."""
    questions = questions_of(rows)
    out = []
    for row in rows:
        q = questions[row["question_id"]]
        task = get_task(q.benchmark)
        before = (old.extract_number(row["text"]) if not task.has_choices
                  else old.extract_letter(row["text"], q.labels))
        out.append({**row, "gold": task.reference(q), "old": list(before),
                    "new": list(task.extract(q, row["text"]))})
    return out


def table(judged: list[dict]) -> str:
    """Markdown: per benchmark, old -> new parsed rate, accuracy and rule counts."""
    head = ("| benchmark | generations | changed | parsed old -> new | accuracy old -> new "
            "| strict/flexible/none old -> new |")
    lines = [head, "| --- | --- | --- | --- | --- | --- |"]
    for bench in dict.fromkeys(r["benchmark"] for r in judged):
        rs = [r for r in judged if r["benchmark"] == bench]
        n = len(rs)
        cell = {}
        for side in ("old", "new"):
            parsed = sum(r[side][0] is not None for r in rs)
            right = sum(r[side][0] == r["gold"] for r in rs)
            rules = Counter(r[side][1] for r in rs)
            cell[side] = (f"{parsed / n:.1%}", f"{right / n:.1%} ({right})",
                          "/".join(str(rules[k]) for k in ("strict", "flexible", "none")))
        changed = sum(r["old"] != r["new"] for r in rs)
        changed_pred = sum(r["old"][0] != r["new"][0] for r in rs)
        lines.append(f"| {bench} | {n} | {changed_pred} pred, {changed} pred or rule | "
                     + " | ".join(f"{cell['old'][i]} -> {cell['new'][i]}" for i in range(3))
                     + " |")
    return "\n".join(lines)


def changed_cases(judged: list[dict]) -> str:
    """Every row whose prediction changed, with its text, for review by eye."""
    out = []
    for r in judged:
        if r["old"][0] != r["new"][0]:
            out.append(f"- {r['question_id']} (person {r['person_id']}) gold {r['gold']}: "
                       f"old {tuple(r['old'])} -> new {tuple(r['new'])}\n"
                       f"  text: {json.dumps(r['text'][-600:])}")
    return "\n".join(out) or "(none)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100, help="questions per benchmark")
    ap.add_argument("--benchmarks", default=",".join(BENCHMARKS))
    ap.add_argument("--persons", default=",".join(PERSONS),
                    help="personas besides no system prompt (comma list; '' for none)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "extraction_check")
    ap.add_argument("--generations", type=Path, default=None,
                    help="read these stored generations instead of starting the engine")
    ap.add_argument("--old-rev", default=OLD_REV, help="git revision of the old rules")
    args = ap.parse_args()
    if args.generations is not None:
        rows = [json.loads(line) for line in args.generations.read_text().splitlines() if line]
        out_dir = args.generations.parent
    else:
        rows = generate(args.benchmarks.split(","), args.n,
                        [p for p in args.persons.split(",") if p])
        out_dir = args.out
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    judged = judge(rows, old_rules(args.old_rev))
    report = (f"old rules: extract.py at {args.old_rev}; new: the working tree\n\n"
              f"{table(judged)}\n\nchanged predictions:\n{changed_cases(judged)}\n")
    (out_dir / "report.md").write_text(report)
    (out_dir / "judged.jsonl").write_text("".join(json.dumps(r) + "\n" for r in judged))
    print(report)


if __name__ == "__main__":
    main()
