"""Benchmark loaders: mmlu, gsm8k, arc_easy, arc_challenge, hellaswag -> list[Question].

Local files `<data_dir>/<benchmark>/<split>.jsonl` (upstream Hugging Face field names) are
read when present, else the split is fetched from the hub with `datasets` (imported lazily).
Splits take HF syntax ("validation[:50%]"); slicing happens here, after loading the whole
base split, so local and hub data slice identically. Parsed splits are cached in-process.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any

from prefixopt.benchmarks.splits import (
    count_rows,
    default_data_dir,
    local_path,
    parse_split,
    read_rows,
    resolve_slice,
)
from prefixopt.errors import PrefixoptError
from prefixopt.records import Question

BENCHMARKS = ("mmlu", "gsm8k", "arc_easy", "arc_challenge", "hellaswag")
_FAMILY = {
    "mmlu": "mmlu",
    "gsm8k": "gsm8k",
    "arc_easy": "arc",
    "arc_challenge": "arc",
    "hellaswag": "hellaswag",
}
# Base splits each benchmark has (local files may add more) and where the hub keeps them.
_SPLITS = {
    "mmlu": ("dev", "validation", "test"),
    "gsm8k": ("train", "test"),
    "arc_easy": ("train", "validation", "test"),
    "arc_challenge": ("train", "validation", "test"),
    "hellaswag": ("train", "validation"),  # the hub's test split has no labels
}
_HUB = {
    "mmlu": ("cais/mmlu", "all"),
    "gsm8k": ("openai/gsm8k", "main"),
    "arc_easy": ("allenai/ai2_arc", "ARC-Easy"),
    "arc_challenge": ("allenai/ai2_arc", "ARC-Challenge"),
    "hellaswag": ("Rowan/hellaswag", None),
}
# (train split for policy updates, held-out eval split), see DESIGN.md "Data".
_DEFAULT_SPLITS = {
    "mmlu": ("validation", "test"),
    "gsm8k": ("train", "test"),
    "arc_easy": ("train", "test"),
    "arc_challenge": ("train", "test"),
    "hellaswag": ("train", "validation"),
}
_SCORING = {
    "mmlu": "letter",
    "gsm8k": "generate",
    "arc_easy": "cloze",
    "arc_challenge": "cloze",
    "hellaswag": "cloze",
}
# Where few-shot examples come from (hellaswag: validation, scored items excluded by caller).
_FEWSHOT = {
    "mmlu": "dev",
    "gsm8k": "train",
    "arc_easy": "train",
    "arc_challenge": "train",
    "hellaswag": "validation",
}

# Offline, hellaswag has no train split: say what to use instead.
_OFFLINE_HINT = {
    ("hellaswag", "train"): (
        ", or offline use --train-split 'validation[:50%]' --eval-split 'validation[50%:]'"
    )
}

__all__ = [
    "BENCHMARKS",
    "default_scoring",
    "default_split",
    "fewshot_split",
    "hub_name",
    "load_split",
    "resolve_data_dir",
    "split_source",
    "split_status",
    "splits_of",
]


def _check(benchmark: str) -> None:
    if benchmark not in BENCHMARKS:
        raise PrefixoptError(f"unknown benchmark {benchmark!r}; valid: {', '.join(BENCHMARKS)}")


def _family(benchmark: str) -> ModuleType:
    _check(benchmark)
    return importlib.import_module(f"prefixopt.benchmarks.{_FAMILY[benchmark]}")


def default_split(benchmark: str, purpose: str = "train") -> str:
    """The benchmark's default split for purpose 'train' (policy updates) or 'eval'."""
    _check(benchmark)
    if purpose not in ("train", "eval"):
        raise PrefixoptError(f"unknown purpose {purpose!r}; valid: train, eval")
    return _DEFAULT_SPLITS[benchmark][0 if purpose == "train" else 1]


def default_scoring(benchmark: str) -> str:
    """cloze for arc_*/hellaswag, letter for mmlu, generate for gsm8k."""
    _check(benchmark)
    return _SCORING[benchmark]


def fewshot_split(benchmark: str) -> str:
    """The split few-shot examples are drawn from (mmlu dev, arc/gsm8k train, hellaswag
    validation: callers must exclude the scored questions)."""
    _check(benchmark)
    return _FEWSHOT[benchmark]


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
    _check(benchmark)
    known = list(_SPLITS[benchmark])
    root = resolve_data_dir(data_dir)
    if root is not None and (root / benchmark).is_dir():
        known += sorted(p.stem for p in (root / benchmark).glob("*.jsonl") if p.stem not in known)
    return tuple(known)


def hub_name(benchmark: str) -> str:
    _check(benchmark)
    hub_id, config = _HUB[benchmark]
    return hub_id if config is None else f"{hub_id} ({config})"


def split_source(benchmark: str, split: str, data_dir: str | Path | None = None) -> str:
    """Where a base split is read from: the local file path, or 'hub:<id>'."""
    path = local_path(resolve_data_dir(data_dir), benchmark, split)
    return str(path) if path is not None else f"hub:{hub_name(benchmark)}"


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
    _check(benchmark)
    spec = split if split is not None else default_split(benchmark, purpose)
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
    return tuple(_family(benchmark).parse_rows(rows, split, benchmark, path))


@lru_cache(maxsize=16)
def _parse_hub(benchmark: str, split: str, root: str | None) -> tuple[Question, ...]:
    hub_id, config = _HUB[benchmark]
    where = f"{root}/{benchmark}/{split}.jsonl" if root else "no --data-dir"
    try:
        import datasets  # heavy and network-bound: only when no local file exists

        ds = datasets.load_dataset(hub_id, config, split=split)
        rows: list[dict[str, Any]] = [dict(r) for r in ds]
    except Exception as exc:  # noqa: BLE001 - any hub failure becomes one actionable line
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise PrefixoptError(
            f"{benchmark} {split}: no local file ({where}) and the Hugging Face hub failed "
            f"({type(exc).__name__}: {first}); pass --data-dir DIR with "
            f"{benchmark}/{split}.jsonl{_OFFLINE_HINT.get((benchmark, split), '')}"
        ) from None
    return tuple(_family(benchmark).parse_rows(rows, split, benchmark, f"hub:{hub_id}"))


def split_status(data_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per (benchmark, split): rows (None when only on the hub), source, default
    role. Local files are counted, never downloaded."""
    root = resolve_data_dir(data_dir)
    out = []
    for benchmark in BENCHMARKS:
        train, evals = _DEFAULT_SPLITS[benchmark]
        for split in splits_of(benchmark, root):
            path = local_path(root, benchmark, split)
            role = "train" if split == train else "eval" if split == evals else ""
            out.append(
                {
                    "benchmark": benchmark,
                    "split": split,
                    "rows": count_rows(path) if path is not None else None,
                    "source": str(path) if path is not None else f"hub:{hub_name(benchmark)}",
                    "default_for": role,
                    "local": path is not None,
                }
            )
    return out
