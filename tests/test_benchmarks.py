"""Benchmark loaders: row counts of the shared data, stable unique ids, HF split syntax (checked
against `datasets`' own ReadInstruction), ARC label mapping, HellaSwag cleaning, GSM8K gold,
and the one-line errors for unknown benchmarks, splits and missing data."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import prefixopt.benchmarks as bm
from prefixopt.benchmarks.hellaswag import preprocess
from prefixopt.benchmarks.splits import parse_split, resolve_slice
from prefixopt.errors import PrefixoptError

COUNTS = [
    ("mmlu", "test", 14_042),
    ("mmlu", "validation", 1_531),
    ("mmlu", "dev", 285),
    ("gsm8k", "train", 7_473),
    ("gsm8k", "test", 1_319),
    ("arc_easy", "train", 2_251),
    ("arc_easy", "test", 2_376),
    ("arc_challenge", "train", 1_119),
    ("arc_challenge", "test", 1_172),
    ("hellaswag", "validation", 10_042),
]


@pytest.mark.parametrize(("benchmark", "split", "rows"), COUNTS)
def test_counts_and_unique_ids(bench_dir: Path, benchmark: str, split: str, rows: int) -> None:
    questions = bm.load_split(benchmark, split, data_dir=bench_dir)
    assert len(questions) == rows
    ids = [q.question_id for q in questions]
    assert len(set(ids)) == rows
    assert all(i.startswith(f"{benchmark}/") for i in ids)
    for q in questions:
        assert q.benchmark == benchmark
        if benchmark == "gsm8k":
            assert q.choices == () and q.solution and "####" in q.solution
            float(q.gold)  # a plain number
        else:
            assert len(q.choices) == len(q.labels) >= 3
            assert q.labels == tuple("ABCDE"[: len(q.labels)])
            assert q.gold in q.labels


def test_ids_are_stable_across_reads(bench_dir: Path) -> None:
    first = [q.question_id for q in bm.load_split("mmlu", "validation", data_dir=bench_dir)]
    bm._parse_local.cache_clear()
    second = [q.question_id for q in bm.load_split("mmlu", "validation", data_dir=bench_dir)]
    assert first == second
    assert first[:2] == ["mmlu/validation/abstract_algebra/0", "mmlu/validation/abstract_algebra/1"]
    arc = bm.load_split("arc_challenge", "test[:1]", data_dir=bench_dir)
    assert arc[0].question_id == "arc_challenge/Mercury_7175875"  # the AI2 id


def test_ids_unique_across_splits(bench_dir: Path) -> None:
    for benchmark, splits in (
        ("mmlu", ("dev", "validation", "test")),
        ("arc_easy", ("train", "validation", "test")),
    ):
        ids = [
            q.question_id for s in splits for q in bm.load_split(benchmark, s, data_dir=bench_dir)
        ]
        assert len(ids) == len(set(ids))


SPECS = ["test", "test[:100]", "test[100:]", "test[:50%]", "test[50%:]", "test[10%:20%]",
         "test[-10:]", "test[:-5%]", "test[33%:67%]",
         "test[1%:2%](pct1_dropremainder)"]  # fmt: skip


@pytest.mark.parametrize("n", [7, 101, 299, 1319])
def test_split_slices_match_datasets(n: int) -> None:
    from datasets import ReadInstruction

    for spec in SPECS:
        if "pct1" in spec and n < 100:
            continue
        ours = [resolve_slice(p, n) for p in parse_split(spec)]
        theirs = ReadInstruction.from_spec(spec).to_absolute({"test": n})
        assert ours == [(a.from_, a.to) for a in theirs], spec


def test_split_syntax_on_real_data(bench_dir: Path) -> None:
    full = bm.load_split("hellaswag", "validation", data_dir=bench_dir)
    first = bm.load_split("hellaswag", "validation[:50%]", data_dir=bench_dir)
    second = bm.load_split("hellaswag", "validation[50%:]", data_dir=bench_dir)
    assert first + second == full and len(first) == 5_021
    assert len(bm.load_split("arc_easy", "test[:100]", data_dir=bench_dir)) == 100
    assert (
        bm.load_split("arc_easy", "train[10%:20%]", data_dir=bench_dir)
        == bm.load_split("arc_easy", "train", data_dir=bench_dir)[225:450]
    )
    both = bm.load_split("arc_easy", "train[:3]+validation[:2]", data_dir=bench_dir)
    assert len(both) == 5


def test_default_split_reads_the_table(bench_dir: Path) -> None:
    assert len(bm.load_split("arc_easy", data_dir=bench_dir)) == 2_251  # train
    assert len(bm.load_split("arc_easy", purpose="eval", data_dir=bench_dir)) == 2_376
    assert [bm.default_split(b, "eval") for b in bm.BENCHMARKS] == [
        "test", "test", "test", "test", "validation"
    ]  # fmt: skip
    assert [bm.get_task(b).default_scoring for b in bm.BENCHMARKS] == [
        "letter", "generate", "cloze", "cloze", "cloze"
    ]  # fmt: skip
    assert [bm.get_task(b).fewshot_split for b in bm.BENCHMARKS] == [
        "dev", "train", "train", "train", "validation"
    ]  # fmt: skip


def test_arc_numeric_labels_become_letters(bench_dir: Path) -> None:
    raw = [json.loads(line) for line in (bench_dir / "arc_easy/test.jsonl").open(encoding="utf-8")]
    numeric = [i for i, r in enumerate(raw) if r["question"]["choices"][0]["label"] == "1"]
    assert numeric, "the shared ARC files have 1-4 labelled questions"
    questions = bm.load_split("arc_easy", "test", data_dir=bench_dir)
    for i in numeric:
        q, r = questions[i], raw[i]
        assert q.labels == tuple("ABCDE"[: len(q.labels)])
        assert q.gold == "ABCDE"[int(r["answerKey"]) - 1]
        assert q.choices[q.gold_index] == r["question"]["choices"][int(r["answerKey"]) - 1]["text"]


def test_hellaswag_cleaning_matches_the_harness(bench_dir: Path) -> None:
    assert preprocess(" A [title] B [step] C  D ") == "A. B C D"
    q = bm.load_split("hellaswag", "validation[:2]", data_dir=bench_dir)
    assert q[0].text == "Roof shingle removal: A man is sitting on a roof. He"
    assert q[0].choices[3] == "starts pulling up roofing on a roof."
    assert q[0].gold == "D" and q[0].subject == "Roof shingle removal"
    assert q[1].text.startswith("Clean and jerk: ")
    tag = re.compile(r"\[\w+\]")  # [title], [step], [header], ... are all cleaned away
    for x in bm.load_split("hellaswag", "validation", data_dir=bench_dir):
        assert not tag.search(x.text) and not any(tag.search(c) for c in x.choices)


def test_gsm8k_gold_from_the_final_line(bench_dir: Path) -> None:
    from prefixopt.benchmarks.gsm8k import extract_answer, gold_number

    assert gold_number("work\n#### 1,234") == "1234"
    q = bm.load_split("gsm8k", "test[:1]", data_dir=bench_dir)[0]
    assert q.question_id == "gsm8k/test/0" and q.gold == "18"
    assert callable(extract_answer)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_local_dir_with_hub_layout_and_cache_refresh(tmp_path: Path) -> None:
    row = {
        "id": "q1",
        "question": "2+2?",
        "choices": {"text": ["3", "4"], "label": ["1", "2"]},
        "answerKey": "2",
    }
    path = tmp_path / "arc_easy" / "test.jsonl"
    _write_jsonl(path, [row])
    (q,) = bm.load_split("arc_easy", "test", data_dir=tmp_path)
    assert (q.question_id, q.labels, q.gold, q.choices) == (
        "arc_easy/q1",
        ("A", "B"),
        "B",
        ("3", "4"),
    )
    _write_jsonl(path, [row, {**row, "id": "q2"}])
    os.utime(path, ns=(1, 1))  # a different mtime: the cache must not serve the old parse
    assert len(bm.load_split("arc_easy", "test", data_dir=tmp_path)) == 2


def test_errors_are_one_line(tmp_path: Path, bench_dir: Path) -> None:
    cases = [
        (("nope", None), "valid: mmlu, gsm8k"),
        (("arc_easy", "tset"), "valid: train, validation, test"),
        (("arc_easy", "test[:5"), "split syntax"),
        (("mmlu", "test[5%:10]"), "mix"),
    ]
    for args, needle in cases:
        with pytest.raises(PrefixoptError, match=needle) as info:
            bm.load_split(*args, data_dir=bench_dir)
        assert "\n" not in str(info.value)
    with pytest.raises(PrefixoptError, match="does not exist"):
        bm.load_split("mmlu", "test", data_dir=tmp_path / "missing")
    _write_jsonl(tmp_path / "gsm8k" / "test.jsonl", [{"question": "q", "answer": "no number line"}])
    with pytest.raises(PrefixoptError, match="row 1"):
        bm.load_split("gsm8k", "test", data_dir=tmp_path)


def test_no_local_file_and_no_hub_names_data_dir(tmp_path: Path) -> None:
    code = (
        "from prefixopt.benchmarks import load_split\n"
        f"load_split('arc_easy', 'test', data_dir={str(tmp_path)!r})\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "PrefixoptError" in proc.stderr and "--data-dir" in proc.stderr


def test_status_counts_local_files(bench_dir: Path) -> None:
    rows = {(r["benchmark"], r["split"]): r for r in bm.split_status(bench_dir)}
    for benchmark, split, n in COUNTS:
        assert rows[(benchmark, split)]["rows"] == n
    assert rows[("hellaswag", "train")]["source"].startswith("hub:")


def test_import_is_cheap() -> None:
    code = (
        "import sys, prefixopt.benchmarks, prefixopt.people\n"
        "print(sorted(m for m in ('torch', 'vllm', 'transformers', 'datasets')\n"
        "             if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_text_hash_names_a_question_whatever_its_id() -> None:
    from dataclasses import replace

    from prefixopt.records import Question

    q = Question("arc_easy/a", "arc_easy", "Which gas?", ("Oxygen", "carbon  dioxide"),
                 ("A", "B"), "B")
    twin = replace(q, question_id="arc_easy/b", text=" which\tgas? ",
                   choices=("oxygen", "Carbon dioxide"))
    assert bm.text_hash(q) == bm.text_hash(twin)
    assert bm.text_hash(q) != bm.text_hash(replace(q, choices=("oxygen", "helium")))
    kept, repeats = bm.dedupe([q, twin, replace(q, question_id="arc_easy/c", text="Other?")])
    assert [x.question_id for x in kept] == ["arc_easy/a", "arc_easy/c"] and repeats == 1
    fresh, same_id, same_text = bm.split_seen([q, twin, kept[1]], [q])
    assert (fresh, same_id, same_text) == ([kept[1]], [q], [twin])
    # HellaSwag: the context is the question (its activity label and endings aside)
    hs = Question("hellaswag/validation/1", "hellaswag", "Family Life: Set a routine.",
                  ("a", "b"), ("A", "B"), "A", subject="Family Life")
    other = replace(hs, question_id="hellaswag/validation/2", text="Food: Set a  routine.",
                    choices=("c", "d"), subject="Food")
    assert bm.text_hash(hs) == bm.text_hash(other)


def test_duplicates_in_the_shared_data(bench_dir: Path) -> None:
    """The same question under two ids, counted by normalised text (not only by id)."""

    def shared(benchmark: str, seen: str, split: str) -> int:
        _, _, same_text = bm.split_seen(bm.load_split(benchmark, split, data_dir=bench_dir),
                                        bm.load_split(benchmark, seen, data_dir=bench_dir))
        return len(same_text)

    assert shared("arc_easy", "train", "test") == 2
    assert shared("arc_challenge", "train", "test") == 0
    # 27 byte-equal, 1 more once whitespace is normalised (professional_psychology)
    assert shared("mmlu", "validation", "test") == 28
    assert bm.dedupe(bm.load_split("mmlu", "test", data_dir=bench_dir))[1] == 105
    assert shared("hellaswag", "validation[:50%]", "validation[50%:]") == 12
    assert shared("mmlu", "dev", "test") == 5  # clinical_knowledge <-> college_medicine
