"""`prefixopt study` on the synthetic engine: the JSON lists every cell with its run directory
and status; one engine per model; a study killed in its third cell and resumed gives the same
tables as an uninterrupted one; the transfer matrix equals a direct computation from the eval
tables; `prefixopt report STUDY_DIR` writes report.md and its figures; spec errors are one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import WrappedEngine, run_main, study_tables
from typer.testing import CliRunner

from prefixopt import cli, runs, stats
from prefixopt.commands import study as study_cmd

from prefixopt.study import grid
from prefixopt.study.manifest import read_manifest
from prefixopt.cli import app

SPEC = """
name = "{name}"
engine = "synthetic"
output_dir = "{out}"

[grid]
models = {models}
benchmarks = ["arc_easy", "mmlu"]
budgets = {budgets}
seeds = [0, 1]

[train]
samples_per_iteration = 4
batch_size = 8

[eval]
num_questions = 30
top_k = 2
num_random = 1
bootstrap_samples = 200
seed = 0

[synthetic]
planted_field = ["arc_easy=Science", "mmlu=Philosophy"]
delta = 0.3
"""


@pytest.fixture(autouse=True)
def _data(bench_dir, monkeypatch):
    monkeypatch.setenv("PREFIXOPT_DATA_DIR", str(bench_dir))


def _spec(tmp_path: Path, name: str = "s", models: str = '["smollm2-135m"]',
          budgets: str = "[64, 128]", extra: str = "") -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(SPEC.format(name=name, out=tmp_path / "studies", models=models,
                                budgets=budgets) + extra)
    return path


def _study(*args: str) -> dict:
    result = CliRunner().invoke(app, ["study", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


def _fails(capsys, *args: str) -> str:
    """A bad study command: exit status 2 and ONE error line on stderr (returned)."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["study", *args])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("error:") == 1, err
    return err


def test_study_killed_in_its_third_cell_resumes_to_the_same_tables(tmp_path, monkeypatch,
                                                                   capsys):
    whole = _study(str(_spec(tmp_path, "whole")))
    assert whole["complete"] and len(whole["cells"]) == 8  # 2 benchmarks x 2 budgets x 2 seeds
    for c in whole["cells"]:
        assert c["status"] == "done" and Path(c["run_dir"]).is_dir()
        assert Path(c["run_dir"]).name == c["id"]
        assert (Path(c["run_dir"]) / "eval" / f"{c['evals']['mmlu']}.parquet").is_file()
    assert whole["cells"][0]["id"] == "smollm2-135m__arc_easy__b64__s0"
    assert whole["cells"][0]["evals"] == {"arc_easy": "test_n30_seed0", "mmlu": "transfer_mmlu"}

    # the engine dies in the third cell's third iteration: cells 1-2 make 2 train + 2 eval calls
    real = grid.build_engine

    def die(n, requests, mode):
        if n == 4 + 4 + 3:
            raise RuntimeError("killed")

    monkeypatch.setattr(grid, "build_engine", lambda plan, ecfg: (
        WrappedEngine(real(plan, ecfg)[0], die), 0.0))
    spec = _spec(tmp_path, "half")
    killed = CliRunner().invoke(app, ["study", str(spec), "--json"])
    assert killed.exit_code != 0 and isinstance(killed.exception, RuntimeError)
    manifest = read_manifest(tmp_path / "studies" / "half")
    assert [c["status"] for c in manifest["cells"]] == ["done", "done", "failed"] + ["pending"] * 5
    third = tmp_path / "studies" / "half" / manifest["cells"][2]["run_dir"]
    assert len(list((third / "iterations").glob("*.parquet"))) == 2  # half of its 4

    monkeypatch.setattr(grid, "build_engine", real)
    assert "--resume" in _fails(capsys, str(spec))  # the study exists: refused without it
    changed = _spec(tmp_path, "half", budgets="[64, 256]")
    assert "differs" in _fails(capsys, str(changed), "--resume")
    spec = _spec(tmp_path, "half")
    resumed = _study(str(spec), "--resume")
    assert resumed["complete"]
    a = study_tables(tmp_path / "studies" / "whole")
    b = study_tables(tmp_path / "studies" / "half")
    assert a.keys() == b.keys() and "report/transfer" in a
    for name in a:
        assert a[name].equals(b[name]), name


