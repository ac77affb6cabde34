"""The oracle ceiling, the persona + no-prefix ensemble and clustered intervals: exact values on
hand-made tables, and the eval JSON contract on a simulate run."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from prefixopt.engines import build
from prefixopt.evaluate import compare
from prefixopt import stats

from prefixopt.evaluate import robustness
from prefixopt.cli import main


def test_oracle_ceilings_count_questions_some_prefix_gets_right():
    kinds = np.array(["none", "learned", "learned", "random", "random", "handwritten"])
    correct = np.array([[1, 0, 0, 0, 0],  # none
                        [0, 1, 0, 0, 0],  # learned
                        [0, 0, 1, 0, 0],  # learned
                        [0, 1, 0, 0, 0],  # random
                        [0, 0, 0, 0, 0],  # random
                        [0, 0, 0, 1, 0]], bool)  # handwritten
    c = robustness.oracle_ceilings(kinds, correct)
    assert c["oracle_ceiling"] == pytest.approx(4 / 5)
    assert c["oracle_k"] == 2
    assert c["oracle_ceiling_learned"] == pytest.approx(3 / 5)
    assert c["oracle_ceiling_random"] == pytest.approx(2 / 5)


def _rows(persona_correct, persona_conf, none_correct, none_conf, kind="learned"):
    q = [f"q{i}" for i in range(len(none_correct))]
    return pl.DataFrame({
        "prefix_index": [0] * len(q) + [1] * len(q),
        "prefix_kind": ["none"] * len(q) + [kind] * len(q),
        "prefix": ["(none)"] * len(q) + ["Ada Lovelace"] * len(q),
        "question_id": q + q, "correct": list(none_correct) + list(persona_correct),
        "confidence": list(none_conf) + list(persona_conf)})


def test_ensemble_takes_the_more_confident_answer_and_none_on_ties():
    rows = _rows([1, 1, 0, 0], [2.0, 0.5, 3.0, 1.0], [0, 0, 1, 1], [1.0, 1.0, 1.0, 1.0])
    e = robustness.ensemble(rows, np.random.default_rng(0), 200)
    # q0: persona (2 > 1) right; q1: none (1 > .5) wrong; q2: persona wrong; q3: tie -> none right
    assert e["persona"] == "Ada Lovelace" and e["persona_share"] == pytest.approx(0.5)
    assert e["accuracy"] == pytest.approx(0.5) and e["diff_vs_none"] == pytest.approx(0.0)
    generate = _rows([1, 0], [np.nan, np.nan], [0, 1], [np.nan, np.nan])
    assert robustness.ensemble(generate, np.random.default_rng(0), 100) is None
    assert robustness.ensemble(_rows([1], [1.0], [0], [0.0], kind="random"),
                               np.random.default_rng(0), 10) is None


def test_clustered_interval_is_wider_and_can_undo_significance():
    rng = np.random.default_rng(3)
    clusters = np.repeat(["a", "b", "c", "d"], 50)  # 4 subjects of 50 questions
    diff = np.concatenate([np.ones(100), np.zeros(100)])  # the gain sits in 2 subjects
    lo, hi = stats.bootstrap_mean_ci(diff, rng, 2000)
    clo, chi, p = robustness.cluster_bootstrap(diff, clusters, rng, 2000)
    assert lo > 0.4 and (chi - clo) > 2 * (hi - lo)
    assert clo <= 0.0 and p > 0.05  # 4 clusters cannot rule out no effect
    assert robustness.cluster_bootstrap(np.zeros(8), np.repeat(["a", "b"], 4), rng, 100)[2] == 1


def test_summarise_uses_the_clustered_p_when_questions_cluster():
    q = [f"q{i:03d}" for i in range(200)]
    none = np.zeros(200, bool)
    better = np.concatenate([np.ones(100, bool), np.zeros(100, bool)])
    rows = pl.DataFrame({
        "prefix_index": [0] * 200 + [1] * 200, "prefix_kind": ["none"] * 200 + ["learned"] * 200,
        "prefix": ["(none)"] * 200 + ["X"] * 200, "person_id": [-1] * 200 + [7] * 200,
        "question_id": q + q, "correct": np.concatenate([none, better]),
        "cluster": list(np.repeat(["a", "b", "c", "d"], 50)) * 2})
    plain, _ = compare.summarise(rows.drop("cluster"), np.random.default_rng(0), 2000)
    clustered, _ = compare.summarise(rows, np.random.default_rng(0), 2000)
    assert bool(plain["significant"][1]) and not bool(clustered["significant"][1])
    assert clustered["p_holm"][1] >= clustered["p_cluster"][1] > 0.05
    assert clustered["p_value"][1] == plain["p_value"][1]  # McNemar is still shown
    assert "diff_low_cluster" not in plain.columns


def _deterministic_eval(bench: str, random_ids: list[int], q: int = 100) -> pl.DataFrame:
    """none wrong everywhere; 5 random people, the first two right everywhere."""
    correct = np.zeros((6, q), bool)
    correct[1:3] = True
    pids = [-1, *random_ids]
    return pl.DataFrame({
        "prefix_index": np.repeat(np.arange(6), q),
        "prefix_kind": np.repeat(["none"] + ["random"] * 5, q),
        "prefix": np.repeat([f"p{i}" for i in range(6)], q), "person_id": np.repeat(pids, q),
        "question_id": [f"{bench}/q{j:03d}" for _ in range(6) for j in range(q)],
        "correct": correct.ravel()})


def test_pooled_contrasts_resample_the_same_random_people_once():
    # the same 5 random people on two benchmarks: one draw of people serves both, so the
    # pooled interval is still that of the mean of 5 draws from {1, 1, 0, 0, 0}: [0, 0.8]
    # (Binomial(5, 0.4) / 5, see test_stats). Other people on the second benchmark: two
    # independent draws, about the mean of 10 draws, Binomial(10, 0.4) / 10: [0.1, 0.7]
    # (P(X <= 0) = .006, P(X <= 1) = .046; P(X <= 6) = .945, P(X <= 7) = .988; about: the
    # resampled questions weigh the two benchmarks' draws a little unequally)
    a = _deterministic_eval("a", [11, 12, 13, 14, 15])
    same = robustness.pooled_contrasts([a, _deterministic_eval("b", [11, 12, 13, 14, 15])],
                                       stats.stats_rng(0), 10_000)
    (c,) = same
    assert c.name == "pooled random vs none" and c.resampled == "questions+people"
    assert (c.diff, c.low, c.high) == (pytest.approx(0.4), pytest.approx(0.0), pytest.approx(0.8))
    other = robustness.pooled_contrasts([a, _deterministic_eval("b", [21, 22, 23, 24, 25])],
                                        stats.stats_rng(0), 10_000)
    assert (other[0].low, other[0].high) == (pytest.approx(0.1, abs=0.02),
                                             pytest.approx(0.7, abs=0.02))


def test_eval_json_has_the_ceiling_and_the_ensemble(bench_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PREFIXOPT_DATA_DIR", str(bench_dir))
    run = tmp_path / "sim"
    with pytest.raises(SystemExit):
        main(["simulate", "--benchmark", "mmlu", "--planted-field", "Philosophy", "--delta",
              "0.2", "--budget", "4000", "--seed", "1", "--out", str(run)])
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["eval", str(run), "--num-questions", "150", "--bootstrap-samples", "300",
              "--json"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    out = json.loads(printed[printed.index("{\n"):])
    assert 0 < out["oracle_ceiling_random"] <= out["oracle_ceiling"] <= 1
    # what each contrast's bootstrap resampled: the random people too where they take part
    got = {c["name"]: c["resampled"] for c in out["contrasts"]}
    assert got["learned vs random"] == got["random vs none"] == "questions+people"
    assert got["learned vs none"] == got["handwritten vs none"] == "questions"
    assert out["ensemble"]["n"] == 150 and out["ensemble"]["persona"]
    assert all("p_cluster" in p for p in out["prefixes"])  # MMLU questions cluster by subject


def test_formats_are_scored_in_one_call_and_a_finding_must_survive_both(bench_dir, tmp_path,
                                                                       monkeypatch, capsys):

    monkeypatch.setenv("PREFIXOPT_DATA_DIR", str(bench_dir))
    run = tmp_path / "sim"
    with pytest.raises(SystemExit):
        main(["simulate", "--planted-field", "Science", "--delta", "0.3", "--budget", "4000",
              "--seed", "2", "--out", str(run)])
    calls = []
    make = build.make_engine

    def counting(*args, **kwargs):
        engine, start = make(*args, **kwargs)
        run_ = engine.run
        engine.run = lambda requests, mode, **kw: (calls.append(len(requests)),
                                                   run_(requests, mode, **kw))[1]
        return engine, start

    monkeypatch.setattr(build, "make_engine", counting)
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["eval", str(run), "--num-questions", "60", "--formats", "chat,harness",
              "--bootstrap-samples", "200", "--json"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    out = json.loads(printed[printed.index("{\n"):])
    assert len(calls) == 1  # both formats, every prefix: ONE engine call
    assert [e["eval"] for e in out["evals"]] == ["test_n60_seed0_chat", "test_n60_seed0_harness"]
    (table,) = out["formats"]
    # each format: every prefix x 60 questions, and no prefix on the distinct training
    # questions of the learned people (the winner's-curse baseline, rendered as in training)
    learned = [p["person_id"] for p in out["evals"][0]["prefixes"] if p["prefix_kind"] == "learned"]
    answers = pl.read_parquet(run / "answers" / "*.parquet")
    trained = answers.filter(pl.col("person_id").is_in(learned))["question_id"].n_unique()
    assert calls[0] == 2 * (60 * len(table) + trained)


def test_compare_keeps_only_what_is_significant_in_every_format():
    from prefixopt.evaluate.variants import compare

    class R:  # the two fields compare reads of an EvalResult
        def __init__(self, name, acc, diff, sig):
            self.name = name
            self.summary = pl.DataFrame({
                "prefix_index": [0, 1, 2], "prefix": ["(none)", "A", "B"],
                "prefix_kind": ["none", "learned", "learned"], "accuracy": acc,
                "diff_vs_none": diff, "significant": sig})

    t = compare([R("x_chat", [0.5, 0.6, 0.7], [0.0, 0.1, 0.2], [False, True, True]),
                 R("x_harness", [0.5, 0.7, 0.55], [0.0, 0.2, 0.05], [False, True, False])])
    assert t["survives"].to_list() == [False, True, False]
    assert t["rank_correlation"][0] == pytest.approx(0.5)
