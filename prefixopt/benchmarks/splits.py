"""Hugging Face split syntax and local JSON Lines reading for the benchmark loaders:
`parse_split("validation[:50%]")` -> base split + slice; `resolve_slice` -> row bounds with
`datasets.ReadInstruction`'s rounding ("closest": round(pct * n / 100), half to even; or
"pct1_dropremainder"). `read_rows` is the only place benchmark files are read.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefixopt.errors import PrefixoptError
from prefixopt.records import Question

# `name[from:to](rounding)`; from/to are ints or percentages, either may be missing.
_SPEC_RE = re.compile(
    r"^(?P<split>\w+)"
    r"(\[((?P<from>-?[\d_]+)(?P<from_pct>%)?)?:((?P<to>-?[\d_]+)(?P<to_pct>%)?)?\])?"
    r"(\((?P<rounding>[^)]*)\))?$"
)

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
SHARED_BENCHMARKS = REPO_ROOT.parent / "shared" / "data" / "benchmarks"


@dataclass(frozen=True)
class SplitSlice:
    """One `name[from:to]` piece of a split spec (a spec may add pieces with `+`)."""

    split: str
    start: int | None = None
    stop: int | None = None
    percent: bool = False
    rounding: str = "closest"  # closest | pct1_dropremainder (percent slices only)


def parse_split(spec: str) -> list[SplitSlice]:
    """Parse HF split syntax: 'test', 'test[:100]', 'validation[:50%]', 'train[10%:20%]',
    'train[:10]+validation[:10]'. Raises PrefixoptError on malformed specs."""
    pieces = []
    for sub in re.split(r"\s*\+\s*", spec.strip()):
        m = _SPEC_RE.match(sub)
        if m is None:
            raise PrefixoptError(
                f"bad split {spec!r}: use Hugging Face split syntax, e.g. 'test', "
                "'test[:100]', 'validation[:50%]', 'train[10%:20%]'"
            )
        if m["from"] and m["to"] and bool(m["from_pct"]) != bool(m["to_pct"]):
            raise PrefixoptError(f"bad split {spec!r}: do not mix % and absolute bounds")
        percent = bool(m["from_pct"] or m["to_pct"])
        rounding = m["rounding"] or "closest"
        if rounding not in ("closest", "pct1_dropremainder"):
            raise PrefixoptError(
                f"bad split {spec!r}: rounding must be closest or pct1_dropremainder"
            )
        pieces.append(
            SplitSlice(
                split=m["split"],
                start=int(m["from"]) if m["from"] else None,
                stop=int(m["to"]) if m["to"] else None,
                percent=percent,
                rounding=rounding,
            )
        )
    return pieces


def resolve_slice(piece: SplitSlice, n: int) -> tuple[int, int]:
    """Row bounds [start, stop) of `piece` on a split of n rows (datasets' semantics)."""

    def to_abs(boundary: int) -> int:
        if piece.rounding == "closest":
            return round(boundary * n / 100.0)  # half to even, as datasets
        if n < 100:
            raise PrefixoptError("pct1_dropremainder rounding needs a split of >= 100 rows")
        return boundary * math.trunc(n / 100.0)

    start, stop = piece.start, piece.stop
    if piece.percent:
        start = 0 if start is None else to_abs(start)
        stop = n if stop is None else to_abs(stop)
    else:
        start = 0 if start is None else start
        stop = n if stop is None else stop
    if start < 0:
        start = max(n + start, 0)
    if stop < 0:
        stop = max(n + stop, 0)
    return min(start, n), min(stop, n)


def default_data_dir() -> Path | None:
    """../shared/data/benchmarks next to the repo when it exists, else None (use the hub)."""
    return SHARED_BENCHMARKS if SHARED_BENCHMARKS.is_dir() else None


def local_path(data_dir: Path | None, benchmark: str, split: str) -> Path | None:
    """`<data_dir>/<benchmark>/<split>.jsonl` when that file exists."""
    if data_dir is None:
        return None
    path = Path(data_dir) / benchmark / f"{split}.jsonl"
    return path if path.is_file() else None


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every JSON object of a local split file (blank lines skipped)."""
    rows = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise PrefixoptError(f"{path}: line {lineno} is not valid JSON ({exc})") from None
    return rows


def parse_each(
    rows: list[dict[str, Any]], parse: Callable[[dict[str, Any], int], Question], where: str
) -> list[Question]:
    """Apply a row parser; a malformed row is a one-line error naming the row."""
    out = []
    for index, row in enumerate(rows):
        try:
            out.append(parse(row, index))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise PrefixoptError(
                f"{where}: row {index + 1} is not a valid row ({type(exc).__name__}: {exc}); "
                "expected the upstream Hugging Face fields"
            ) from None
    return out


def count_rows(path: Path) -> int:
    """Non-empty lines of a JSON Lines file (for `prefixopt data`; no parsing)."""
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())
