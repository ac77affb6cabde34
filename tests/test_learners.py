"""The bandit learners (halving, ttts) on the synthetic engine: halving's schedule keeps its
budget and each call asks common questions; ttts's posterior counts are the answers table; the
ranking is what eval's top-k and simulate's top_planted read; a killed run resumes exactly."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from prefixopt.engines import build
from prefixopt.engines import scenarios
from prefixopt import runs

from prefixopt.learn import confidence

from prefixopt.evaluate import heldout


from prefixopt.learn import learners, loop

from prefixopt.learn import simulate
from prefixopt.benchmarks import load_split
from prefixopt.cli import app
from prefixopt.config import TrainConfig
from prefixopt.engines.synthetic import SyntheticEngine
from prefixopt.learn.halving import schedule, start_pool
from prefixopt.people import load_people
from prefixopt.learn.pooling import beta_mean_sd, eb_prior
from prefixopt.records import NO_PERSON
from prefixopt.learn.ttts import TopTwoThompson


@pytest.fixture(scope="module")
def people(people_csv):
    return load_people(people_csv)


@pytest.fixture(scope="module")
def questions(bench_dir):
    return load_split("arc_easy", "train", data_dir=bench_dir)


class Calls:
    """An engine that records each call's requests and can die on call `die_at`."""

    def __init__(self, inner, die_at: int | None = None) -> None:
        self.inner, self.die_at, self.calls = inner, die_at, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def run(self, requests, mode, **kw):
        if self.die_at is not None and len(self.calls) + 1 == self.die_at:
            raise RuntimeError("killed")
        self.calls.append([(r.person_id, r.question.question_id) for r in requests])
        return self.inner.run(requests, mode, **kw)


def engine_for(people, seed=0):
    acc = np.full(len(people.person_id), 0.5)
    acc[:40] = 0.8
    return SyntheticEngine(people, acc, 0.5, 1.0, seed)


@pytest.mark.parametrize("n0,budget,q", [(10_000, 500_000, 2251), (1000, 50_000, 200),
                                         (64, 100_000, 2251)])
def test_halving_schedule_keeps_budget_and_fresh_questions(n0, budget, q):
    plan = schedule(n0, budget, q)
    assert len(plan) == math.ceil(math.log2(n0))
    assert sum(n * t for n, t in plan) <= budget
    assert sum(t for _, t in plan) <= q  # a survivor never needs a question twice
    assert [n for n, _ in plan] == sorted((n for n, _ in plan), reverse=True)
    assert start_pool(10_000, 50_000, 2251) < 10_000  # too small a budget: a random pool


def test_eb_prior_mean_follows_fields():
    field = np.repeat([0, 1], 50)
    era = np.zeros(100, dtype=np.int64)
    n = np.full(100, 40.0)
    s = np.where(field == 1, 32.0, 20.0)  # field 1 at 0.8, field 0 at 0.5
    a0, b0, kappa = eb_prior(s, n, [field, era], cap=32)
    m = a0 / (a0 + b0)
    assert m[field == 1].min() > m[field == 0].max()
    assert 2 <= kappa <= 32


def run(cfg, people, questions, run_dir, engine, resume=False):
    return loop.train(cfg, engine, people, questions, run_dir, resume=resume)


def test_halving_calls_share_questions_and_rounds(people, questions, tmp_path):
    cfg = TrainConfig(learner="halving", iterations=12, samples_per_iteration=16, batch_size=8)
    eng = Calls(engine_for(people))
    out = run(cfg, people, questions[:300], tmp_path / "h", eng)
    assert out["finished"] and out["evaluations"] <= 12 * 16 * 8
    rounds = pl.concat([pl.read_parquet(p) for p in sorted((tmp_path / "h" / "iterations")
                                                            .glob("*.parquet"))])
    assert len(eng.calls) == rounds.height  # one engine call per iteration
    answers = runs.scan(tmp_path / "h", "answers").collect()
    for call in eng.calls:  # within a call, every person answers the same questions
        qs_by_person: dict[int, list[str]] = {}
        for pid, qid in call:
            qs_by_person.setdefault(pid, []).append(qid)
        assert len({tuple(v) for v in qs_by_person.values()}) == 1
    # the round a person reached: the survivors of round r answered round r's questions
    ckpt = runs.load_checkpoint(tmp_path / "h")
    reached = ckpt["hv_reached"]
    ranking = ckpt["ranking"]
    assert np.all(np.diff(reached[ranking]) <= 0)  # later round first
    per_person = answers.group_by("person_id").agg(pl.len().alias("n"))
    assert per_person["n"].sum() == out["evaluations"]


