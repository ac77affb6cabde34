"""The CLI surface and the data commands (`setup`, `data`, `people`) through the console-script
entry point (stderr, exit codes) or typer's CliRunner (stdout JSON)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Result, run_main
from typer.testing import CliRunner

from prefixopt import people, people_build
from prefixopt.cli import app

DESIGN_COMMANDS = ("setup", "data", "train", "eval", "report", "simulate", "bench", "people")
runner = CliRunner()


def _run_subprocess(*args: str) -> subprocess.CompletedProcess:
    """The real console script in a fresh process (used once, for the module's people file)."""
    return subprocess.run(
        [sys.executable, "-m", "prefixopt.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def cli(capsys, monkeypatch):
    """Run the console-script entry point in-process, as a user would call `prefixopt ARGS`
    (flag normalisation, one-line errors, exit codes); returns code, stdout, stderr."""

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        return run_main(capsys, *args)

    return run


def assert_one_line_error(proc: Result, *needles: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:")
    for needle in needles:
        assert needle in lines[0]


def test_help_lists_every_design_command() -> None:
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for command in DESIGN_COMMANDS:
        assert f" {command} " in result.output, command


@pytest.fixture(scope="module")
def people_csv(pantheon_path: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("setup") / "people.csv"
    proc = _run_subprocess(
        "setup", "--people-source", str(pantheon_path), "--out", str(out), "--no-model", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["people"] == {"path": str(out), "rows": 10_000, "written": True}
    return out


def test_setup_is_idempotent(people_csv: Path, pantheon_path: Path, cli) -> None:
    before = people_csv.read_bytes()
    proc = cli(
        "setup",
        "--people-source",
        str(pantheon_path),
        "--out",
        str(people_csv),
        "--no-model",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["people"]["written"] is False
    assert people_csv.read_bytes() == before
    assert "up to date" in proc.stderr


def test_setup_names_a_missing_source(tmp_path: Path, cli) -> None:
    proc = cli(
        "setup",
        "--people-source",
        str(tmp_path / "nope.tsv"),
        "--out",
        str(tmp_path / "p.csv"),
        "--no-model",
    )
    assert_one_line_error(proc, "nope.tsv", "--people-source")


def test_setup_checks_the_committed_table(cli, tmp_path: Path) -> None:
    proc = cli("setup", "--no-model", "--json", "--data-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["people"] == {
        "path": str(people.DEFAULT_PEOPLE_PATH),
        "rows": 10_000,
        "written": False,
    }
    assert "10,000 people, checked" in proc.stderr
    proc = cli("setup", "--no-model", "--out", str(tmp_path / "none.csv"))
    assert_one_line_error(proc, "none.csv", "--rebuild-people")


def test_rebuild_without_a_source_is_one_line(cli, tmp_path: Path, monkeypatch) -> None:
    missing = tmp_path / "shared" / "pantheon_1_0.tsv"
    monkeypatch.setattr(people_build, "DEFAULT_PANTHEON_PATH", missing)
    out = tmp_path / "p.csv"
    proc = cli("setup", "--rebuild-people", "--out", str(out), "--no-model")
    assert proc.returncode == 2
    assert_one_line_error(proc, str(missing), "--people-source")
    assert not out.exists()


def test_setup_in_a_clone_without_shared(tmp_path: Path, bench_dir: Path) -> None:
    """A clone alone (no ../shared beside it) has the committed table: setup --no-model works,
    and only --rebuild-people asks for the Pantheon source."""
    repo = people.REPO_ROOT
    if shutil.which("git") is None or not (repo / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    clone = tmp_path / "prefixopt"
    subprocess.run(["git", "clone", "--quiet", str(repo), str(clone)], check=True,
                   capture_output=True, timeout=120)  # fmt: skip
    assert not (clone.parent / "shared").exists()
    env = {k: v for k, v in os.environ.items() if k != "PREFIXOPT_DATA_DIR"}
    env["PYTHONPATH"] = str(clone)  # import the clone's package, not the editable install

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "prefixopt.cli", "setup", "--no-model", *args],
                              cwd=clone, env=env, capture_output=True, text=True, timeout=300,
                              check=False)  # fmt: skip

    proc = run("--json", "--data-dir", str(bench_dir))
    assert proc.returncode == 0, proc.stderr
    table = clone / "notable_people_10k.csv"
    assert json.loads(proc.stdout)["people"] == {
        "path": str(table),
        "rows": 10_000,
        "written": False,
    }
    assert "10,000 people" in proc.stderr
    assert "shared" not in proc.stderr.replace(str(bench_dir), "")
    proc = run("--rebuild-people", "--data-dir", str(bench_dir))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--people-source" in lines[0], proc.stderr
    assert str(clone.parent / "shared" / "data" / "people" / "pantheon_1_0.tsv") in lines[0]


def test_data_reports_the_design_counts(bench_dir: Path) -> None:
    result = runner.invoke(app, ["data", "--data-dir", str(bench_dir), "--json"])
    assert result.exit_code == 0, result.output
    rows = {(r["benchmark"], r["split"]): r["rows"] for r in json.loads(result.output)}
    assert rows[("mmlu", "test")] == 14_042
    assert rows[("gsm8k", "test")] == 1_319
    assert rows[("arc_easy", "test")] == 2_376
    assert rows[("arc_challenge", "test")] == 1_172
    assert rows[("hellaswag", "validation")] == 10_042


def test_data_reads_the_env_default(tmp_path: Path, cli) -> None:
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text(
        '{"question": "q", "answer": "#### 1"}\n', encoding="utf-8"
    )
    result = runner.invoke(app, ["data", "--json"], env={"PREFIXOPT_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    rows = {(r["benchmark"], r["split"]): r for r in json.loads(result.output)}
    assert rows[("gsm8k", "test")]["rows"] == 1
    assert rows[("mmlu", "test")]["source"].startswith("hub:")
    proc = cli("data", env={"PREFIXOPT_DATA_DIR": str(tmp_path / "missing")})
    assert_one_line_error(proc, "missing", "--data-dir")


def test_people_browse(people_csv: Path, cli) -> None:
    result = runner.invoke(
        app,
        ["people", "--people", str(people_csv), "--field", "Mathematics", "--top", "3", "--json"],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 3 and {r["field"] for r in rows} == {"Mathematics"}
    assert [r["hpi"] for r in rows] == sorted((r["hpi"] for r in rows), reverse=True)
    result = runner.invoke(app, ["people", "--people", str(people_csv), "--counts", "--json"])
    counts = json.loads(result.output)
    assert sum(counts["field"].values()) == sum(counts["era"].values()) == 10_000
    result = runner.invoke(
        app, ["people", "--people", str(people_csv), "--name", "newton"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0 and "Isaac Newton" in result.output
    proc = cli("people", "--people", str(people_csv), "--era", "Jurassic")
    assert_one_line_error(proc, "Jurassic", "valid:")


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ("name,field,era\nA,Science,Modern\nA,Music,Modern\n", ("duplicate name 'A'", "row 2")),
        ("name,era\nA,Modern\n", ("missing column(s) field",)),
        ("name,field,era\n,Science,Modern\n", ("row 1", "empty name")),
    ],
)
def test_bad_people_files_give_one_line(
    cli, tmp_path: Path, text: str, needles: tuple[str, ...]
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    assert_one_line_error(cli("people", "--people", str(path)), str(path), *needles)


def test_non_utf8_people_file(tmp_path: Path, cli) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("name,field,era\nRen\xe9,Music,Modern\n".encode("latin-1"))
    assert_one_line_error(cli("people", "--people", str(path)), "UTF-8", "row 1")
