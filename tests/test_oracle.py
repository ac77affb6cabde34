"""The oracle ceiling's paraphrase null and the confidence router (evaluate/oracle.py): the
router's false-positive rate where nothing is planted (many seeded null matrices), its gain with
a planted strong and confident person, the null ceiling growing with k under pure noise, the
verdict, and on the synthetic engine the paraphrase rows in eval's one engine call and the
--json keys with their types."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import WrappedEngine

from prefixopt import cli, runs, stats
from prefixopt.engines import scenarios, synthetic
from prefixopt.evaluate import heldout, oracle
from prefixopt.evaluate.paraphrases import PARAPHRASES
from prefixopt.report import page


def _kinds(k: int, paraphrases: int = 0) -> np.ndarray:
    return np.array(["none", *["learned"] * k, *["paraphrase"] * paraphrases])


def _perturbed(rng: np.random.Generator, rows: int, q: int, flip: float = 0.25) -> np.ndarray:
    """(rows, Q): no prefix's answers (shared difficulty), each other row a perturbation of
    them (each answer flipped with probability `flip`, the same both ways: nothing planted)."""
    none = rng.random(q) < 1 / (1 + np.exp(-rng.normal(0, 1.5, q)))  # (Q,)
    flips = rng.random((rows - 1, q)) < flip  # (rows - 1, Q)
    return np.vstack([none, none ^ flips])


def test_route_takes_the_most_confident_and_no_prefix_on_ties():
    correct = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 0, 0]], bool)  # none, a, b
    conf = np.array([[1.0, 1.0, np.nan, 2.0], [2.0, 1.0, np.nan, 1.0], [3.0, 0.5, np.nan, 2.0]])
    chosen, pick = oracle.route(correct, conf)
    assert pick.tolist() == [2, 0, 0, 0]  # q1: a ties none -> none; q2: all NaN -> none
    assert chosen.tolist() == [True, False, True, False]


def test_router_does_not_beat_no_prefix_where_nothing_is_planted():
    """200 seeded null evals (5 people that only perturb no prefix, confidence unrelated to
    correctness): the share with p < 0.05 and a positive difference stays at the one-sided
    error rate (<= 0.025 expected; 0.05 + slack allowed)."""
    hits = []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        correct = _perturbed(rng, 6, 300)  # (6, Q)
        conf = rng.exponential(1.0, correct.shape)  # (6, Q) says nothing about correctness
        r = oracle.router(_kinds(5), correct, conf, stats.stats_rng(seed), 50)
        hits.append(r["p_value"] < 0.05 and r["diff_vs_no_prefix"] > 0)
    assert np.mean(hits) <= 0.05 + 0.03


def test_router_beats_no_prefix_with_a_strong_confident_person():
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        correct = _perturbed(rng, 6, 400)
        correct[3] = rng.random(400) < 0.8  # a strong person (no prefix is near 0.5) ...
        conf = rng.exponential(1.0, correct.shape)
        conf[3] += 3.0  # ... whose answers are also more confident
        r = oracle.router(_kinds(5), correct, conf, stats.stats_rng(seed), 500)
        assert r["diff_vs_no_prefix"] > 0.1 and r["p_value"] < 0.001 and r["ci95"][0] > 0
        assert r["share_no_prefix"] < 0.2 and r["n"] == 400


def test_router_needs_learned_people_and_confidences():
    correct = np.ones((3, 4), bool)
    assert oracle.router(_kinds(2), correct, None, stats.stats_rng(0), 10) is None
    assert oracle.router(_kinds(2), correct, np.full((3, 4), np.nan),
                         stats.stats_rng(0), 10) is None
    assert oracle.router(np.array(["none", "random", "random"]), correct, np.ones((3, 4)),
                         stats.stats_rng(0), 10) is None


def test_oracle_null_ceiling_grows_with_k_under_pure_noise():
    rng = np.random.default_rng(7)
    correct = _perturbed(rng, 1 + 2 * 12, 2000)  # none, then 12 "learned", 12 paraphrases
    ceilings = []
    for k in (1, 2, 4, 8, 12):
        rows = np.vstack([correct[:1], correct[1:1 + k], correct[13:13 + k]])
        null = oracle.oracle_null(_kinds(k, k), [f"p{i}" for i in range(2 * k + 1)], rows,
                                  stats.stats_rng(0), 300)
        assert null["k"] == k and null["p_value"] is None
        lo, hi = null["ceiling_ci95"]
        assert lo <= null["accuracy"] <= hi and null["ci95"][0] <= null["diff_vs_no_prefix"]
        ceilings.append(null["accuracy"])
    assert all(b > a for a, b in zip(ceilings, ceilings[1:], strict=False))
    assert ceilings[-1] - ceilings[0] > 0.1  # noise alone lifts the ceiling a lot


def test_oracle_null_verdict_persona_or_perturbation():
    rng = np.random.default_rng(3)
    base = _perturbed(rng, 4, 500)  # none + 3 perturbations
    same = np.vstack([base, base[1:]])  # learned = the paraphrases' answers exactly
    labels = [str(i) for i in range(7)]
    null = oracle.oracle_null(_kinds(3, 3), labels, same, stats.stats_rng(0), 300)
    assert null["verdict"] == "perturbation" and null["learned_minus_null"] == 0
    assert not null["identical_to_no_prefix"] and null["verdict_random"] is None
    better = same.copy()
    better[1] = True  # one learned person answers everything
    null = oracle.oracle_null(_kinds(3, 3), labels, better, stats.stats_rng(0), 300)
    assert null["verdict"] == "persona" and null["ceiling_learned"] == 1.0
    assert null["learned_minus_null_ci95"][0] > 0
    assert oracle.oracle_null(_kinds(3), labels[:4], base, stats.stats_rng(0), 10) is None


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("oracle") / "sim"
    with pytest.raises(SystemExit) as exc:
        cli.main(["simulate", "--planted-field", "Science", "--delta", "0.2", "--budget", "2560",
                  "--out", str(out), "--json"])
    assert exc.value.code in (0, None)
    return out


def test_paraphrase_rows_are_in_the_one_engine_call(sim_run):
    people = runs.run_people(sim_run)
    scenario = scenarios.planted_field(people, "Science", 0.2, 0.5)
    engine = WrappedEngine(synthetic.SyntheticEngine(people, scenario.accuracy, 0.5, 1.0, 0))
    cfg = heldout.config_for_run(sim_run, num_questions=40, bootstrap_samples=200, top_k=3,
                                 name="paraphrases")
    res = heldout.evaluate(cfg, sim_run, engine)
    assert len(engine.calls) == 1
    para = res.summary.filter(res.summary["prefix_kind"] == "paraphrase")
    assert para["prefix"].to_list() == [f"paraphrase {i + 1}: {t}"
                                        for i, t in enumerate(PARAPHRASES[:3])]
    assert (para["n"] == 40).all()
    assert res.oracle_null["k"] == 3 and res.router["k"] == 3
    # the synthetic engine hashes the person id: a person-free prompt answers as no prefix
    assert res.oracle_null["identical_to_no_prefix"] and res.oracle_null["diff_vs_no_prefix"] == 0
    # report recomputes the same numbers from the saved rows and states the verdict
    e = page.collect_eval(sim_run, "paraphrases")
    assert e["oracle_null"] == res.oracle_null and e["router"] == res.router
    assert any("Verdict: " in line for line in e["oracle_lines"])
    assert any("Confidence router" in line for line in e["oracle_lines"])


def test_eval_json_has_oracle_null_and_router(sim_run, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["eval", str(sim_run), "--engine", "synthetic", "--num-questions", "50",
                  "--bootstrap-samples", "200", "--name", "json", "--json"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    payload = json.loads(out[out.index("{\n"):])
    null, router = payload["oracle_null"], payload["router"]
    for d in (null, router):
        assert {"accuracy", "diff_vs_no_prefix", "ci95", "p_value"} <= set(d)
        assert isinstance(d["accuracy"], float) and isinstance(d["diff_vs_no_prefix"], float)
        assert len(d["ci95"]) == 2 and all(isinstance(x, float) for x in d["ci95"])
    assert null["p_value"] is None and isinstance(router["p_value"], float)
    assert 0 <= router["p_value"] <= 1 and not math.isnan(router["accuracy"])
    assert null["k"] == 5 and len(null["paraphrases"]) == 5
    assert null["verdict"] in ("persona", "perturbation")
    assert null["verdict_random"] in ("persona", "perturbation")
