"""`prefixopt eval` end to end: a run trained by `simulate` (the synthetic engine), evaluated on
held-out questions: files, schema, one engine call, the overlap guard, named people without a
run, and one evaluation with the real engine and the embedded model on a tiny split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from prefixopt import cli, evaluate, jobs, runs, simulate
from prefixopt.config import EvalConfig, TaskConfig
from prefixopt.engines import synthetic
from prefixopt.errors import PrefixoptError

ROW_COLUMNS = {"prefix_kind", "prefix", "person_id", "question_id", "correct", "parsed", "pred",
               "gold", "margin"}
SUMMARY_COLUMNS = {"prefix_kind", "prefix", "person_id", "n", "accuracy", "ci_low", "ci_high",
                   "diff_vs_none", "diff_low", "diff_high", "p_value", "p_holm", "significant",
                   "train_reward", "curse_gap"}


class CountingEngine:
    """Delegates to an engine and counts engine.run calls (eval must make exactly one)."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def render_chat(self, system, user):
        return self.inner.render_chat(system, user)

    def run(self, requests, mode, **kw):
        self.calls += 1
        return self.inner.run(requests, mode, **kw)

    def info(self):
        return self.inner.info()


def simulate_run(tmp: Path, name: str, *extra: str) -> Path:
    """A small `prefixopt simulate` run kept on disk (planted Science field by default)."""
    out = tmp / name
    args = ["simulate", *(extra or ("--planted-field", "Science", "--delta", "0.2")),
            "--budget", "2560", "--out", str(out), "--json"]
    with pytest.raises(SystemExit) as exc:
        cli.main(args)
    assert exc.value.code in (0, None)
    return out


def planted_engine(run_dir: Path, delta: float = 0.2, seed: int = 0):
    people = runs.run_people(run_dir)
    scenario = simulate.planted_field(people, "Science", delta, 0.5)
    return synthetic.SyntheticEngine(people, scenario.accuracy, 0.5, 1.0, seed)


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory) -> Path:
    return simulate_run(tmp_path_factory.mktemp("eval"), "sim")


def test_eval_files_schema_and_one_engine_call(sim_run):
    engine = CountingEngine(planted_engine(sim_run))
    cfg = evaluate.config_for_run(sim_run, num_questions=60, bootstrap_samples=300)
    res = evaluate.evaluate(cfg, sim_run, engine)
    assert engine.calls == 1
    assert res.name == "test_n60_seed0"
    rows = runs.scan(sim_run, "eval/test_n60_seed0").collect()
    summary = runs.scan(sim_run, "eval/test_n60_seed0_summary").collect()
    assert ROW_COLUMNS <= set(rows.columns) and SUMMARY_COLUMNS <= set(summary.columns)
    kinds = summary["prefix_kind"].to_list()
    assert kinds.count("none") == 1 and kinds.count("learned") == 5
    assert kinds.count("random") == 5 and kinds.count("handwritten") == 2
    assert len(rows) == len(summary) * 60
    # paired: every prefix answered the same 60 questions, none of them from training
    per_prefix = rows.group_by("prefix_index").agg(pl.col("question_id").sort())
    assert len({tuple(q) for q in per_prefix["question_id"].to_list()}) == 1
    trained = set(runs.scan(sim_run, "answers").select("question_id").collect()["question_id"])
    assert not trained & set(rows["question_id"])
    # the learned prefixes are the run's top-5 people by final probability
    people, probs = runs.run_people(sim_run), runs.final_probs(sim_run)
    top5 = people.person_id[np.argsort(-probs, kind="stable")[:5]]
    learned = summary.filter(pl.col("prefix_kind") == "learned")
    assert learned["person_id"].to_list() == top5.tolist()
    assert learned["train_reward"].null_count() == 0
    # summary numbers equal a direct computation over the rows
    direct = rows.group_by("prefix_index").agg(acc=pl.col("correct").mean()).sort("prefix_index")
    np.testing.assert_allclose(summary["accuracy"], direct["acc"])
    none_acc = direct["acc"][0]
    np.testing.assert_allclose(summary["diff_vs_none"], direct["acc"] - none_acc)
    ok = summary.filter(pl.col("prefix_kind") != "none")
    assert (ok["p_holm"] >= ok["p_value"] - 1e-12).all()
    assert (ok["ci_low"] <= ok["accuracy"]).all() and (ok["accuracy"] <= ok["ci_high"]).all()


