"""The Task registry: every registered benchmark has all a Task promises (hub id, splits,
loader, scorings, chat and harness rendering, continuations, generate settings, extraction,
expert prompt, context hook), context() on real rows, and no branch on a benchmark's name
anywhere in prefixopt/ outside prefixopt/benchmarks/."""

from __future__ import annotations

import json
import re
from itertools import islice
from pathlib import Path

import pytest

import prefixopt.benchmarks as bm
from prefixopt import config
from prefixopt.benchmarks.registry import FAMILIES
from prefixopt.benchmarks.task import Task
from prefixopt.errors import PrefixoptError

PACKAGE = Path(bm.__file__).resolve().parent.parent  # prefixopt/
NAMES = ("mmlu", "gsm8k", "arc_easy", "arc_challenge", "hellaswag")


def test_one_registry() -> None:
    assert bm.BENCHMARKS == tuple(bm.TASKS) == NAMES
    assert not hasattr(config, "BENCHMARKS")  # one list: the registry's
    assert [t.name for family in FAMILIES for t in family.TASKS] == list(NAMES)
    assert all(bm.get_task(name) is bm.TASKS[name] for name in NAMES)
    with pytest.raises(PrefixoptError, match="valid: mmlu, gsm8k") as info:
        bm.get_task("nope")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_task_has_everything(name: str, bench_dir: Path) -> None:
    task = bm.get_task(name)
    assert isinstance(task, Task) and task.name == name
    assert "/" in task.hub_id and task.hub_name.startswith(task.hub_id)
    assert {task.train_split, task.eval_split, task.fewshot_split} <= set(task.splits)
    assert task.default_split("train") == task.train_split
    assert task.default_split("eval") == task.eval_split
    assert task.default_scoring in task.scorings and set(task.scorings) <= set(config.SCORINGS)
    assert task.expert_prompt.startswith("You are ")
    assert type(task).parse_rows is not Task.parse_rows  # its own loader
    questions = bm.load_split(name, task.eval_split + "[:3]", data_dir=bench_dir)
    q, shots = questions[0], questions[1:]
    assert all(x.benchmark == name for x in questions)
    max_tokens, stop = task.generate_params(q)
    assert max_tokens > 0 and stop and all(isinstance(s, str) for s in stop)
    for scoring in task.scorings:
        for render in (task.render_user, task.render_harness):
            text = render(q, scoring, shots)
            assert text.startswith(task.harness_description(q) if render == task.render_harness
                                   else "")
            assert all(task.answer_text(s, scoring) in text for s in shots)
    if "cloze" in task.scorings:
        assert task.continuations(q, "chat") == q.choices
        assert task.continuations(q, "harness") == tuple(" " + c for c in q.choices)
    # extraction reads back the answer a solved example shows
    gold_text = task.answer_text(q, "generate")
    assert task.extract(q, f"Answer: {gold_text}")[0] == task.reference(q)
    context = task.context(q)
    assert context is None or isinstance(context, str)


def test_scorings_refused_with_the_fix() -> None:
    with pytest.raises(PrefixoptError, match="^gsm8k has no answer choices; use --scoring "
                                             "generate$"):
        bm.get_task("gsm8k").check_scoring("letter")
    for name in ("mmlu", "arc_easy", "hellaswag"):
        for scoring in config.SCORINGS:
            bm.get_task(name).check_scoring(scoring)


def _raw(bench_dir: Path, name: str, split: str, n: int) -> list[dict]:
    with open(bench_dir / name / f"{split}.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in islice(fh, n)]


@pytest.mark.parametrize(
    ("name", "split", "field"),
    [("mmlu", "test", "subject"), ("hellaswag", "validation", "activity_label"),
     ("arc_easy", "test", None), ("arc_challenge", "test", None), ("gsm8k", "test", None)],
)
def test_context_on_real_rows(bench_dir: Path, name: str, split: str, field: str | None) -> None:
    n = 400  # mmlu: the first subjects change within these rows
    task = bm.get_task(name)
    questions = bm.load_split(name, f"{split}[:{n}]", data_dir=bench_dir)
    got = [task.context(q) for q in questions]
    expected = [r[field] if field else None for r in _raw(bench_dir, name, split, n)]
    assert got == expected
    if field:
        assert len(set(got)) > 1 and all(got)
    assert bm.get_task("mmlu").context(questions[0]) == questions[0].subject


# A comparison that branches on a benchmark's name: `benchmark == ...`, `q.benchmark != ...`,
# `benchmark in ("a", "b")`, `"gsm8k" == x`, or a dict keyed by benchmark names.
_QUOTED = r"[\"'](?:" + "|".join(NAMES) + r")[\"']"
BRANCH = re.compile(
    r"benchmark\w*\s*(?:==|!=)"
    r"|benchmark\w*\s+(?:not\s+)?in\s*[(\[{]"
    rf"|{_QUOTED}\s*(?:==|!=|in\b)|(?:==|!=)\s*{_QUOTED}"
    rf"|{_QUOTED}\s*:\s"
)


def test_branch_pattern_catches_the_old_forms() -> None:
    for line in ('if q.benchmark == "gsm8k":', "if benchmark != 'mmlu':",
                 'if q.benchmark in ("mmlu", "gsm8k"):', 'x = {"hellaswag": 1}',
                 'if "arc_easy" == name:'):
        assert BRANCH.search(line), line
    for line in ("if cfg.task.benchmark in BENCHMARKS:", 'benchmark: str = "arc_easy"',
                 "get_task(q.benchmark).render_user(q)"):
        assert not BRANCH.search(line), line


def test_no_benchmark_branch_outside_the_benchmarks_package() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "benchmarks" in path.relative_to(PACKAGE).parts:
            continue
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if BRANCH.search(code):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{lineno}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
