"""The people table (`notable_people_10k.csv`, committed at the repo root; people_build.py
rebuilds it from Pantheon): load and validate any CSV with at least name, field, era (each
problem is one line naming file and row), exclude fields or occupations, filter and count.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from prefixopt.errors import PrefixoptError
from prefixopt.fields import ERAS, FIELDS

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PEOPLE_PATH = REPO_ROOT / "notable_people_10k.csv"

COLUMNS = ("person_id", "name", "field", "era", "birth_year", "hpi")
EXTRA_COLUMNS = ("occupation", "country", "gender", "numlangs", "en_curid")
REQUIRED = ("name", "field", "era")  # person_id defaults to the row index, the rest to null


# ----------------------------------------------------------------------------- load


@dataclass(frozen=True, eq=False)
class People:
    """A validated people table. Row i of every array is the same person; sampling works on
    row indices 0..N-1 and tables record person_id."""

    frame: pl.DataFrame  # person_id, name, field, era, birth_year, hpi, extras...
    person_id: np.ndarray  # (N,) int64
    names: list[str]
    fields: list[str]  # distinct fields, canonical order (prefixopt.fields.FIELDS first)
    field_index: np.ndarray  # (N,) int64 into fields
    eras: list[str]  # distinct eras, chronological
    era_index: np.ndarray  # (N,) int64 into eras
    fingerprint: str  # sha256 of the file's bytes
    path: str = ""

    def __len__(self) -> int:
        return len(self.names)

    def row_of(self, person_id: int) -> int:
        """Row index of a person_id (ValueError if absent)."""
        rows = np.flatnonzero(self.person_id == person_id)
        if rows.size == 0:
            raise ValueError(f"person_id {person_id} is not in {self.path}")
        return int(rows[0])


def load_people(
    path: str | Path | None = None,
    *,
    exclude_fields: tuple[str, ...] | list[str] = (),
    exclude_occupations: tuple[str, ...] | list[str] = (),
    min_rows: int = 1,
) -> People:
    """Load and validate a people CSV (default: notable_people_10k.csv at the repo root).

    Needs columns name, field, era; person_id (default: row index), birth_year, hpi and
    occupation are optional. Bad input raises PrefixoptError naming the file and row.
    """
    path = Path(path) if path is not None else DEFAULT_PEOPLE_PATH
    if not path.is_file():
        hint = (
            f"restore the committed copy (git checkout -- {path.name}) or run: "
            "prefixopt setup --rebuild-people"
            if path == DEFAULT_PEOPLE_PATH
            else "check --people"
        )
        raise PrefixoptError(f"people file {path} not found; {hint}")
    stat = path.stat()  # a file changed in place is read again
    return _load(path, (stat.st_mtime_ns, stat.st_size), tuple(exclude_fields),
                 tuple(exclude_occupations), min_rows)


@functools.lru_cache(maxsize=8)
def _load(path: Path, stamp: tuple[int, int], exclude_fields: tuple[str, ...],
          exclude_occupations: tuple[str, ...], min_rows: int) -> People:
    """load_people's work, once per (file version, exclusions): a study or a run's eval and
    report read the same table many times (~0.3 s each)."""
    raw = path.read_bytes()
    fingerprint = hashlib.sha256(raw).hexdigest()
    text = _decode(raw, path)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise PrefixoptError(
            f"{path}: missing column(s) {', '.join(missing)} in the header; a people CSV needs "
            f"{', '.join(REQUIRED)} (optional: person_id, birth_year, hpi, occupation)"
        )
    dupe_cols = sorted({h for h in header if header.count(h) > 1})
    if dupe_cols:
        raise PrefixoptError(f"{path}: column(s) {', '.join(dupe_cols)} appear more than once")
    records = _validate_rows(reader, header, path)
    if not records:
        raise PrefixoptError(f"{path}: no people rows after the header")
    frame = _to_frame(records, header)
    frame = _exclude(frame, path, exclude_fields, exclude_occupations)
    if frame.height < min_rows:
        raise PrefixoptError(
            f"{path}: {frame.height} people after exclusions, fewer than the {min_rows} asked; "
            "use a larger table or exclude less"
        )
    return _people(frame, fingerprint, str(path))


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise PrefixoptError(
            f"{path}: row {line - 1} (line {line}) is not valid UTF-8 "
            f"(byte 0x{raw[exc.start]:02x}); re-save the file as UTF-8"
        ) from None


def _validate_rows(reader, header: list[str], path: Path) -> list[list[str]]:
    col = {h: i for i, h in enumerate(header)}
    records: list[list[str]] = []
    first_row_of: dict[str, int] = {}
    ids: dict[int, int] = {}
    for rowno, row in enumerate(reader, start=1):
        if not row or all(not c.strip() for c in row):
            continue  # blank line
        where = f"{path}: row {rowno} (line {reader.line_num})"
        if len(row) != len(header):
            raise PrefixoptError(f"{where} has {len(row)} fields, the header has {len(header)}")
        row = [c.strip() for c in row]
        for name in REQUIRED:
            if not row[col[name]]:
                raise PrefixoptError(f"{where}: empty {name}; every person needs one")
        name = row[col["name"]]
        if name in first_row_of:
            raise PrefixoptError(
                f"{where}: duplicate name {name!r} (also row {first_row_of[name]}); "
                "names must be unique"
            )
        first_row_of[name] = rowno
        for key, kind in (("person_id", int), ("birth_year", int), ("hpi", float)):
            if key in col and (row[col[key]] or key == "person_id"):
                try:
                    kind(row[col[key]])
                except ValueError:
                    raise PrefixoptError(
                        f"{where}: {key} {row[col[key]]!r} is not a number"
                    ) from None
        if "person_id" in col:
            pid = int(row[col["person_id"]])
            if pid < 0 or pid in ids:
                why = "negative" if pid < 0 else f"a duplicate (also row {ids.get(pid)})"
                raise PrefixoptError(f"{where}: person_id {pid} is {why}; ids must be unique >= 0")
            ids[pid] = rowno
        records.append(row)
    return records


def _to_frame(records: list[list[str]], header: list[str]) -> pl.DataFrame:
    columns = {h: [r[i] for r in records] for i, h in enumerate(header)}
    n = len(records)
    frame = pl.DataFrame(columns, schema={h: pl.Utf8 for h in header})
    casts = [
        (pl.col("person_id").cast(pl.Int64) if "person_id" in header
         else pl.Series("person_id", np.arange(n, dtype=np.int64))),
        _num("birth_year", pl.Int64, header),
        _num("hpi", pl.Float64, header),
    ]  # fmt: skip
    frame = frame.with_columns(casts)
    for extra in ("numlangs", "en_curid"):
        if extra in header:
            frame = frame.with_columns(pl.col(extra).cast(pl.Int64, strict=False))
    front = list(COLUMNS)
    return frame.select(front + [c for c in frame.columns if c not in front])


def _num(name: str, dtype: pl.DataType, header: list[str]) -> pl.Expr:
    if name not in header:
        return pl.lit(None, dtype=dtype).alias(name)
    return pl.when(pl.col(name) == "").then(None).otherwise(pl.col(name)).cast(dtype).alias(name)


def _exclude(
    frame: pl.DataFrame, path: Path, fields: tuple[str, ...] | list[str], occupations
) -> pl.DataFrame:
    """Drop people by field or occupation (case-insensitive); unknown names are an error.
    Valid names are those of the whole file, so excluding a field and one of its
    occupations together is fine."""
    original = frame
    for column, wanted, flag in (
        ("field", fields, "--exclude-field"),
        ("occupation", occupations, "--exclude-occupation"),
    ):
        if not wanted:
            continue
        if column not in frame.columns:
            raise PrefixoptError(f"{path} has no {column} column, so {flag} cannot apply")
        valid = sorted(set(original[column].to_list()))
        by_fold = {v.casefold(): v for v in valid}
        unknown = [w for w in wanted if w.strip().casefold() not in by_fold]
        if unknown:
            raise PrefixoptError(
                f"{flag}: unknown {column}(s) {', '.join(map(repr, unknown))} in {path}; "
                f"valid: {', '.join(valid)}"
            )
        drop = [by_fold[w.strip().casefold()] for w in wanted]
        frame = frame.filter(~pl.col(column).is_in(drop))
    return frame


def _ordered(values: list[str], canonical: tuple[str, ...]) -> list[str]:
    present = set(values)
    return [v for v in canonical if v in present] + sorted(present - set(canonical))


def _people(frame: pl.DataFrame, fingerprint: str, path: str) -> People:
    names = frame["name"].to_list()
    field_col, era_col = frame["field"].to_list(), frame["era"].to_list()
    fields, eras = _ordered(field_col, FIELDS), _ordered(era_col, ERAS)
    f_pos, e_pos = {f: i for i, f in enumerate(fields)}, {e: i for i, e in enumerate(eras)}
    return People(
        frame=frame,
        person_id=frame["person_id"].to_numpy().astype(np.int64),  # (N,)
        names=names,
        fields=fields,
        field_index=np.array([f_pos[f] for f in field_col], dtype=np.int64),  # (N,)
        eras=eras,
        era_index=np.array([e_pos[e] for e in era_col], dtype=np.int64),  # (N,)
        fingerprint=fingerprint,
        path=path,
    )


# ----------------------------------------------------------------------------- browse


def filter_people(
    people: People,
    *,
    fields: tuple[str, ...] | list[str] = (),
    eras: tuple[str, ...] | list[str] = (),
    name: str | None = None,
    top: int | None = None,
) -> pl.DataFrame:
    """Rows matching any of `fields`, any of `eras` (case-insensitive), and a name substring,
    highest HPI first (file order when there is no hpi), at most `top` rows."""
    frame = people.frame
    for column, wanted, valid in (("field", fields, people.fields), ("era", eras, people.eras)):
        if not wanted:
            continue
        by_fold = {v.casefold(): v for v in valid}
        unknown = [w for w in wanted if w.casefold() not in by_fold]
        if unknown:
            raise PrefixoptError(
                f"unknown {column}(s) {', '.join(map(repr, unknown))}; valid: {', '.join(valid)}"
            )
        frame = frame.filter(pl.col(column).is_in([by_fold[w.casefold()] for w in wanted]))
    if name:
        frame = frame.filter(
            pl.col("name").str.to_lowercase().str.contains(name.lower(), literal=True)
        )
    if frame["hpi"].null_count() < frame.height:
        frame = frame.sort("hpi", descending=True, nulls_last=True, maintain_order=True)
    return frame.head(top) if top else frame


def people_counts(frame: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """People per field and per era (largest first), for `prefixopt people --counts`."""
    return {
        key: frame.group_by(key).len("people").sort(["people", key], descending=[True, False])
        for key in ("field", "era")
    }