def test_ttts_counts_equal_answers_and_eval_reads_ranking(people, questions, tmp_path):
    cfg = TrainConfig(learner="ttts", iterations=6, samples_per_iteration=8, batch_size=8)
    run(cfg, people, questions, tmp_path / "t", engine_for(people))
    ckpt = runs.load_checkpoint(tmp_path / "t")
    ans = runs.scan(tmp_path / "t", "answers").collect()
    rows = {int(p): i for i, p in enumerate(people.person_id)}
    s, n = np.zeros(len(rows)), np.zeros(len(rows))
    for pid, ok in zip(ans["person_id"], ans["correct"], strict=True):
        s[rows[pid]] += ok
        n[rows[pid]] += 1
    np.testing.assert_array_equal(ckpt["ttts_s"], s)
    np.testing.assert_array_equal(ckpt["ttts_n"], n)
    assert ckpt["ttts_n"].sum() == 6 * 8 * 8
    samples = runs.scan(tmp_path / "t", "samples").collect()
    assert samples.group_by("iteration").agg(pl.col("person_id").n_unique())["person_id"].min() == 8
    ecfg = heldout.config_for_run(tmp_path / "t", num_questions=20, top_k=3,
                                   bootstrap_samples=10)
    prefixes, *_ = heldout.eval_prefixes(ecfg, tmp_path / "t", np.random.default_rng(0))
    learned = [p.row for p in prefixes if p.kind == "learned"]
    assert learned == [int(r) for r in ckpt["ranking"][:3]]  # eval's top-k = the ranking
    meta = runs.read_config(tmp_path / "t")
    assert meta["learner"] == "ttts" and "posterior mean" in meta["ranking"]


