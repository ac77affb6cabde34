"""The people table: the Pantheon build (10,000 rows, unique names, every occupation mapped,
byte-for-byte deterministic) and the loader's validation and exclusion filters."""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from prefixopt.errors import PrefixoptError
from prefixopt.fields import ERAS, FIELDS, OCCUPATION_FIELD, era_of
from prefixopt.people import (
    COLUMNS,
    DEFAULT_PEOPLE_PATH,
    filter_people,
    load_people,
    people_counts,
)
from prefixopt.people_build import (
    DEFAULT_PANTHEON_PATH,
    build_people,
    parse_birth_year,
    write_people,
)

PANTHEON_HEADER = ["en_curid", "name", "birthyear", "occupation", "countryName", "HPI"]


@pytest.fixture(scope="module")
def built(pantheon_path: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("people") / "people.csv"
    write_people(out, pantheon_path)
    return out


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_build_has_10k_unique_people_with_fields_and_eras(built: Path) -> None:
    rows = _rows(built)
    assert len(rows) == 10_000
    assert list(rows[0])[: len(COLUMNS)] == list(COLUMNS)
    names = [r["name"] for r in rows]
    assert all(n.strip() == n and n for n in names)
    assert len(set(names)) == len(names)
    assert {r["field"] for r in rows} <= set(FIELDS)
    assert all(r["field"] == OCCUPATION_FIELD[r["occupation"]] for r in rows)
    assert all(r["era"] == era_of(int(r["birth_year"])) for r in rows)
    assert [int(r["person_id"]) for r in rows] == list(range(10_000))
    hpi = np.array([float(r["hpi"]) for r in rows])
    assert np.all(np.diff(hpi) <= 0), "highest HPI first"


def test_every_source_occupation_is_mapped(pantheon_path: Path) -> None:
    with open(pantheon_path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        occupations = {r["occupation"] for r in reader}
    assert len(occupations) == 88
    assert occupations <= set(OCCUPATION_FIELD)
    assert "Unknown" not in FIELDS


def test_build_is_deterministic_and_idempotent(pantheon_path: Path, built: Path) -> None:
    assert build_people(pantheon_path).encode("utf-8") == built.read_bytes()
    before = hashlib.sha256(built.read_bytes()).hexdigest()
    path, written = write_people(built, pantheon_path)
    assert (path, written) == (built, False)
    assert hashlib.sha256(built.read_bytes()).hexdigest() == before


def test_write_refuses_to_overwrite_a_different_file(pantheon_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "people.csv"
    out.write_text("name,field,era\nX,Science,Modern\n", encoding="utf-8")
    with pytest.raises(PrefixoptError, match="--force"):
        write_people(out, pantheon_path)
    assert out.read_text(encoding="utf-8").startswith("name,field,era")
    _, written = write_people(out, pantheon_path, force=True)
    assert written and len(_rows(out)) == 10_000
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_committed_table_loads() -> None:
    assert DEFAULT_PEOPLE_PATH.is_file(), "notable_people_10k.csv is committed at the repo root"
    assert 0.5e6 < DEFAULT_PEOPLE_PATH.stat().st_size < 2e6
    people = load_people()
    assert len(people) == 10_000 and people.path == str(DEFAULT_PEOPLE_PATH)


def test_committed_table_equals_a_rebuild() -> None:
    if not DEFAULT_PANTHEON_PATH.is_file():
        pytest.skip(f"Pantheon source not found at {DEFAULT_PANTHEON_PATH}: cannot rebuild")
    rebuilt = build_people(DEFAULT_PANTHEON_PATH).encode("utf-8")
    assert rebuilt == DEFAULT_PEOPLE_PATH.read_bytes(), (
        "notable_people_10k.csv differs from a rebuild: run prefixopt setup --rebuild-people"
    )


@pytest.mark.parametrize(
    ("raw", "year"), [("1809", 1809), ("-384", -384), ("530s", 530), ("1237?", 1237),
                      ("Unknown", None), ("", None)]
)  # fmt: skip
def test_parse_birth_year(raw: str, year: int | None) -> None:
    assert parse_birth_year(raw) == year


def test_era_bands() -> None:
    years = (-500, 499, 500, 1399, 1400, 1549, 1550, 1749, 1750, 1919, 1920)
    assert [era_of(y) for y in years] == [
        "Ancient", "Ancient", "Medieval", "Medieval", "Renaissance", "Renaissance",
        "Early Modern", "Early Modern", "Modern", "Modern", "Contemporary",
    ]  # fmt: skip
    assert ERAS[0] == "Ancient" and ERAS[-1] == "Contemporary"


def test_build_dedupes_names_and_drops_unknown_years(tmp_path: Path) -> None:
    src = tmp_path / "mini.tsv"
    lines = [
        "\t".join(PANTHEON_HEADER),
        "1\tSting\t1951\tSINGER\tUK\t20.0",
        "2\tSting\t1900\tWRESTLER\tUS\t18.0",  # same name, lower HPI: dropped
        "3\tAsa\tUnknown\tRELIGIOUS FIGURE\t\t25.0",  # unknown year: dropped
        "4\tAlboin\t530s\tNOBLEMAN\tItaly\t19.0",
        "5\tAdam de la Halle\t1237?\tCOMPOSER\tFrance\t19.0",  # HPI tie: lower en_curid first
    ]
    src.write_text("\n".join(lines), encoding="utf-8")
    rows = list(csv.DictReader(build_people(src, n=3).splitlines()))
    assert [r["name"] for r in rows] == ["Sting", "Alboin", "Adam de la Halle"]
    assert [r["occupation"] for r in rows] == ["SINGER", "NOBLEMAN", "COMPOSER"]
    assert [r["birth_year"] for r in rows] == ["1951", "530", "1237"]
    assert [r["era"] for r in rows] == ["Contemporary", "Medieval", "Medieval"]
    with pytest.raises(PrefixoptError, match="fewer than the 4 asked"):
        build_people(src, n=4)


def test_build_rejects_an_unmapped_occupation(tmp_path: Path) -> None:
    src = tmp_path / "bad.tsv"
    src.write_text("\t".join(PANTHEON_HEADER) + "\n1\tX\t1900\tWIZARD\tUK\t20.0", encoding="utf-8")
    with pytest.raises(PrefixoptError, match="WIZARD"):
        build_people(src, n=1)


# ----------------------------------------------------------------------------- loading


def test_load_aligns_every_array(built: Path) -> None:
    people = load_people(built)
    n = len(people)
    assert n == 10_000
    assert people.person_id.shape == people.field_index.shape == people.era_index.shape == (n,)
    assert people.person_id.dtype == np.int64
    frame = people.frame
    assert people.names == frame["name"].to_list()
    assert [people.fields[i] for i in people.field_index] == frame["field"].to_list()
    assert [people.eras[i] for i in people.era_index] == frame["era"].to_list()
    assert people.eras == list(ERAS)
    assert people.fingerprint == hashlib.sha256(built.read_bytes()).hexdigest()
    assert people.row_of(int(people.person_id[123])) == 123


def _one_line_error(path: Path, **kwargs) -> str:
    with pytest.raises(PrefixoptError) as info:
        load_people(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def _write(tmp_path: Path, text: str | bytes, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_duplicate_name_names_both_rows(tmp_path: Path) -> None:
    path = _write(tmp_path, "name,field,era\nA,Science,Modern\nB,Music,Modern\nA,Music,Modern\n")
    message = _one_line_error(path)
    assert "row 3" in message and "row 1" in message and "'A'" in message


def test_the_seed_projects_list_has_a_duplicate(tmp_path: Path) -> None:
    seed = Path(__file__).resolve().parents[2] / "shared/data/people/seed_notable_people.csv"
    if not seed.is_file():
        pytest.skip("seed list not found")
    assert "duplicate name 'Greta Gerwig'" in _one_line_error(seed)


def test_missing_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "name,era\nA,Modern\n")
    assert "missing column(s) field" in _one_line_error(path)


def test_empty_name(tmp_path: Path) -> None:
    path = _write(tmp_path, "name,field,era\nA,Science,Modern\n  ,Music,Modern\n")
    message = _one_line_error(path)
    assert "row 2" in message and "empty name" in message


def test_non_utf8(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "name,field,era\nA,Science,Modern\nRen\xe9,Music,Modern\n".encode("latin-1")
    )
    message = _one_line_error(path)
    assert "UTF-8" in message and "row 2" in message


def test_fewer_rows_than_asked_and_bad_ids(tmp_path: Path) -> None:
    path = _write(tmp_path, "name,field,era\nA,Science,Modern\nB,Music,Modern\n")
    assert "fewer than the 3 asked" in _one_line_error(path, min_rows=3)
    assert len(load_people(path, min_rows=2)) == 2
    path = _write(tmp_path, "person_id,name,field,era\n7,A,Science,Modern\n7,B,Music,Modern\n")
    assert "person_id 7" in _one_line_error(path)
    path = _write(tmp_path, "person_id,name,field,era\nx,A,Science,Modern\n")
    assert "not a number" in _one_line_error(path)


def test_minimal_file_gets_row_index_ids(tmp_path: Path) -> None:
    people = load_people(_write(tmp_path, "name,field,era\nA,Science,Modern\nB,Poetry,Ancient\n"))
    assert people.person_id.tolist() == [0, 1]
    assert people.fields == ["Science", "Poetry"]  # canonical fields first, then others
    assert people.eras == ["Ancient", "Modern"]
    assert people.frame["hpi"].null_count() == 2


def test_exclusions(built: Path) -> None:
    full = load_people(built)
    people = load_people(built, exclude_fields=("outlaws",), exclude_occupations=("Pirate",))
    outlaws = int((full.frame["field"] == "Outlaws").sum())
    assert 0 < outlaws and len(people) == len(full) - outlaws
    assert "Outlaws" not in people.fields
    people = load_people(built, exclude_occupations=("PORNOGRAPHIC ACTOR", "mafioso"))
    assert not set(people.frame["occupation"].to_list()) & {"PORNOGRAPHIC ACTOR", "MAFIOSO"}
    message = _one_line_error(built, exclude_fields=("Wizards",))
    assert "valid:" in message and "Science" in message
    assert "WIZARD" in _one_line_error(built, exclude_occupations=("WIZARD",))


def test_filter_and_counts(built: Path) -> None:
    people = load_people(built)
    top = filter_people(people, fields=["science"], eras=["Modern"], top=5)
    assert top.height == 5
    assert set(top["field"]) == {"Science"} and set(top["era"]) == {"Modern"}
    assert top["hpi"].is_sorted(descending=True)
    curie = filter_people(people, name="CURIE")
    assert "Marie Curie" in curie["name"].to_list()
    counts = people_counts(people.frame)
    assert counts["field"]["people"].sum() == counts["era"]["people"].sum() == 10_000
    with pytest.raises(PrefixoptError, match="valid:"):
        filter_people(people, eras=["Jurassic"])
