"""Shared fixtures: paths to the shared data, a people table built from it, and ONE real vLLM
engine per test session (the embedded SmolLM2-135M-Instruct on the CPU build here), used by
every `engine` test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from prefixopt import runs
from prefixopt.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
BENCH_DIR = SHARED_DATA / "benchmarks"
PANTHEON = SHARED_DATA / "people" / "pantheon_1_0.tsv"


@pytest.fixture(scope="session")
def bench_dir() -> Path:
    if not BENCH_DIR.is_dir():
        pytest.skip(f"shared benchmark data not found at {BENCH_DIR}")
    return BENCH_DIR


@pytest.fixture(scope="session")
def pantheon_path() -> Path:
    if not PANTHEON.is_file():
        pytest.skip(f"Pantheon source not found at {PANTHEON}")
    return PANTHEON


@pytest.fixture(scope="session")
def people_csv(tmp_path_factory, pantheon_path) -> str:
    """The people table built from Pantheon into a temp dir, once per session (a path str)."""
    from prefixopt.people_build import write_people

    path, _ = write_people(tmp_path_factory.mktemp("people") / "people.csv", pantheon_path)
    return str(path)


@pytest.fixture(scope="session")
def real_engine():
    """The real engine with the embedded model, built once for the whole session."""
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
    from prefixopt.config import EngineConfig
    from prefixopt.engines.vllm_engine import build_engine

    return build_engine(EngineConfig(max_model_len=2048))


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_main(capsys, *args: str) -> Result:
    """`prefixopt ARGS` in-process through the console-script entry point, as a user calls it
    (flag normalisation, one-line errors, exit codes): code, stdout, stderr."""
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return Result(code, out, err)


class WrappedEngine:
    """An engine passed through, with a hook before every run call: plumbing tests count the
    calls, kill the engine or press Ctrl-C at the n-th. Never a stand-in for its answers."""

    def __init__(self, inner, before_run=lambda n, requests, mode: None):
        self.inner, self.before_run, self.calls = inner, before_run, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def run(self, requests, mode, **kw):
        self.calls.append(mode)
        self.before_run(len(self.calls), requests, mode)
        return self.inner.run(requests, mode, **kw)


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    """ONE `vllm serve` (through prefixopt.engines.serve) on 127.0.0.1 with the embedded model for
    the session: .url (…/v1), .model (served name), .port, .log; .kill() SIGKILLs it (server and
    engine core) and .restart() starts it again on the same port. Dev routes are on
    (POST /reset_prefix_cache). Stopped at the end of the session."""
    from prefixopt.config import EngineConfig
    from prefixopt.engines.ports import free_port
    from prefixopt.engines.serve import start_server

    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    log = tmp_path_factory.mktemp("vllm_server") / "server.log"
    server = start_server(EngineConfig(max_model_len=2048), port=free_port(), log=log,
                          dev_mode=True)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


TIMING = ["generate_s", "wall_s", "host_s"]  # columns that differ between identical runs


def study_tables(study_dir: Path) -> dict[str, pl.DataFrame]:
    """Every run's tables of a study (timing columns dropped), its evals, and the study
    report's: what two studies that must be equal are compared by."""
    out = {}
    for run in sorted((study_dir / "runs").iterdir()):
        for t in runs.PART_TABLES:
            out[f"{run.name}/{t}"] = runs.scan(run, t).collect().drop(TIMING, strict=False)
        for f in sorted((run / "eval").glob("*.parquet")):
            out[f"{run.name}/eval/{f.stem}"] = pl.read_parquet(f)
    for f in sorted((study_dir / "report").glob("*.parquet")):
        out[f"report/{f.stem}"] = pl.read_parquet(f)
    return out


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value) + '"'


def synthetic_study_spec(path: Path, name: str, out: Path, *, budgets: list[int],
                         seeds: list[int], train: dict, eval: dict, grid: dict | None = None,
                         synthetic: dict | None = None, transfer: bool | None = None) -> Path:
    """Write a one-model, ARC-Easy study spec on the synthetic engine (the small studies the
    plumbing tests run) to `path`: [grid] budgets/seeds (+ `grid`'s axes), [train], [eval],
    [transfer] when given, [synthetic] when planted."""
    sections = {"grid": {"models": ["smollm2-135m"], "benchmarks": ["arc_easy"],
                         "budgets": budgets, "seeds": seeds, **(grid or {})},
                "train": train, "eval": eval}
    if transfer is not None:
        sections["transfer"] = {"enabled": transfer}
    if synthetic:
        sections["synthetic"] = synthetic
    lines = [f'name = "{name}"', 'engine = "synthetic"', f'output_dir = "{out}"']
    for section, keys in sections.items():
        lines += ["", f"[{section}]", *(f"{k} = {_toml(v)}" for k, v in keys.items())]
    path.write_text("\n".join(lines) + "\n")
    return path
