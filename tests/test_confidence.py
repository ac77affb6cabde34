"""top_confidence: REINFORCE's (confidence.py: the posterior probability that the top person is
the best of those tried) on constructed answers tables (paired questions per iteration, or fresh
questions per sample); halving's and ttts's (P(best) under their Beta posteriors) against a
direct Monte Carlo; every learner's on runs whose answer is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from prefixopt import runs

from prefixopt.learn import learners
from prefixopt.benchmarks import load_split
from prefixopt.cli import app
from prefixopt.learn.confidence import paired_effects, shared_questions, top_confidence
from prefixopt.config import TrainConfig
from prefixopt.engines.synthetic import SyntheticEngine
from prefixopt.people import load_people
from prefixopt.learn.pooling import beta_mean_sd
from prefixopt.learn.ttts import TopTwoThompson


def table(acc: dict[int, float], iterations: int, per_iter: list[list[int]] | None = None,
          b: int = 32, seed: int = 0) -> pl.DataFrame:
    """An answers table: each iteration, the listed people (default: all) answer the same b
    questions; person p is right with probability acc[p] (1.0 / 0.0 are exact)."""
    rng = np.random.default_rng(seed)
    rows = []
    for it in range(iterations):
        who = per_iter[it % len(per_iter)] if per_iter else list(acc)
        u = rng.random(b)  # (b,) one draw per question: common random numbers
        for s, p in enumerate(who):
            for q in range(b):
                rows.append((it, s, p, q, bool(u[q] < acc[p])))
    return pl.DataFrame(rows, schema=["iteration", "sample", "person_id", "question_id",
                                      "correct"], orient="row")


def test_clear_winner_is_near_one():
    acc = {0: 0.5, 1: 0.5, 2: 0.5, 3: 0.5, 7: 0.9}
    answers = table(acc, 30, seed=1)
    conf = top_confidence(answers, 7, np.random.default_rng(0))
    assert 0.95 <= conf <= 1.0


def test_a_tie_is_low_and_a_loser_is_near_zero():
    same = {p: 0.5 for p in range(8)}
    answers = table(same, 30, seed=2)
    # identical answers: all paired differences are 0 -> about 1/8 for anyone
    ties = pl.DataFrame(answers).with_columns(pl.lit(True).alias("correct"))
    tie = top_confidence(ties, 3, np.random.default_rng(0))
    assert 0.0 <= tie <= 0.3
    acc = {0: 0.5, 1: 0.5, 2: 0.9, 3: 0.5}
    loser = top_confidence(table(acc, 30, seed=3), 0, np.random.default_rng(0))
    assert loser <= 0.02


def test_one_lucky_batch_does_not_beat_a_person_tried_often():
    """Many people tried once against a person tried every iteration: the one-offs are shrunk
    to the crowd, so the steady +0.25 person keeps a high confidence; the same steady person
    tried only once would not."""
    acc = {0: 0.75} | {p: 0.5 for p in range(1, 201)}
    per_iter = [[0, 1 + 2 * i, 2 + 2 * i] for i in range(100)]
    answers = table(acc, 100, per_iter, seed=4)
    often = top_confidence(answers, 0, np.random.default_rng(0))
    assert often > 0.8
    effects = paired_effects(answers)
    one_offs = effects.filter(pl.col("n") == 1).sort("effect")
    lucky = int(one_offs["person_id"][-1])  # the best single batch of 200 people
    assert top_confidence(answers, lucky, np.random.default_rng(0)) < 0.1


def test_untried_or_alone_top_is_zero():
    answers = table({0: 0.5, 1: 0.5}, 5, per_iter=[[0, 0]])  # person 0 only ever with itself
    assert paired_effects(answers).height == 0
    assert top_confidence(answers, 0, np.random.default_rng(0)) == 0.0
    assert top_confidence(table({0: 0.5, 1: 0.6}, 5), 42, np.random.default_rng(0)) == 0.0


def fresh_table(acc: dict[int, float], per_iter: list[list[int]], iterations: int, b: int = 32,
                seed: int = 0) -> pl.DataFrame:
    """--fresh-questions: every sample answers its own b questions (one difficulty draw each)."""
    rng = np.random.default_rng(seed)
    rows = []
    for it in range(iterations):
        for s, p in enumerate(per_iter[it % len(per_iter)]):
            u = rng.random(b)  # (b,) this sample's own questions
            rows += [(it, s, p, f"{it}-{s}-{q}", bool(u[q] < acc[p])) for q in range(b)]
    return pl.DataFrame(rows, schema=["iteration", "sample", "person_id", "question_id",
                                      "correct"], orient="row")


def test_fresh_questions_are_unpaired_and_every_sample_counts():
    """Without shared questions a person drawn three times in an iteration answered three
    batches: all three count (the paired model keeps one, as duplicates there are identical),
    and a clearly better person is still found with confidence."""
    acc = {0: 0.85} | {p: 0.5 for p in range(1, 41)}
    per_iter = [[0, 0, 0, 1 + i % 40, 1 + (i + 7) % 40] for i in range(40)]
    answers = fresh_table(acc, per_iter, 40, seed=6)
    assert not shared_questions(answers) and shared_questions(table(acc, 3))
    effects = paired_effects(answers)
    assert int(effects.filter(pl.col("person_id") == 0)["n"][0]) == 3 * 40
    assert top_confidence(answers, 0, np.random.default_rng(0)) > 0.95
    assert top_confidence(answers, 5, np.random.default_rng(0)) < 0.05


def test_simulate_json_reports_top_confidence_and_the_mended_defaults(people_csv, tmp_path):
    """`simulate --json` carries REINFORCE's top_confidence (from train's summary), and the run's
    config.json records the two settings of the fix."""
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["simulate", "--people", people_csv, "--json",
                                      "--planted-people", "5", "--delta", "0.2",
                                      "--budget", "4096", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert 0.0 <= summary["top_confidence"] <= 1.0 and summary["top_confidence_kind"] == "paired"
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["group_min_people"] == 20 and cfg["logit_decay"] == 0.02


def test_people_tried_beside_a_strong_person_are_not_charged_with_its_strength():
    """Average people tried beside a +0.3 person, or only among themselves, get the same effect
    (the per-iteration ease absorbs who else was there); the strong one stands 0.3 above."""
    acc = {0: 0.8} | {p: 0.5 for p in range(1, 121)}
    # person 1, average, links the two sets (it answers beside both)
    per_iter = [[0, i] for i in range(1, 61)] + [[1, i, i + 30] for i in range(61, 91)]
    effects = paired_effects(table(acc, 90, per_iter, b=64, seed=5))
    e = dict(zip(effects["person_id"].to_list(), effects["effect"].to_list(), strict=True))
    beside = np.mean([e[i] for i in range(1, 61)])
    among = np.mean([e[i] for i in range(61, 121)])
    assert abs(beside - among) < 0.05
    assert 0.2 < e[0] - among < 0.4


def simulate_json(people_csv, *args) -> dict:
    result = CliRunner().invoke(app, ["simulate", "--people", str(people_csv), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


@pytest.fixture(scope="module")
def people64(people_csv, tmp_path_factory) -> str:
    """The first 64 people: a pool small enough for every learner to try everyone often."""
    path = tmp_path_factory.mktemp("p64") / "people64.csv"
    lines = Path(people_csv).read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:65]))
    return str(path)


@pytest.mark.parametrize("learner", ["halving", "ttts", "reinforce"])
def test_top_confidence_is_high_for_a_clear_best_and_low_under_the_null(people64, learner):
    """One person at +0.4 among 64: halving and ttts find it and are sure (> 0.9); REINFORCE is
    sure when its top is that person and not (< 0.1) when it committed elsewhere. Nobody better
    (null): no learner is near sure of its top (< 0.35; 1/64 would be a tie of everyone; the old
    halving bootstrap said 0.44-0.57 here)."""
    common = ["--learner", learner, "--budget", "16384"]
    for seed in ("0", "3"):
        res = simulate_json(people64, *common, "--planted-people", "1", "--delta", "0.4",
                            "--seed", seed)
        if learner != "reinforce":
            assert res["top_planted"]
        assert res["top_confidence"] > 0.9 if res["top_planted"] else res["top_confidence"] < 0.1
    for seed in ("0", "1", "2"):
        res = simulate_json(people64, *common, "--null", "--seed", seed)
        assert res["top_confidence"] < 0.35, (seed, res["top_confidence"])


def test_fresh_questions_confidence_is_flagged_unpaired(people64, tmp_path):
    """REINFORCE with --fresh-questions: its top_confidence is the unpaired kind (no ease per
    iteration: nobody shared questions), in the summary and in config.json."""
    out = tmp_path / "fresh"
    res = simulate_json(people64, "--fresh-questions", "--planted-people", "1", "--delta", "0.4",
                        "--budget", "16384", "--seed", "0", "--out", str(out))
    assert res["top_confidence_kind"] == "unpaired"
    assert runs.read_config(out)["top_confidence_kind"] == "unpaired"
    assert res["top_planted"] and res["top_confidence"] > 0.9


@pytest.fixture(scope="module")
def questions_arc(bench_dir):
    return load_split("arc_easy", "train", data_dir=bench_dir)


def reference_p_best(a: np.ndarray, b: np.ndarray, top: int, draws: int = 20_000) -> float:
    """P(person `top` has the highest accuracy) under independent Beta(a, b): plain Monte Carlo
    over everyone, with Beta (not normal) draws."""
    theta = np.random.default_rng(5).beta(a, b, size=(draws, len(a)))  # (D, N)
    return float((theta.argmax(axis=1) == top).mean())


def test_ttts_p_best_keeps_the_top_among_many_wide_posteriors():
    """One person at 0.8 over 3,000 answers, 599 at 0.5 over 8 each: every one of the 599 has a
    higher mean + 3 sd than the top, so a candidate list cut by that (the old 256) dropped the
    top and reported 0; the honest P(best) keeps everyone who could win (~0.36 here)."""
    n = 600
    learner = TopTwoThompson(np.zeros(n, np.int64), np.zeros(n, np.int64), 16, 32, 10)
    learner.n, learner.s = np.full(n, 8.0), np.full(n, 4.0)
    learner.n[0], learner.s[0] = 3000.0, 2400.0
    a, b = learner.posterior()
    mean, sd = beta_mean_sd(a, b)
    top = int(learner.ranking()[0])
    assert top == 0 and (mean[1:] + 3 * sd[1:] > mean[0] + 3 * sd[0]).all()
    p = learner.best_probs(np.random.default_rng(0), draws=2000)  # (N,)
    ref = reference_p_best(a, b, top)
    assert 0.2 < ref < 0.5 and p[top] == pytest.approx(ref, abs=0.06)
    assert p.sum() == pytest.approx(1.0)


def test_halving_p_best_is_its_shrunk_posterior(people64, questions_arc):
    """halving's probs (and top_confidence, the top-ranked person's entry) are P(best) under the
    same shrunk Beta posteriors it eliminates by, over everyone it asked."""
    people = load_people(people64)
    acc = np.full(len(people), 0.5)
    acc[[3, 9]] = 0.6  # two close people: a P(best) strictly inside (0, 1) for both
    cfg = TrainConfig(learner="halving", iterations=10, samples_per_iteration=16, batch_size=8,
                      people=people64)
    rng = np.random.default_rng(0)
    learner = learners.make_learner(cfg, people, len(questions_arc), rng)
    engine = SyntheticEngine(people, acc, 0.5, 1.0, 0)
    while (batch := learner.propose(rng, len(questions_arc))) is not None:
        rows, qidx = batch
        ids = [questions_arc[i].question_id for i in qidx]
        grid = engine.correct(np.repeat(people.person_id[rows], len(ids)), ids * len(rows))
        learner.observe(rows, qidx, grid.reshape(len(rows), len(ids)), rng)
    a, b = learner.posterior()  # its means: the shrunk scores of the last round
    alive = learner.reached == learner.reached.max()
    np.testing.assert_allclose(learner.score[alive], (a / (a + b))[alive])
    top = int(learner.ranking()[0])
    p = learner.best_probs(np.random.default_rng(1), draws=4000)
    assert p[top] == pytest.approx(reference_p_best(a, b, top), abs=0.04)
