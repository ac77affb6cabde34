"""Build the people table from Pantheon 1.0: the 10,000 highest-HPI people with a known birth
year ("530s" -> 530, "1237?" -> 1237, "Unknown" dropped), one person per name (the higher-HPI
one; ties by en_curid), field from prefixopt.fields, era from the birth year. person_id = HPI
rank 0..N-1 in the built file (en_curid is kept for provenance). Same source -> same bytes.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from prefixopt.errors import PrefixoptError
from prefixopt.fields import OCCUPATION_FIELD, era_of
from prefixopt.people import COLUMNS, DEFAULT_PEOPLE_PATH, EXTRA_COLUMNS, REPO_ROOT, _decode
from prefixopt.runs import write_bytes

DEFAULT_PANTHEON_PATH = REPO_ROOT.parent / "shared" / "data" / "people" / "pantheon_1_0.tsv"
NUM_PEOPLE = 10_000
_PANTHEON_NEEDS = ("en_curid", "name", "birthyear", "occupation", "HPI")
_YEAR_RE = re.compile(r"^\s*(-?\d+)")  # leading integer: "530s" -> 530, "1237?" -> 1237


def parse_birth_year(raw: str) -> int | None:
    """Pantheon birthyear -> int (negative = BCE), None when unknown."""
    m = _YEAR_RE.match(raw or "")
    return int(m.group(1)) if m else None


def build_people(source: str | Path = DEFAULT_PANTHEON_PATH, n: int = NUM_PEOPLE) -> str:
    """The people CSV text built from a Pantheon 1.0 TSV (deterministic, LF line ends)."""
    source = Path(source)
    if not source.is_file():
        raise PrefixoptError(
            f"Pantheon source {source} not found; pass --people-source PATH to pantheon_1_0.tsv"
        )
    text = _decode(source.read_bytes(), source)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    header = next(reader, None) or []
    missing = [c for c in _PANTHEON_NEEDS if c not in header]
    if missing:
        raise PrefixoptError(
            f"{source}: missing column(s) {', '.join(missing)}; is this Pantheon 1.0's TSV?"
        )
    col = {name: i for i, name in enumerate(header)}
    candidates = []  # (-hpi, en_curid, row) for sorting: highest HPI first, ties by id
    for lineno, row in enumerate(reader, start=2):
        if len(row) != len(header):
            raise PrefixoptError(
                f"{source}: line {lineno} has {len(row)} fields, not {len(header)}"
            )
        year = parse_birth_year(row[col["birthyear"]])
        if year is None:
            continue
        occupation = row[col["occupation"]].strip().upper()
        if occupation not in OCCUPATION_FIELD:
            raise PrefixoptError(
                f"{source}: line {lineno}: occupation {occupation!r} has no field in "
                "prefixopt/fields.py; add it to FIELD_OCCUPATIONS"
            )
        hpi = float(row[col["HPI"]])
        candidates.append((-hpi, int(row[col["en_curid"]]), year, row))
    candidates.sort(key=lambda c: (c[0], c[1]))

    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS + EXTRA_COLUMNS)
    seen: set[str] = set()
    for _, curid, year, row in candidates:
        name = row[col["name"]].strip()
        if not name or name in seen:  # a duplicate name keeps its higher-HPI holder
            continue
        seen.add(name)
        occupation = row[col["occupation"]].strip().upper()
        writer.writerow(
            [
                len(seen) - 1,  # person_id = rank
                name,
                OCCUPATION_FIELD[occupation],
                era_of(year),
                year,
                row[col["HPI"]].strip(),  # source text, so the bytes never depend on float repr
                occupation,
                _get(row, col, "countryName"),
                _get(row, col, "gender"),
                _get(row, col, "numlangs"),
                curid,
            ]
        )
        if len(seen) == n:
            break
    if len(seen) < n:
        raise PrefixoptError(
            f"{source}: only {len(seen)} people with a known birth year and a unique name, "
            f"fewer than the {n} asked"
        )
    return out.getvalue()


def _get(row: list[str], col: dict[str, int], name: str) -> str:
    return row[col[name]].strip() if name in col else ""


def write_people(
    out: str | Path = DEFAULT_PEOPLE_PATH,
    source: str | Path = DEFAULT_PANTHEON_PATH,
    *,
    force: bool = False,
) -> tuple[Path, bool]:
    """Build and write the people CSV atomically. Returns (path, written): an existing file
    with the same bytes is left alone; a different one needs force=True."""
    out = Path(out)
    text = build_people(source)
    data = text.encode("utf-8")
    if out.is_file():
        if out.read_bytes() == data:
            return out, False
        if not force:
            raise PrefixoptError(
                f"{out} exists and differs from a fresh build of {source}; "
                "pass --force to overwrite it or --out PATH to write elsewhere"
            )
    write_bytes(out, data, umask_mode=True)  # a table is as readable as any file
    return out, True
