"""confidence.py: the posterior probability that the top person is the best of those tried,
on constructed answers tables (paired questions per iteration). Pure numpy + polars."""

from __future__ import annotations

import numpy as np
import polars as pl

from prefixopt.confidence import paired_effects, top_confidence


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


def test_simulate_json_reports_top_confidence_and_the_mended_defaults(people_csv, tmp_path):
    """`simulate --json` carries REINFORCE's top_confidence (from train's summary), and the run's
    config.json records the two settings of the fix."""
    import json

    from typer.testing import CliRunner

    from prefixopt.cli import app

    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["simulate", "--people", people_csv, "--json",
                                      "--planted-people", "5", "--delta", "0.2",
                                      "--budget", "4096", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert 0.0 <= summary["top_confidence"] <= 1.0
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["group_min_people"] == 20 and cfg["logit_decay"] == 0.02


def test_people_tried_beside_a_strong_person_are_not_charged_with_its_strength():
    """Average people tried beside a +0.3 person, or only among themselves, get the same effect
    (the per-iteration ease absorbs who else was there); the strong one stands 0.3 above."""
    acc = {0: 0.8} | {p: 0.5 for p in range(1, 121)}
    # person 1, average, links the two sets (it answers beside both)
    per_iter = [[0, i] for i in range(1, 61)] + [[1, i, i + 30] for i in range(61, 91)]
    effects = paired_effects(table(acc, 90, per_iter, b=64, seed=5))
    e = dict(zip(effects["person_id"].to_list(), effects["effect"].to_list()))
    beside = np.mean([e[i] for i in range(1, 61)])
    among = np.mean([e[i] for i in range(61, 121)])
    assert abs(beside - among) < 0.05
    assert 0.2 < e[0] - among < 0.4
