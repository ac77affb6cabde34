"""Budget accounting (docs/planning.md "Budget accounting") on the synthetic engine: the `budget`
keys in train/run/eval/study --json, training numbers equal to sums over the iterations table,
a stopped-and-resumed run that accumulates, a first estimate kept on resume, the report tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from conftest import synthetic_study_spec
from prefixopt import budget, plan, runs
from prefixopt.cli import app
from prefixopt.study.manifest import read_manifest

SIX = {"estimated_s", "spent_s", "question_evaluations", "prompt_tokens", "computed_tokens",
       "cached_tokens"}
TRAIN = ["--engine", "synthetic", "-k", "4", "-b", "6", "--train-split", "train[:60]"]
EVAL = ["--eval-split", "test[:40]", "--eval-top-k", "2", "--eval-num-random", "2",
        "--eval-bootstrap-samples", "200"]



@pytest.fixture(autouse=True)
def _data(bench_dir, monkeypatch):
    monkeypatch.setenv("PREFIXOPT_DATA_DIR", str(bench_dir))


def _rate(monkeypatch, per_s: float) -> None:
    """A planned throughput for the synthetic engine (the plan has none for it)."""
    monkeypatch.setattr(budget, "evals_per_s", lambda kind: (per_s, "test rate"))


def _cli(*args: str) -> tuple[dict, str]:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("\n{") + 1:]
                      if not result.stdout.startswith("{") else result.stdout), result.stderr


def _shape(b: dict) -> None:
    assert set(b) == SIX | {"train", "eval"}
    assert set(b["train"]) == SIX and set(b["eval"]) == SIX
    for key in SIX - {"estimated_s"}:
        assert b[key] == pytest.approx(b["train"][key] + b["eval"][key]), key
    for p in (b, b["train"], b["eval"]):
        assert p["computed_tokens"] == p["prompt_tokens"] - p["cached_tokens"]


def _iteration_sums(run_dir: Path) -> dict:
    it = runs.scan(run_dir, "iterations").collect()
    starts = sum(s["s"] for s in budget.read(run_dir)["engine_starts"] if s["part"] == "train")
    return {"spent_s": float(it["wall_s"].sum()) + starts,
            "question_evaluations": int(it["num_prompts"].sum()),
            "prompt_tokens": int(it["prompt_tokens"].sum()),
            "cached_tokens": int(it["cached_tokens"].sum())}


def test_train_json_budget_is_the_iterations_table(tmp_path, monkeypatch):
    _rate(monkeypatch, 10.0)
    out, err = _cli("train", *TRAIN, "--output-dir", str(tmp_path), "--run-name", "t",
                    "--iterations", "3")
    b = out["budget"]
    _shape(b)
    sums = _iteration_sums(tmp_path / "t")
    for key, value in sums.items():
        assert b["train"][key] == pytest.approx(value), key
    assert b["train"]["question_evaluations"] == 3 * 4 * 6 == out["evaluations"]
    assert b["eval"]["question_evaluations"] == 0 and b["eval"]["estimated_s"] is None
    # estimated before the engine: 72 evaluations at 10/s plus one engine start, in train
    assert b["train"]["estimated_s"] == pytest.approx(72 / 10 + plan.ENGINE_START_S)
    assert "estimate: ~" in err and "72 question evaluations" in err
    assert "is below the ~50,000 question evaluations" in err  # the learner's need


def test_resumed_run_accumulates_and_keeps_the_first_estimate(tmp_path, monkeypatch):
    _rate(monkeypatch, 10.0)
    first, _ = _cli("train", *TRAIN, "--output-dir", str(tmp_path), "--run-name", "r",
                    "--iterations", "2")
    estimate = first["budget"]["train"]["estimated_s"]
    assert estimate == pytest.approx(48 / 10 + plan.ENGINE_START_S)
    _rate(monkeypatch, 1.0)  # a resumed session estimates otherwise: the first one stays
    out, _ = _cli("run", "--resume", str(tmp_path / "r"), "--iterations", "4", *EVAL)
    b = out["budget"]
    _shape(b)
    assert b["train"]["estimated_s"] == pytest.approx(estimate)
    assert b["train"]["question_evaluations"] == 4 * 4 * 6
    assert b["train"]["spent_s"] > first["budget"]["train"]["spent_s"]
    sums = _iteration_sums(tmp_path / "r")
    for key, value in sums.items():
        assert b["train"][key] == pytest.approx(value), key
    assert len(budget.read(tmp_path / "r")["engine_starts"]) == 2  # one per session
    # the eval: its Responses' counts, estimated at the resumed session's rate before it ran
    rows = runs.scan(tmp_path / "r", "eval/test_start-40").collect()
    assert b["eval"]["question_evaluations"] >= len(rows) > 0
    assert b["eval"]["prompt_tokens"] > 0
    assert b["eval"]["estimated_s"] == pytest.approx(40 * (1 + 2 + 2 + 2 + 2) / 1.0)
    assert b["estimated_s"] == pytest.approx(estimate + b["eval"]["estimated_s"])
    report = (tmp_path / "r" / "report" / "report.md").read_text()
    assert "### Budget" in report and "| train |" in report and "| total |" in report
    assert f"{b['question_evaluations']:,}" in report


def test_header_warns_on_mde_only_when_asked(tmp_path):
    _, err = _cli("run", *TRAIN, *EVAL, "--output-dir", str(tmp_path), "--run-name", "m",
                  "--iterations", "1", "--mde", "0.05")
    assert "cannot detect --mde 0.05" in err
    _, err = _cli("run", *TRAIN, *EVAL, "--output-dir", str(tmp_path), "--run-name", "n",
                  "--iterations", "1")
    assert "cannot detect" not in err and "wall time not estimated" in err


def test_eval_json_budget(tmp_path):
    sim = tmp_path / "sim"
    result = CliRunner().invoke(app, ["simulate", "--planted-field", "Science", "--budget",
                                      "480", "--out", str(sim), "--json"])
    assert result.exit_code == 0, result.output
    out, _ = _cli("eval", str(sim), "--engine", "synthetic", "--num-questions", "30",
                  "--bootstrap-samples", "100")
    b = out["budget"]
    _shape(b)
    rows = runs.scan(sim, f"eval/{out['eval']}").collect()
    assert b["eval"]["question_evaluations"] >= len(rows) > 0
    record = runs.read_config(sim)["evals"][out["eval"]]["budget"]  # one eval: its record
    for key in ("question_evaluations", "prompt_tokens", "computed_tokens", "cached_tokens"):
        assert b["eval"][key] == record[key], key
    start = budget.read(sim)["engine_starts"][0]  # the eval started the engine: in its part
    assert start["part"] == "eval"
    assert b["eval"]["spent_s"] == pytest.approx(record["spent_s"] + start["s"])
    it = runs.scan(sim, "iterations").collect()  # a simulate run's training is counted too
    assert b["train"]["question_evaluations"] == int(it["num_prompts"].sum())


def _two_cell_study(tmp_path: Path) -> Path:
    """A synthetic study of 2 cells (seeds 0, 1) of 48 training evaluations, top-2 evals."""
    return synthetic_study_spec(
        tmp_path / "s.toml", "s", tmp_path / "studies", budgets=[48], seeds=[0, 1],
        train={"samples_per_iteration": 4, "batch_size": 6},
        eval={"num_questions": 20, "top_k": 2, "num_random": 1, "bootstrap_samples": 100},
        synthetic={"planted_field": ["Science"], "delta": 0.3})


def test_study_json_budget_sums_the_cells(tmp_path, monkeypatch):
    _rate(monkeypatch, 20.0)
    spec = _two_cell_study(tmp_path)
    out, err = _cli("study", str(spec))
    b = out["budget"]
    _shape(b)
    study_dir = Path(out["study_dir"])
    cells = [budget.of_run(study_dir / c["run_dir"]) for c in read_manifest(study_dir)["cells"]]
    assert b["question_evaluations"] == sum(c["question_evaluations"] for c in cells) > 0
    assert b["train"]["question_evaluations"] == 2 * 48
    manifest = read_manifest(study_dir)["budget"]
    first = manifest["estimated_s"]["train"]
    # 2 cells x 48 evaluations at 20/s + one engine start for the one model
    assert first == pytest.approx(96 / 20 + plan.ENGINE_START_S) == b["train"]["estimated_s"]
    starts = sum(s["s"] for s in manifest["engine_starts"])
    assert b["train"]["spent_s"] == pytest.approx(
        sum(c["train"]["spent_s"] for c in cells) + starts)
    for c in read_manifest(study_dir)["cells"]:  # each cell's share, before it started
        assert budget.read(study_dir / c["run_dir"])["estimated_s"]["train"] == (
            pytest.approx(48 / 20))
    assert "## Budget" in (study_dir / "report" / "report.md").read_text()
    _rate(monkeypatch, 1.0)
    again, _ = _cli("study", str(spec), "--resume")
    assert read_manifest(study_dir)["budget"]["estimated_s"]["train"] == pytest.approx(first)
    assert again["budget"]["question_evaluations"] == b["question_evaluations"]


def test_budget_sums_unit():
    a = budget.part(1.0, 2.0, 3, 10, 4)
    b = budget.part(None, 1.0, 1, 5, 5)
    whole = budget.whole(a, b)
    assert whole["estimated_s"] == 1.0 and whole["spent_s"] == 3.0
    assert whole["computed_tokens"] == 6 and whole["cached_tokens"] == 9
    assert budget.add([b, b])["estimated_s"] is None
    est = budget.estimate("vllm", 100, 50, "train")
    rate = est["evals_per_s"]
    assert est["train"] == pytest.approx(100 / rate + plan.ENGINE_START_S)
    assert est["eval"] == pytest.approx(50 / rate)
    assert budget.estimate("synthetic", 100, 50, "train")["train"] is None
    assert pl.DataFrame([a]).columns == list(budget.KEYS)


def test_measured_pace_is_the_median_iteration_and_a_resumed_header_uses_it(tmp_path):
    def iteration(run_dir, i, n, seconds, commit=True):
        runs.write_part(run_dir, "iterations", i, pl.DataFrame(
            {"iteration": [i], "num_prompts": [n], "generate_s": [seconds]}))
        if commit:
            runs.save_checkpoint(run_dir, {"evaluations": 0}, iteration=i)

    run = tmp_path / "r"
    for i, (n, s) in enumerate([(512, 128.0), (512, 170.0), (500, 125.0)]):
        iteration(run, i, n, s)
    pace = budget.measured_pace([run])
    assert pace is not None and pace[0] == pytest.approx(4.0)  # 4.0, 3.01, 4.0: the median
    iteration(run, 3, 512, 870.0)  # 12 min paused (kill -STOP)
    assert budget.measured_pace([run])[0] == pytest.approx((4.0 + 512 / 170) / 2)
    iteration(run, 4, 512, 0.5, commit=False)  # a crashed iteration's rows: not counted
    runs.write_part(run, "iterations", 5, pl.DataFrame({"iteration": [5], "mean_reward": [9.0]}))
    assert budget.measured_pace([run])[0] == pytest.approx((4.0 + 512 / 170) / 2)
    assert budget.measured_pace([tmp_path / "none"]) is None  # no iteration yet
    two = tmp_path / "two"
    for i in range(2):
        iteration(two, i, 8, 1.0)
    assert budget.measured_pace([two]) is None  # under PACE_MIN_ITERATIONS
    est = budget.estimate("synthetic", 400, 100, "train", (4.0, "measured: here"))
    assert est["train"] == pytest.approx(100 + plan.ENGINE_START_S) and est["eval"] == 25
    assert est["source"] == "measured: here"

    _cli("train", *TRAIN, "--output-dir", str(tmp_path), "--run-name", "t", "--iterations", "3")
    _, err = _cli("train", "--resume", str(tmp_path / "t"), "--iterations", "5")
    assert "measured: median of this job's 3 iterations" in err
    first = budget.read(tmp_path / "t")["estimated_s"]["train"]
    assert first is None  # the synthetic engine has no planned rate: the first stays unknown


def test_a_study_counts_a_later_cells_eval_as_its_learned_people_only(tmp_path, monkeypatch):
    _rate(monkeypatch, 20.0)
    spec = _two_cell_study(tmp_path)
    out, _ = _cli("study", str(spec))
    study_dir = Path(out["study_dir"])
    first, second = (budget.read(study_dir / c["run_dir"])["estimated_s"]
                     for c in read_manifest(study_dir)["cells"])
    (name,) = [k for k in first if k.startswith("eval/")]
    assert second[name] == pytest.approx(20 * 2 / 20)  # the 2 learned people x 20 questions
    assert first[name] > second[name]  # the first cell also scores every baseline
    assert read_manifest(study_dir)["budget"]["estimated_s"]["eval"] == pytest.approx(
        first[name] + second[name])
