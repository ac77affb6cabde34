"""Benchmarks: the Task registry (get_task, TASKS, BENCHMARKS) and the loader. A split is read
from `<data_dir>/<benchmark>/<split>.jsonl` (upstream Hugging Face fields) when present, else
from the hub with `datasets` (imported lazily); HF split syntax ("validation[:50%]") slices
the whole base split, so local and hub data slice identically. Parsed splits are cached.
`text_hash` names a question by its normalised text (Task.text_key), so the same question under
two ids (ARC test rows that are train rows, MMLU test rows repeated) is found by `dedupe` and
`split_seen`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from prefixopt.benchmarks.registry import BENCHMARKS, TASKS, get_task
from prefixopt.benchmarks.splits import (
    count_rows,
    default_data_dir,
    local_path,
    parse_split,
    read_rows,
    resolve_slice,
)
from prefixopt.benchmarks.task import Task
from prefixopt.errors import PrefixoptError
from prefixopt.records import Question

__all__ = [
    "BENCHMARKS",
    "TASKS",
    "Task",
    "dedupe",
    "default_split",
    "get_task",
    "load_split",
    "resolve_data_dir",
    "split_seen",
    "split_source",
    "split_status",
    "splits_of",
    "text_hash",
]


def default_split(benchmark: str, purpose: str = "train") -> str:
    """The benchmark's default split for purpose 'train' (policy updates) or 'eval'."""
    return get_task(benchmark).default_split(purpose)


def text_hash(q: Question) -> str:
    """sha256 (hex) of the question's normalised text: equal for the same question under two
    ids, so held-out checks compare texts, not only ids."""
    return hashlib.sha256(get_task(q.benchmark).text_key(q).encode("utf-8")).hexdigest()


def dedupe(questions: Sequence[Question]) -> tuple[list[Question], int]:
    """The first question of each normalised text, in order, and how many repeats were left
    out (a repeated question would count twice in paired statistics)."""
    seen: set[str] = set()
    kept = []
    for q in questions:
        h = text_hash(q)
        if h not in seen:
            seen.add(h)
            kept.append(q)
    return kept, len(questions) - len(kept)


def split_seen(questions: Sequence[Question], seen: Iterable[Question]
               ) -> tuple[list[Question], list[Question], list[Question]]:
    """(questions not in `seen`, those with the id of a seen question, those with another id
    but the text of a seen question), each in order."""
    seen = list(seen)
    ids, texts = {q.question_id for q in seen}, {text_hash(q) for q in seen}
    fresh: list[Question] = []
    same_id: list[Question] = []
    same_text: list[Question] = []
    for q in questions:
        if q.question_id in ids:
            same_id.append(q)
        else:
            (same_text if text_hash(q) in texts else fresh).append(q)
    return fresh, same_id, same_text


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """Explicit directory (must exist), else ../shared/data/benchmarks when it exists, else
    None (every split from the hub)."""
    if data_dir is None:
        return default_data_dir()
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise PrefixoptError(
            f"data dir {root} does not exist; pass --data-dir DIR holding "
            "<benchmark>/<split>.jsonl (or unset PREFIXOPT_DATA_DIR)"
        )
    return root


def splits_of(benchmark: str, data_dir: str | Path | None = None) -> tuple[str, ...]:
    """Known splits of a benchmark plus any extra `<split>.jsonl` found locally."""
    known = list(get_task(benchmark).splits)
    root = resolve_data_dir(data_dir)
    if root is not None and (root / benchmark).is_dir():
        known += sorted(p.stem for p in (root / benchmark).glob("*.jsonl") if p.stem not in known)
    return tuple(known)


def split_source(benchmark: str, split: str, data_dir: str | Path | None = None) -> str:
    """Where a base split is read from: the local file path, or 'hub:<id>'."""
    path = local_path(resolve_data_dir(data_dir), benchmark, split)
    return str(path) if path is not None else f"hub:{get_task(benchmark).hub_name}"


def load_split(
    benchmark: str,
    split: str | None = None,
    *,
    data_dir: str | Path | None = None,
    purpose: str = "train",
) -> list[Question]:
    """Load (a slice of) a split as normalised Questions, in file order.

    split=None -> default_split(benchmark, purpose). `data_dir` None -> the shared default.
    """
    task = get_task(benchmark)
    spec = split if split is not None else task.default_split(purpose)
    root = resolve_data_dir(data_dir)
    valid = splits_of(benchmark, root)
    out: list[Question] = []
    for piece in parse_split(spec):
        if piece.split not in valid:
            raise PrefixoptError(
                f"unknown split {piece.split!r} for {benchmark}; valid: {', '.join(valid)}"
            )
        questions = _load_base(benchmark, piece.split, root)
        start, stop = resolve_slice(piece, len(questions))
        out.extend(questions[start:stop])
    return out


def _load_base(benchmark: str, split: str, root: Path | None) -> tuple[Question, ...]:
    path = local_path(root, benchmark, split)
    if path is not None:
        st = path.stat()
        return _parse_local(benchmark, split, str(path.resolve()), st.st_mtime_ns, st.st_size)
    return _parse_hub(benchmark, split, str(root) if root is not None else None)


@lru_cache(maxsize=32)
def _parse_local(
    benchmark: str, split: str, path: str, mtime_ns: int, size: int
) -> tuple[Question, ...]:
    # mtime and size are part of the cache key: an edited file is read again.
    rows = read_rows(Path(path))
    return tuple(get_task(benchmark).parse_rows(rows, split, path))


@lru_cache(maxsize=16)
def _parse_hub(benchmark: str, split: str, root: str | None) -> tuple[Question, ...]:
    task = get_task(benchmark)
    where = f"{root}/{benchmark}/{split}.jsonl" if root else "no --data-dir"
    try:
        import datasets  # heavy and network-bound: only when no local file exists

        ds = datasets.load_dataset(task.hub_id, task.hub_config, split=split)
        rows: list[dict[str, Any]] = [dict(r) for r in ds]
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one actionable line
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise PrefixoptError(
            f"{benchmark} {split}: no local file ({where}) and the Hugging Face hub failed "
            f"({type(exc).__name__}: {first}); pass --data-dir DIR with "
            f"{benchmark}/{split}.jsonl{task.offline_hint(split)}"
        ) from None
    return tuple(task.parse_rows(rows, split, f"hub:{task.hub_id}"))


def split_status(data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per (benchmark, split): rows (None when only on the hub), source, default
    role. Local files are counted, never downloaded."""
    root = resolve_data_dir(data_dir)
    out = []
    for benchmark, task in TASKS.items():
        for split in splits_of(benchmark, root):
            path = local_path(root, benchmark, split)
            role = ("train" if split == task.train_split
                    else "eval" if split == task.eval_split else "")
            out.append(
                {
                    "benchmark": benchmark,
                    "split": split,
                    "rows": count_rows(path) if path is not None else None,
                    "source": str(path) if path is not None else f"hub:{task.hub_name}",
                    "default_for": role,
                    "local": path is not None,
                }
            )
    return out
