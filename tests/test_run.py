"""`prefixopt run`: train -> eval -> report in one process on ONE engine. A run stopped half way
and resumed gives the same tables as an uninterrupted one; a finished run resumes without an
engine. One real-engine run in a fresh process checks the quiet terminal and the header."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import polars as pl
import pytest
from typer.testing import CliRunner

from prefixopt import runs
from prefixopt.cli import app

SMALL = ["-k", "4", "-b", "6", "--train-split", "train[:60]", "--eval-split", "test[:40]",
         "--eval-top-k", "2", "--eval-num-random", "2", "--eval-bootstrap-samples", "200"]
TIMING = ["generate_s", "wall_s", "host_s"]


def _run(*args: str) -> dict:
    result = CliRunner().invoke(app, ["run", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


def _tables(run_dir) -> dict[str, pl.DataFrame]:
    out = {t: runs.scan(run_dir, t).collect().drop(TIMING, strict=False)
           for t in runs.PART_TABLES}
    out["eval"] = runs.scan(run_dir, "eval/test_start-40").collect()
    out["summary"] = runs.scan(run_dir, "eval/test_start-40_summary").collect()
    return out


def test_run_resumed_half_way_equals_uninterrupted(tmp_path, bench_dir, monkeypatch):
    monkeypatch.setenv("PREFIXOPT_DATA_DIR", str(bench_dir))
    common = ["--engine", "synthetic", "--output-dir", str(tmp_path), *SMALL]
    whole = _run(*common, "--run-name", "whole", "--iterations", "4")
    assert whole["train"]["iterations_done"] == 4 and whole["eval"]["num_questions"] == 40
    assert (tmp_path / "whole" / "report" / "report.md").is_file()

    # half: two iterations of training only, then `run --resume` finishes training and evals
    half = CliRunner().invoke(app, ["train", *common[:4], *SMALL[:6], "--run-name", "half",
                                    "--iterations", "2"])
    assert half.exit_code == 0, half.output
    resumed = _run("--resume", str(tmp_path / "half"), "--iterations", "4", *SMALL[6:])
    assert resumed["train"]["iterations_done"] == 4
    a, b = _tables(tmp_path / "whole"), _tables(tmp_path / "half")
    for name in a:
        assert a[name].equals(b[name]), name

    # finished: a second resume only rewrites the report, with no engine at all
    again = _run("--resume", str(tmp_path / "half"), "--eval-split", "test[:40]")
    assert again["train"] == {"skipped": True, "engine_start_s": 0.0}
    assert again["eval"] == {"skipped": True}
    assert again["report"]["report_md"].endswith("report.md")


@pytest.mark.engine
def test_real_run_is_quiet_and_says_what_it_runs(tmp_path, bench_dir):
    """The README's main command in miniature, as a user runs it: a fresh process, the real
    engine; stderr has the header, the result and no library warnings."""
    env = {**os.environ, "PREFIXOPT_DATA_DIR": str(bench_dir)}
    cmd = [sys.executable, "-m", "prefixopt.cli", "run", "--output-dir", str(tmp_path),
           "--run-name", "quiet", "--iterations", "1", "-k", "2", "-b", "2",
           "--eval-num-questions", "4", "--eval-top-k", "1", "--eval-num-random", "1",
           "--no-eval-handwritten", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1500,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert not [line for line in lines if "WARNING" in line], proc.stderr
    assert lines[0].startswith("prefixopt run: smollm2-135m on cpu, ")
    assert str(tmp_path / "quiet") in lines[0]
    out = json.loads(proc.stdout[proc.stdout.index("{"):])
    run_dir = tmp_path / "quiet"
    meta = runs.read_config(run_dir)
    assert out["dtype"] in ("float32", "bfloat16") and meta["versions"]["dtype"] == out["dtype"]
    assert out["dtype"] in lines[0]
    assert out["engine_start_s"] > 0 and out["train"]["engine_start_s"] == out["engine_start_s"]
    assert out["eval"]["num_questions"] == 4
    log = (run_dir / "engine.log").read_text()
    assert "WARNING" in log or "INFO" in log  # the engine's own words went here