def make_old(run_dir) -> None:
    """Turn a run's checkpoint and config.json into what the code before top_confidence_kind
    wrote: no kind in the checkpoint, its own top_confidence, halving's answer matrices."""
    state = {k: v for k, v in runs.load_checkpoint(run_dir).items()
             if k not in ("top_confidence_kind", "iteration")}
    state["top_confidence"] = np.asarray(0.5)  # the old final-round bootstrap's kind of value
    if "hv_s" in state:
        state |= {"hv_matrix": np.zeros((2, 3), np.uint8), "hv_new": np.zeros((2, 1), np.uint8),
                  "hv_last_rows": np.arange(2), "hv_last_matrix": np.zeros((2, 3), np.uint8)}
    runs.save_checkpoint(run_dir, state, iteration=int(runs.load_checkpoint(run_dir)["iteration"]))
    meta = json.loads((run_dir / "config.json").read_text())
    meta["top_confidence_kind"] = "paired bootstrap over the question columns ..."
    (run_dir / "config.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("made_before", [False, True])
@pytest.mark.parametrize("learner", ["halving", "ttts"])
def test_killed_run_resumes_exactly(people, questions, tmp_path, learner, made_before):
    """A killed run resumes to the uninterrupted run; so does one whose checkpoint was written
    before top_confidence_kind (its P(best) is measured again on resuming)."""
    cfg = TrainConfig(learner=learner, iterations=8, samples_per_iteration=8, batch_size=8)
    full = run(cfg, people, questions[:400], tmp_path / "full", engine_for(people))
    with pytest.raises(RuntimeError):
        run(cfg, people, questions[:400], tmp_path / "part", Calls(engine_for(people), 4))
    if made_before:
        make_old(tmp_path / "part")
    part = run(cfg, people, questions[:400], tmp_path / "part", engine_for(people), resume=True)
    a, b = runs.load_checkpoint(tmp_path / "full"), runs.load_checkpoint(tmp_path / "part")
    for key in ("ranking", "probs", "top_confidence", "evaluations", "iteration"):
        np.testing.assert_array_equal(a[key], b[key])
    cols = ["iteration", "person_id", "question_id", "correct"]
    np.testing.assert_array_equal(runs.scan(tmp_path / "full", "answers").select(cols).collect(),
                                  runs.scan(tmp_path / "part", "answers").select(cols).collect())
    assert full["top"] == part["top"] and full["top_confidence"] == part["top_confidence"]
    assert runs.read_config(tmp_path / "part")["top_confidence_kind"] == "beta_posterior"


def simulate_json(people_csv, *args) -> dict:
    result = CliRunner().invoke(app, ["simulate", "--people", str(people_csv), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


def engine_accuracy(run_dir, person_id: int, questions) -> float:
    """What the run's planted engine says of a person: its accuracy over the training split,
    measured by asking (not read from simulate's bookkeeping)."""
    ids = [q.question_id for q in questions]
    engine = build.synthetic_engine_for_run(run_dir)
    return float(engine.correct(np.full(len(ids), person_id), ids).mean())


@pytest.mark.parametrize("learner", ["halving", "ttts", "reinforce"])
def test_simulate_json_top_planted_matches_ranking(people_csv, questions, tmp_path, learner):
    out = tmp_path / "sim"
    res = simulate_json(people_csv, "--learner", learner, "--planted-people", "30", "--delta",
                        "0.3", "--budget", "4096", "--seed", "2", "--out", str(out))
    # top_planted from the planted engine itself: the top person answers 0.3 above the base
    # accuracy (0.5 at median difficulty) exactly when it is planted
    top = res["top"][0]["person_id"]
    assert top == int(runs.run_people(out).person_id[runs.final_ranking(out)[0]])
    lift = engine_accuracy(out, top, questions) - engine_accuracy(out, NO_PERSON, questions)
    assert lift > 0.15 or abs(lift) < 0.05  # planted or not, nothing in between
    assert res["top_planted"] == (lift > 0.15)
    assert res["simple_regret"] == pytest.approx(0.0 if lift > 0.15 else 0.3)
    people = runs.run_people(out)
    truth = np.array([engine_accuracy(out, int(people.person_id[r]), questions[:300])
                      for r in runs.final_ranking(out)[:10]])  # (10,)
    assert res["planted_in_top10"] == pytest.approx(
        np.mean(truth - engine_accuracy(out, NO_PERSON, questions[:300]) > 0.15))
    assert res["learner"] == learner
    kind = "beta_posterior" if learner != "reinforce" else "paired"
    assert res["top_confidence_kind"] == kind and 0.0 <= res["top_confidence"] <= 1.0
    meta = runs.read_config(out)
    assert meta["top_confidence_kind"] == kind
    assert meta["top_confidence_meaning"] == confidence.KINDS[kind]
    # the report shows the learner's own top person (its ranking, not the most probable)
    from pathlib import Path

    from prefixopt.report.page import build_report

    text = Path(build_report([out], None)["report_md"]).read_text()
    top_name = people.names[runs.final_ranking(out)[0]]
    if learner == "reinforce":
        assert "Top person:" in text
    else:
        assert f"Top-ranked person: {top_name} (" in text and f"learner {learner}" in text


def test_small_effects_scenario_is_rebuilt_for_eval(people):
    sc = scenarios.small_effects(people, 0.02, 0.5, seed=3)
    assert sc.planted.sum() == pytest.approx(len(people.person_id) / 100, abs=2)
    assert sc.accuracy[sc.planted].min() >= sc.accuracy[~sc.planted].max()
    meta = simulate.scenario_meta(sc, people, 0.5, 1.0, 3)["synthetic"]
    assert meta["small_effects_sd"] == 0.02


def test_bandit_learner_refuses_what_it_cannot_do():
    from prefixopt.errors import PrefixoptError

    with pytest.raises(PrefixoptError, match="one benchmark"):
        learners.validate(TrainConfig(learner="ttts", context="benchmark"))
    with pytest.raises(PrefixoptError, match="not one of"):
        learners.validate(TrainConfig(learner="bandit"))


def test_ttts_slots_draw_their_leader_and_challenger_independently():
    """Top-two Thompson sampling per slot: the leader of the slot's own posterior draw, or the
    best other person of a second draw of its own. With beta 0 (always the challenger), the
    second slot's pick matches a direct Monte Carlo of that definition; reusing slot 1's
    challenger draw as slot 2's leader draw gave person 0 there 0.01 instead of 0.05."""
    one = np.zeros(4, dtype=np.int64)
    learner = TopTwoThompson(one, one, k=2, b=8, iterations=10, beta=0.0)
    learner.n, learner.s = np.full(4, 40.0), np.array([34.0, 30.0, 26.0, 22.0])
    mean, sd = beta_mean_sd(*learner.posterior())  # (4,)
    d = np.random.default_rng(1).standard_normal((100_000, 4, 4)) * sd + mean  # (D, draw, N)
    at = np.arange(len(d))

    def best(x, *out):  # argmax per row with the given people (D,) set aside
        x = x.copy()
        for o in out:
            x[at, o] = -np.inf
        return x.argmax(axis=1)

    pick0 = best(d[:, 1], best(d[:, 0]))  # slot 1: challenger of draw 1 beside draw 0's leader
    pick1 = best(d[:, 3], pick0, best(d[:, 2], pick0))  # slot 2: the same, pick0 out
    ref = np.bincount(pick1, minlength=4) / len(d)  # (4,)
    T = 3000
    picks = np.array([learner.propose(np.random.default_rng([9, i]), 100)[0] for i in range(T)])
    got = np.bincount(picks[:, 1], minlength=4) / T
    assert (picks[:, 0] != picks[:, 1]).all()
    se = np.sqrt(ref * (1 - ref) / T)
    assert ref[0] > 0.03 and np.all(np.abs(got - ref) < 4 * se + 1e-3), (got, ref)


def test_ttts_extended_by_resume_equals_one_longer_run(people, questions, tmp_path):
    """The learner study extends one ttts run budget by budget: that must be the longer run."""
    import dataclasses

    cfg = TrainConfig(learner="ttts", iterations=6, samples_per_iteration=8, batch_size=8)
    run(cfg, people, questions, tmp_path / "long", engine_for(people))
    run(dataclasses.replace(cfg, iterations=3), people, questions, tmp_path / "ext",
        engine_for(people))
    run(cfg, people, questions, tmp_path / "ext", engine_for(people), resume=True)
    a, b = runs.load_checkpoint(tmp_path / "long"), runs.load_checkpoint(tmp_path / "ext")
    for key in ("ttts_s", "ttts_n", "ranking", "probs"):
        np.testing.assert_array_equal(a[key], b[key])
