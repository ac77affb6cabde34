"""The synthetic engine and `prefixopt simulate`: answers are deterministic per (person,
question), judge correctly through prefixopt.ask.scoring, follow the planted accuracies, and the
learner finds a planted field far more than noise alone concentrates a policy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from prefixopt.benchmarks import load_split
from prefixopt.cli import app
from prefixopt.engines import synthetic
from prefixopt.people import load_people
from prefixopt.ask.prompts import build_grid
from prefixopt.records import NO_PERSON
from prefixopt.ask.scoring import score


@pytest.fixture(scope="module")
def people(people_csv):
    return load_people(people_csv)


@pytest.fixture(scope="module")
def questions(bench_dir):
    return load_split("arc_easy", "train", data_dir=bench_dir)


def test_answers_are_deterministic_and_follow_planted_accuracy(people, questions):
    acc = np.where(np.arange(len(people)) < 50, 0.9, 0.2)
    eng = synthetic.SyntheticEngine(people, acc, base_accuracy=0.6, difficulty_sd=1.0, seed=4)
    qids = [q.question_id for q in questions[:400]]
    good, bad = int(people.person_id[0]), int(people.person_id[-1])
    pids = np.repeat([good, bad, NO_PERSON], len(qids))
    first = eng.correct(pids, qids * 3)
    np.testing.assert_array_equal(first, eng.correct(pids, qids * 3))  # same person, same q
    rates = first.reshape(3, -1).mean(axis=1)
    assert rates[0] > rates[2] > rates[1]  # 0.9-person > no prefix (0.6) > 0.2-person
    other = synthetic.SyntheticEngine(people, acc, 0.6, 1.0, seed=5).correct(pids, qids * 3)
    assert not np.array_equal(first, other)  # the seed matters


@pytest.mark.parametrize("mode", ["cloze", "letter", "generate"])
def test_responses_judge_through_scoring(people, questions, mode):
    eng = synthetic.SyntheticEngine(people, np.full(len(people), 0.5), seed=0)
    heads = [(int(people.person_id[i]), f"You are {people.names[i]}.") for i in range(3)]
    heads.append((NO_PERSON, None))
    requests = build_grid(eng, heads, questions[:20], scoring=mode)
    _, answers = score(eng, requests, mode)
    truth = eng.correct(np.array([r.person_id for r in requests]),
                        [r.question.question_id for r in requests])
    assert [a.correct for a in answers] == truth.tolist()
    assert all(a.parsed for a in answers)
    if mode != "generate":
        assert all((a.margin > 0) == a.correct for a in answers)


def _simulate(people_csv, *args) -> dict:
    result = CliRunner().invoke(app, ["simulate", "--people", people_csv, "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


def test_simulate_finds_planted_field_far_above_null(people_csv):
    common = ["--budget", "20480", "--learning-rate", "0.1", "--seed", "1"]
    planted = _simulate(people_csv, "--planted-field", "Philosophy", "--delta", "0.2", *common)
    null = _simulate(people_csv, "--null", *common)
    assert planted["evaluations"] == null["evaluations"] == 20480
    for key in ("planted_mass", "pool_share", "entropy", "evaluations"):
        assert key in planted
    # the planted field's mass rises well above its share of the pool ...
    assert planted["planted_mass"] > 5 * planted["pool_share"]
    # ... and far above the largest concentration noise alone gives on the same seed
    assert planted["planted_mass_ratio"] > 2 * null["largest_field_ratio"]
    assert len(planted["history"]) == planted["iterations"] == 40


def test_simulate_planted_people_and_out_dir(people_csv, tmp_path):
    out = tmp_path / "sim"
    res = _simulate(people_csv, "--planted-people", "20", "--budget", "2048", "--out", str(out))
    assert res["pool_share"] == pytest.approx(20 / 10_000)
    assert (out / "config.json").is_file() and (out / "checkpoints" / "latest.npz").is_file()
    result = CliRunner().invoke(app, ["simulate", "--people", people_csv, "--null",
                                      "--budget", "2048", "--out", str(out)])
    assert result.exit_code != 0  # an existing run directory is never overwritten


def test_resumed_simulate_run_keeps_its_planted_engine(people_csv, tmp_path):
    """A simulate run continued with `train --resume` keeps its scenario in config.json and
    answers from the planted engine, so it ends where an uninterrupted run ends."""
    from prefixopt import runs

    args = ["--planted-field", "Science", "--delta", "0.3", "-k", "4", "-b", "8"]
    _simulate(people_csv, *args, "--budget", str(6 * 32), "--out", str(tmp_path / "full"))
    _simulate(people_csv, *args, "--budget", str(3 * 32), "--out", str(tmp_path / "part"))
    result = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "part"),
                                      "--iterations", "6", "--json"])
    assert result.exit_code == 0, result.output
    assert runs.read_config(tmp_path / "part")["synthetic"]["delta"] == pytest.approx(0.3)
    full = runs.scan(tmp_path / "full", "answers").collect().sort("iteration", "sample")
    part = runs.scan(tmp_path / "part", "answers").collect().sort("iteration", "sample")
    assert full["correct"].to_list() == part["correct"].to_list()
    np.testing.assert_array_equal(runs.final_probs(tmp_path / "full"),
                                  runs.final_probs(tmp_path / "part"))


@pytest.mark.parametrize("args, message", [
    ([], "exactly one scenario"),
    (["--null", "--planted-people", "3"], "exactly one scenario"),
    (["--planted-field", "Astrology"], "unknown field"),
    (["--null", "--base-accuracy", "0.95", "--delta", "0.1"], "inside (0, 1)"),
    (["--null", "--learning-rate", "0"], "--learning-rate must be > 0"),
])
def test_simulate_errors(people_csv, args, message, capsys):
    from prefixopt.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--people", people_csv, "--budget", "1024", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in " ".join(err.split())