def test_overlap_guard_cli(sim_run, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["eval", str(sim_run), "--eval-split", "train", "--engine", "synthetic"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "not held out" in err and "--allow-overlap" in err
    assert not (sim_run / "eval" / "train.parquet").exists()


def test_allow_overlap(sim_run):
    cfg = evaluate.config_for_run(sim_run, eval_split="train", num_questions=40,
                                  allow_overlap=True, bootstrap_samples=200, num_random=1)
    res = evaluate.evaluate(cfg, sim_run, planted_engine(sim_run))
    assert res.overlap > 0
    assert (sim_run / "eval" / "train_n40_seed0_summary.parquet").is_file()


def test_named_people_without_a_run(tmp_path):
    from prefixopt.people import load_people

    people = load_people()
    engine = synthetic.SyntheticEngine(people, np.full(len(people), 0.5), 0.5, 1.0, 0)
    cfg = EvalConfig(task=TaskConfig(benchmark="arc_easy"), top_k=0, num_random=0,
                     people_names=("albert einstein",), num_questions=30,
                     bootstrap_samples=200, output_dir=str(tmp_path), run_name="named")
    res = evaluate.evaluate(cfg, None, engine)
    assert res.run_dir == tmp_path / "named"
    assert runs.read_config(res.run_dir)["kind"] == "eval"
    kinds = res.summary["prefix_kind"].to_list()
    assert kinds == ["none", "handwritten", "handwritten", "named"]
    assert res.summary["prefix"][-1] == "Albert Einstein"
    with pytest.raises(PrefixoptError, match="no person named"):
        evaluate.evaluate(EvalConfig(people_names=("Albert Einstien",), top_k=0, num_random=0,
                                     output_dir=str(tmp_path)), None, engine)


def test_cli_eval_synthetic_json(sim_run, capsys):
    syn = runs.read_config(sim_run)["synthetic"]  # simulate records its planted scenario
    people = runs.run_people(sim_run)
    science = people.person_id[people.field_index == people.fields.index("Science")]
    assert syn["delta"] == pytest.approx(0.2) and syn["base_accuracy"] == 0.5
    assert sorted(syn["planted_person_ids"]) == sorted(science.tolist())
    # and eval --engine synthetic rebuilds exactly that engine
    rebuilt = jobs.synthetic_engine_for_run(sim_run)
    np.testing.assert_array_equal(rebuilt.accuracy, planted_engine(sim_run).accuracy)
    with pytest.raises(SystemExit) as exc:
        cli.main(["eval", str(sim_run), "--engine", "synthetic", "--num-questions", "50",
                  "--bootstrap-samples", "200", "--json"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    import json

    payload = json.loads(out[out.index("{\n"):])
    assert payload["num_questions"] == 50 and len(payload["prefixes"]) == 13


def test_bad_num_questions_is_one_line(sim_run, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["eval", str(sim_run), "--engine", "synthetic", "--num-questions", "999999"])
    assert exc.value.code == 2
    assert "--num-questions" in capsys.readouterr().err


@pytest.mark.engine
def test_eval_real_engine_tiny_split(sim_run, real_engine):
    """The real vLLM engine with the embedded model: 8 ARC-Easy test questions, top-1 learned,
    1 random, no prefix and the hand-written prompts, in one call. Plumbing only."""
    engine = CountingEngine(real_engine)
    cfg = evaluate.config_for_run(sim_run, num_questions=8, top_k=1, num_random=1,
                                  bootstrap_samples=200, seed=3)
    res = evaluate.evaluate(cfg, sim_run, engine)
    assert engine.calls == 1
    rows = runs.scan(sim_run, f"eval/{res.name}").collect()
    assert len(rows) == 5 * 8
    assert rows["parsed"].all()  # cloze always yields a prediction
    assert set(rows["pred"].unique()) <= {"A", "B", "C", "D", "E"}
    assert rows["margin"].is_finite().all()
    assert "engine_start_s" not in res.timings and res.timings["score_s"] > 0


def test_existing_eval_is_not_overwritten(sim_run):
    cfg = evaluate.config_for_run(sim_run, num_questions=20, bootstrap_samples=100, seed=9,
                                  num_random=0)
    evaluate.evaluate(cfg, sim_run, planted_engine(sim_run))
    before = (sim_run / "eval" / "test_n20_seed9.parquet").read_bytes()
    with pytest.raises(PrefixoptError, match="exists; pass --name"):
        evaluate.evaluate(cfg, sim_run, planted_engine(sim_run))
    assert (sim_run / "eval" / "test_n20_seed9.parquet").read_bytes() == before
    from dataclasses import replace

    res = evaluate.evaluate(replace(cfg, name="again"), sim_run, planted_engine(sim_run))
    assert res.name == "again" and (sim_run / "eval" / "again_summary.parquet").is_file()
    evaluate.evaluate(replace(cfg, overwrite=True), sim_run, planted_engine(sim_run))