def test_one_engine_per_model_and_the_transfer_matrix_by_hand(tmp_path, monkeypatch):
    calls = []
    real = grid.build_engine

    def counting(plan, ecfg):
        calls.append(ecfg.model)
        return real(plan, ecfg)

    monkeypatch.setattr(grid, "build_engine", counting)
    out = _study(str(_spec(tmp_path, models='["model-a", "model-b"]', budgets="[64]")))
    assert calls == ["model-a", "model-b"] and len(out["cells"]) == 8
    assert {c["model"] for c in out["cells"]} == {"model-a", "model-b"}
    for c in out["cells"]:  # each run rebuilds the study's planted engine from config.json
        meta = runs.read_config(c["run_dir"])
        assert meta["synthetic"]["planted_person_ids_by_benchmark"].keys() == {"arc_easy",
                                                                              "mmlu"}
        assert meta["config"]["engine"]["kind"] == "synthetic"

    study_dir = Path(out["study_dir"])
    transfer = pl.read_parquet(study_dir / "report" / "transfer.parquet")
    assert len(transfer) == 4 * 2  # (2 models x 2 benchmarks) rows x 2 evaluated-on columns
    for r in transfer.iter_rows(named=True):
        cells = [c for c in out["cells"] if c["group"] == r["trained_on"]]
        learned, none = [], []
        for c in cells:
            rows = pl.read_parquet(Path(c["run_dir"]) / "eval" / f"{r['eval']}.parquet")
            wide = (rows.filter(pl.col("prefix_kind").is_in(["learned", "none"]))
                    .sort("question_id").pivot(on="prefix_index", index="question_id",
                                               values="correct"))
            kinds = dict(zip(rows["prefix_index"], rows["prefix_kind"], strict=True))
            for col in wide.columns[1:]:
                (learned if kinds[int(col)] == "learned" else none).append(wide[col].to_numpy())
        a, b = np.array(learned, float), np.array(none, float)  # (R*k, Q), (R, Q)
        assert r["runs"] == 2 and r["questions"] == 30 and len(a) == 4
        assert r["diff"] == pytest.approx((a.mean(axis=0) - b.mean(axis=0)).mean())
        assert r["learned_acc"] == pytest.approx(a.mean()) and r["none_acc"] == b.mean()
        c = stats.group_contrast("x", a, b, stats.stats_rng(0), 200)
        assert (r["low"], r["high"]) == pytest.approx((c.low, c.high))
        assert r["significant"] == (not c.low <= 0 <= c.high)
        assert r["own"] == (r["evaluated_on"] == r["benchmark"])

    budget = pl.read_parquet(study_dir / "report" / "budget.parquet")
    people = runs.run_people(out["cells"][0]["run_dir"]).frame  # one table for the study
    for r in budget.iter_rows(named=True):  # planted mass: the final policy's mass, by hand
        masses = []
        for c in (c for c in out["cells"] if c["group"] == r["group"]):
            ids = runs.read_config(c["run_dir"])["synthetic"][
                "planted_person_ids_by_benchmark"][c["benchmark"]]
            with_probs = people.with_columns(prob=runs.final_probs(c["run_dir"]))
            masses.append(with_probs.filter(pl.col("person_id").is_in(ids))["prob"].sum())
        assert r["planted_mass"] == pytest.approx(np.mean(masses)) and r["seeds"] == 2

    # report on the study directory: the same tables, report.md and figures that are PNGs
    rep = CliRunner().invoke(app, ["report", str(study_dir), "--json"])
    assert rep.exit_code == 0, rep.output
    result = json.loads(rep.stdout[rep.stdout.index("{"):])
    assert pl.read_parquet(result["tables"]["transfer"]).equals(transfer)
    text = Path(result["report_md"]).read_text()
    assert "## Transfer matrix" in text and "## Budget curves" in text
    names = {Path(f).name for f in result["figures"]}
    assert {"transfer_matrix.png", "learned_vs_none.png", "field_mass.png",
            "distribution_matrices.png"} <= names
    for f in result["figures"]:
        assert Path(f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({Path(f).name})" in text
    jsd = pl.read_parquet(study_dir / "report" / "jsd.parquet")
    assert jsd.columns == ["group", *jsd["group"].to_list()]
    assert np.allclose(jsd.drop("group").to_numpy(), jsd.drop("group").to_numpy().T)


def test_spec_errors_are_one_line_before_any_engine(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(grid, "build_engine", lambda *a: pytest.fail("engine built"))
    cases = {
        "[grid]\nbogus = [1]\n": "unknown",
        "[train]\nseed = 3\n": "valid:",
        "[transfer]\nenabled = true\nbenchmarks = ['gsm8k', 'nope']\n": "nope",
    }
    for i, (extra, needle) in enumerate(cases.items()):
        spec = _spec(tmp_path, f"bad{i}")
        text = spec.read_text()
        if extra.startswith("[grid]"):
            text = text.replace("seeds = [0, 1]", "seeds = [0, 1]\nbogus = [1]")
        elif extra.startswith("[train]"):
            text = text.replace("batch_size = 8", "batch_size = 8\nseed = 3")
        else:
            text += extra
        spec.write_text(text)
        assert needle in _fails(capsys, str(spec))
    small = _spec(tmp_path, "tiny", budgets="[16]")  # less than one K x B = 32 iteration
    assert "less than one iteration" in _fails(capsys, str(small))
    assert not (tmp_path / "studies").exists()  # nothing created


def test_grid_axes_ids_and_evals_of_a_plan(tmp_path):
    from prefixopt.study.spec import load_spec

    spec = _spec(tmp_path, "axes", budgets="[64]")
    text = spec.read_text().replace('benchmarks = ["arc_easy", "mmlu"]',
                                    'benchmarks = ["arc_easy,mmlu", "mmlu"]')
    spec.write_text(text.replace("seeds = [0, 1]", "seeds = [0]\nlearning_rate = [0.05, 0.1]"))
    plan = grid.prepare(load_spec(spec))  # checks and loads; creates nothing
    assert not (tmp_path / "studies").exists()
    ids = [c.id for c in plan.cells]
    assert ids == ["smollm2-135m__arc_easy+mmlu__b64__s0__learning_rate-0.05",
                   "smollm2-135m__arc_easy+mmlu__b64__s0__learning_rate-0.1",
                   "smollm2-135m__mmlu__b64__s0__learning_rate-0.05",
                   "smollm2-135m__mmlu__b64__s0__learning_rate-0.1"]
    cell = plan.cells[1]
    assert cell.cfg.learning_rate == 0.1 and cell.cfg.iterations == 2  # 64 // (4 x 8)
    assert cell.cfg.task.benchmark == "arc_easy,mmlu" and cell.cfg.engine.kind == "synthetic"
    assert cell.group == "smollm2-135m__arc_easy+mmlu__learning_rate-0.1"
    # a multi-benchmark run evaluates each of its benchmarks; the mmlu run transfers to arc
    names = {c.id: {b: grid._eval_name(e) for b, e in plan.evals[c.id].items()}
             for c in plan.cells}
    assert names[cell.id] == {"arc_easy": "arc_easy_test_n30_seed0",
                              "mmlu": "mmlu_test_n30_seed0"}
    assert names[plan.cells[2].id] == {
        "mmlu": "test_n30_seed0", "arc_easy": "transfer_arc_easy"}
    assert all(e.seed == 0 and e.num_questions == 30 for ev in plan.evals.values()
               for e in ev.values())  # every run: the same held-out questions


def test_example_specs_parse():
    from prefixopt.study.spec import cells, load_spec

    examples = sorted((Path(__file__).parent.parent / "examples").glob("*.toml"))
    assert examples
    for path in examples:
        spec = load_spec(path)
        assert cells(spec) and spec.name


def test_ctrl_c_stops_after_the_iteration_and_resume_finishes(tmp_path, monkeypatch):
    import signal

    real = grid.build_engine

    def ctrl_c(n, requests, mode):  # the first Ctrl-C lets the iteration finish, then it stops
        if n == 1:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(grid, "build_engine", lambda plan, ecfg: (
        WrappedEngine(real(plan, ecfg)[0], ctrl_c), 0.0))
    spec = _spec(tmp_path, "ctrl", budgets="[64]")
    stopped = CliRunner().invoke(app, ["study", str(spec), "--json"])
    assert stopped.exit_code == 130, stopped.output
    out = json.loads(stopped.stdout[stopped.stdout.index("{"):])
    assert [c["status"] for c in out["cells"]] == ["interrupted"] + ["pending"] * 3
    assert out["report"] is None and not out["complete"]
    first = Path(out["cells"][0]["run_dir"])
    assert len(list((first / "iterations").glob("*.parquet"))) == 1  # its iteration was kept
    monkeypatch.setattr(grid, "build_engine", real)
    assert _study(str(spec), "--resume")["complete"]


def test_a_study_logged_to_a_file_prints_timestamped_progress_lines(tmp_path, monkeypatch,
                                                                       capsys):
    # stderr a file, not a terminal (a study run in the background): plain lines, one per
    # stage and at most one per LOG_EVERY_S while training, with the time left
    monkeypatch.setattr(study_cmd, "LOG_EVERY_S", 0.0)  # every iteration
    spec = _spec(tmp_path, "logged", budgets="[64]")
    res = run_main(capsys, "study", str(spec))
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("[")]
    cells = read_manifest(tmp_path / "studies" / "logged")["cells"]
    train = [ln for ln in lines if " train: iteration " in ln]
    assert len(train) == sum(c["iterations"] for c in cells)  # LOG_EVERY_S 0: every iteration
    # counted in training evaluations (every learner spends its budget; halving's iteration
    # count differs from the configured one): each line's count is the running sum
    total = sum(c["budget"] for c in cells)
    done = np.cumsum([c["budget"] // c["iterations"] for c in cells
                      for _ in range(c["iterations"])])  # reinforce: K x B each iteration
    assert all(f"study {d:,}/{total:,} training evaluations" in ln for d, ln in zip(done, train,
                                                                                  strict=True))
    assert "h of training left" in train[1] and "h of training left" not in train[0]
    for c in cells:  # each cell's stages named, with a timestamp
        assert any(ln.endswith(f"{c['id']} train") for ln in lines)
    assert "━" not in res.stderr  # no bar drawn into the file
