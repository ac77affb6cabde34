"""`prefixopt setup`, `prefixopt data`, `prefixopt people`: the data layer's commands.

Thin wrappers: options -> one library call (prefixopt.people, prefixopt.benchmarks,
prefixopt.models) -> a rich table on stdout, or `--json`. PREFIXOPT_DATA_DIR is read here
(the CLI layer) as the default of --data-dir; the library itself reads no environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from prefixopt.commands.common import err_console, fail, out_console, print_json
from prefixopt.benchmarks import resolve_data_dir
from prefixopt import people as people_table
from prefixopt import people_build
from prefixopt import benchmarks, models
from prefixopt.people import filter_people, load_people, people_counts

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="PREFIXOPT_DATA_DIR",
        help="Folder with <benchmark>/<split>.jsonl (default: ../shared/data/benchmarks when it "
        "exists, else the Hugging Face hub). Env: PREFIXOPT_DATA_DIR.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print a machine-readable summary.")]


def _status(line: str) -> None:
    """A progress line on stderr, never wrapped (paths stay copyable)."""
    err_console.print(line, soft_wrap=True, highlight=False)


def _status_table(rows: list[dict[str, Any]], data_dir: Path | None) -> Table:
    root = resolve_data_dir(data_dir)
    where = f"local files under {root}" if root is not None else "no local data dir"
    table = Table(title=f"benchmarks ({where}; hub = read with `datasets`)")
    for col, justify in (("benchmark", "left"), ("split", "left"), ("rows", "right"),
                         ("default for", "left"), ("source", "left")):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        rows_text = f"{r['rows']:,}" if r["rows"] is not None else "[dim]hub[/]"
        source = r["source"]
        if r["local"] and root is not None:
            source = str(Path(source).relative_to(root))
        table.add_row(r["benchmark"], r["split"], rows_text, r["default_for"], source)
    return table


def _setup_people(out: Path | None, source: Path | None, rebuild: bool) -> tuple[Path, int, bool]:
    """Validate the people CSV (the committed one by default), or first rebuild it from
    Pantheon. Returns (path, rows, written); prints one status line."""

    path = out or people_table.DEFAULT_PEOPLE_PATH
    written = False
    if rebuild:
        source = source or people_build.DEFAULT_PANTHEON_PATH
        path, written = people_build.write_people(path, source, force=True)
        state = f"rebuilt from {source}" if written else f"up to date with {source}"
    elif not path.is_file():
        fail(
            f"people file {path} not found; restore it (git checkout -- {path.name}) or "
            "rebuild it with --rebuild-people --people-source PATH"
        )
    else:
        state = "checked"
    n = len(people_table.load_people(path))
    _status(f"people: {path} ({n:,} people, {state})")
    return path, n, written


def setup(
    rebuild_people: Annotated[
        bool,
        typer.Option(
            "--rebuild-people",
            help="Rebuild the people CSV from the Pantheon 1.0 TSV (--people-source) and "
            "replace it (atomic write). Without it the committed file is only checked.",
        ),
    ] = False,
    people_source: Annotated[
        Path | None,
        typer.Option(
            help="Pantheon 1.0 TSV for --rebuild-people (default: "
            "../shared/data/people/pantheon_1_0.tsv); giving it implies --rebuild-people."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="People CSV to check, or to write with --rebuild-people "
            "(default: notable_people_10k.csv)."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option(hidden=True, help="Old spelling of --rebuild-people.")
    ] = False,
    model: Annotated[
        bool, typer.Option(help="Prepare the embedded model (smollm2-135m).")
    ] = True,
    data_dir: DataDirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Check notable_people_10k.csv (or rebuild it), prepare the embedded model, check the
    benchmark data."""

    rebuild = rebuild_people or force or people_source is not None
    path, n, written = _setup_people(out, people_source, rebuild)
    model_dir = None
    if model:
        already = models.is_prepared(models.embedded_dir())
        if not already:
            _status("model: converting SmolLM2-135M-Instruct GGUF -> safetensors ...")
        model_dir = models.prepare_embedded()
        _status(
            f"model: {models.EMBEDDED_ALIAS} -> {model_dir} "
            f"({'up to date' if already else 'prepared'})"
        )
    rows = benchmarks.split_status(data_dir)
    if json:
        print_json(
            {
                "people": {"path": str(path), "rows": n, "written": written},
                "model": str(model_dir) if model_dir else None,
                "benchmarks": rows,
            }
        )
    else:
        out_console.print(_status_table(rows, data_dir))

def data(data_dir: DataDirOpt = None, json: JsonOpt = False) -> None:
    """List benchmarks, splits, row counts and where each is read from."""

    rows = benchmarks.split_status(data_dir)
    if json:
        print_json(rows)
    else:
        out_console.print(_status_table(rows, data_dir))

def people(
    field: Annotated[
        list[str] | None, typer.Option("--field", help="Keep this field (repeatable).")
    ] = None,
    era: Annotated[
        list[str] | None, typer.Option("--era", help="Keep this era (repeatable).")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Keep names containing this (case-insensitive).")
    ] = None,
    top: Annotated[int, typer.Option(help="Show the N highest-HPI matches (0 = all).")] = 20,
    counts: Annotated[
        bool, typer.Option("--counts", help="Show people per field and per era instead.")
    ] = False,
    people_path: Annotated[
        Path | None,
        typer.Option("--people", help="People CSV (default: notable_people_10k.csv)."),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """Browse and filter the people table."""

    table_ = load_people(people_path)
    frame = filter_people(
        table_, fields=field or (), eras=era or (), name=name, top=None if counts else top
    )
    if counts:
        result = people_counts(frame)
        if json:
            print_json({k: dict(v.iter_rows()) for k, v in result.items()})
            return
        for key, df in result.items():
            t = Table(title=f"people per {key} ({frame.height:,} matching)")
            t.add_column(key)
            t.add_column("people", justify="right")
            for value, count in df.iter_rows():
                t.add_row(value, f"{count:,}")
            out_console.print(t)
        return
    if json:
        print_json(frame.to_dicts())
        return
    shown = ["person_id", "name", "field", "era", "birth_year", "hpi", "occupation", "country"]
    shown = [c for c in shown if c in frame.columns]
    t = Table(title=f"{frame.height:,} people from {table_.path}")
    for c in shown:
        t.add_column(c, justify="right" if c in ("person_id", "birth_year", "hpi") else "left")
    for row in frame.select(shown).iter_rows():
        t.add_row(*("" if v is None else f"{v:.2f}" if isinstance(v, float) else str(v)
                    for v in row))  # fmt: skip
    out_console.print(t)


def register(app: typer.Typer) -> None:
    app.command()(setup)
    app.command()(data)
    app.command()(people)
