"""`prefixopt eval` end to end: a run trained by `simulate` (the synthetic engine), evaluated on
held-out questions: files, schema, one engine call, the overlap guard, named people without a
run, and one evaluation with the real engine and the embedded model on a tiny split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import WrappedEngine

from prefixopt.engines import build
from prefixopt.engines import scenarios
from prefixopt.learn.job import prepare_train
from prefixopt import cli, runs

from prefixopt.evaluate import export

from prefixopt.evaluate import heldout

from prefixopt import pipeline

from prefixopt.config import EvalConfig, TaskConfig
from prefixopt.engines import synthetic
from prefixopt.errors import PrefixoptError

ROW_COLUMNS = {"prefix_kind", "prefix", "person_id", "question_id", "correct", "parsed", "pred",
               "gold", "margin"}
SUMMARY_COLUMNS = {"prefix_kind", "prefix", "person_id", "n", "accuracy", "ci_low", "ci_high",
                   "diff_vs_none", "diff_low", "diff_high", "p_value", "p_holm", "significant",
                   "train_reward", "curse_gap"}


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
    scenario = scenarios.planted_field(people, "Science", delta, 0.5)
    return synthetic.SyntheticEngine(people, scenario.accuracy, 0.5, 1.0, seed)


@pytest.fixture(scope="module")
def sim_run(tmp_path_factory) -> Path:
    return simulate_run(tmp_path_factory.mktemp("eval"), "sim")


def test_eval_files_schema_and_one_engine_call(sim_run):
    engine = WrappedEngine(planted_engine(sim_run))
    cfg = heldout.config_for_run(sim_run, num_questions=60, bootstrap_samples=300)
    res = heldout.evaluate(cfg, sim_run, engine)
    assert len(engine.calls) == 1
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
    assert not trained & set(rows["question_id"])  # the text check: test_eval_drops_not_held_out
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
    cfg = heldout.config_for_run(sim_run, eval_split="train", num_questions=40,
                                  allow_overlap=True, bootstrap_samples=200, num_random=1)
    res = heldout.evaluate(cfg, sim_run, planted_engine(sim_run))
    assert res.overlap > 0
    assert (sim_run / "eval" / "train_n40_seed0_summary.parquet").is_file()


def test_named_people_without_a_run(tmp_path):
    from prefixopt.people import load_people

    people = load_people()
    engine = synthetic.SyntheticEngine(people, np.full(len(people), 0.5), 0.5, 1.0, 0)
    cfg = EvalConfig(task=TaskConfig(benchmark="arc_easy"), top_k=0, num_random=0,
                     people_names=("albert einstein",), num_questions=30,
                     bootstrap_samples=200, output_dir=str(tmp_path), run_name="named")
    res = heldout.evaluate(cfg, None, engine)
    assert res.run_dir == tmp_path / "named"
    assert runs.read_config(res.run_dir)["kind"] == "eval"
    kinds = res.summary["prefix_kind"].to_list()
    assert kinds == ["none", "handwritten", "handwritten", "named"]
    assert res.summary["prefix"][-1] == "Albert Einstein"
    with pytest.raises(PrefixoptError, match="no person named"):
        heldout.evaluate(EvalConfig(people_names=("Albert Einstien",), top_k=0, num_random=0,
                                     output_dir=str(tmp_path)), None, engine)


def test_cli_eval_synthetic_json(sim_run, capsys):
    syn = runs.read_config(sim_run)["synthetic"]  # simulate records its planted scenario
    people = runs.run_people(sim_run)
    science = people.person_id[people.field_index == people.fields.index("Science")]
    assert syn["delta"] == pytest.approx(0.2) and syn["base_accuracy"] == 0.5
    assert sorted(syn["planted_person_ids"]) == sorted(science.tolist())
    # and eval --engine synthetic rebuilds exactly that engine
    rebuilt = build.synthetic_engine_for_run(sim_run)
    np.testing.assert_array_equal(rebuilt.accuracy, planted_engine(sim_run).accuracy)
    with pytest.raises(SystemExit) as exc:
        cli.main(["eval", str(sim_run), "--engine", "synthetic", "--num-questions", "50",
                  "--bootstrap-samples", "200", "--json"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    payload = json.loads(out[out.index("{\n"):])
    # none + 5 learned + 5 random + 2 hand-written + 5 paraphrases (the oracle null)
    assert payload["num_questions"] == 50 and len(payload["prefixes"]) == 18


def test_bad_num_questions_is_one_line(sim_run, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["eval", str(sim_run), "--engine", "synthetic", "--num-questions", "999999"])
    assert exc.value.code == 2
    assert "--num-questions" in capsys.readouterr().err


@pytest.mark.engine
def test_eval_real_engine_tiny_split(sim_run, real_engine):
    """The real vLLM engine with the embedded model: 8 ARC-Easy test questions, top-1 learned,
    1 random, no prefix, the hand-written prompts and the paraphrase null, in one call.
    Plumbing only."""
    engine = WrappedEngine(real_engine)
    cfg = heldout.config_for_run(sim_run, num_questions=8, top_k=1, num_random=1,
                                  bootstrap_samples=200, seed=3)
    res = heldout.evaluate(cfg, sim_run, engine)
    assert len(engine.calls) == 1
    rows = runs.scan(sim_run, f"eval/{res.name}").collect()
    # none, 1 learned, 1 random, 2 hand-written and 1 paraphrase (k = the learned people)
    assert len(rows) == 6 * 8
    assert (rows["prefix_kind"] == "paraphrase").sum() == 8
    assert rows["parsed"].all()  # cloze always yields a prediction
    assert set(rows["pred"].unique()) <= {"A", "B", "C", "D", "E"}
    assert rows["margin"].is_finite().all()
    assert "engine_start_s" not in res.timings and res.timings["score_s"] > 0
    # the eval's own numerics, recorded (its training may have run in another dtype)
    assert runs.read_config(sim_run)["evals"][res.name]["dtype"] == real_engine.info()["dtype"]


def test_existing_eval_is_not_overwritten(sim_run):
    cfg = heldout.config_for_run(sim_run, num_questions=20, bootstrap_samples=100, seed=9,
                                  num_random=0)
    heldout.evaluate(cfg, sim_run, planted_engine(sim_run))
    before = (sim_run / "eval" / "test_n20_seed9.parquet").read_bytes()
    with pytest.raises(PrefixoptError, match="exists; pass --name"):
        heldout.evaluate(cfg, sim_run, planted_engine(sim_run))
    assert (sim_run / "eval" / "test_n20_seed9.parquet").read_bytes() == before
    from dataclasses import replace

    res = heldout.evaluate(replace(cfg, name="again"), sim_run, planted_engine(sim_run))
    assert res.name == "again" and (sim_run / "eval" / "again_summary.parquet").is_file()
    heldout.evaluate(replace(cfg, overwrite=True), sim_run, planted_engine(sim_run))


def _arc_row(qid: str, stem: str, answers: tuple[str, ...] = ("alpha", "beta")) -> str:
    choices = [{"text": t, "label": "AB"[i]} for i, t in enumerate(answers)]
    return json.dumps({"id": qid, "question": {"stem": stem, "choices": choices},
                       "answerKey": "A"})


def test_eval_drops_questions_that_are_not_held_out(tmp_path):
    """A run whose held-out split repeats its training questions under other ids (case and
    spacing changed) and repeats itself: those are dropped and counted, never scored as
    held out; the run's few-shot examples are reused and are none of the scored questions."""
    data = tmp_path / "data" / "arc_easy"
    data.mkdir(parents=True)
    train = [_arc_row(f"t{i}", f"Train question {i}?") for i in range(30)]
    test = [_arc_row(f"e{i}", f"Held-out question {i}?") for i in range(20)]
    test += [_arc_row(f"copy{i}", f"  TRAIN question {i}? ") for i in range(3)]  # training twins
    test += [_arc_row("again0", "Held-out  question 0?"),  # repeats within the split
             _arc_row("again1", "held-out question 1?")]
    (data / "train.jsonl").write_text("\n".join(train) + "\n")
    (data / "test.jsonl").write_text("\n".join(test) + "\n")
    with pytest.raises(SystemExit) as exc:
        cli.main(["train", "--engine", "synthetic", "--data-dir", str(tmp_path / "data"),
                  "--output-dir", str(tmp_path), "--run-name", "leak", "-k", "2", "-b", "4",
                  "--iterations", "1", "--num-fewshot", "2", "--json"])
    assert exc.value.code in (0, None)
    run = tmp_path / "leak"
    people = runs.run_people(run)
    engine = synthetic.SyntheticEngine(people, np.full(len(people), 0.5), 0.5, 1.0, 0)
    res = heldout.evaluate(heldout.config_for_run(run, num_random=1, bootstrap_samples=100),
                            run, engine)
    payload = export.result_json(res)  # what --json prints
    assert payload["num_questions"] == 20  # 25 rows: 3 training twins and 2 repeats left out
    rows = runs.scan(run, "eval/test").collect()
    assert set(rows["question_id"]) == {f"arc_easy/e{i}" for i in range(20)}
    summary = runs.scan(run, "eval/test_summary").collect()
    assert summary["dropped_train_duplicates"].unique().to_list() == [3]
    assert summary["dropped_eval_duplicates"].unique().to_list() == [2]
    recorded = runs.read_config(run)["fewshot_ids"]["arc_easy"]
    assert payload["prefixes"][0]["dropped_train_duplicates"] == 3
    held = runs.read_config(run)["evals"]["test"]
    assert held["train_duplicates"] == 3 and held["eval_duplicates"] == 2
    assert held["num_questions"] == 20 and held["fewshot_ids"] == recorded
    assert held["fewshot_source"].startswith("the run's")
    assert not set(recorded) & set(rows["question_id"])  # no example is an eval id
    inputs = heldout.eval_inputs(heldout.config_for_run(run, overwrite=True), run)
    assert inputs.fewshot.ids == recorded and held == {**inputs.held_out, "split": "test",
                                                       "num_questions": 20,
                                                       "budget": held["budget"],  # test_budget
                                                       "dtype": None}  # synthetic: no dtype


def test_eval_of_a_run_without_recorded_fewshot_falls_back(sim_run, bench_dir):
    """A run from before the few-shot record: eval still runs, draws examples that are none of
    its scored questions, and says so."""
    from dataclasses import replace

    from prefixopt.benchmarks import split_seen

    cfg = heldout.config_for_run(sim_run, num_questions=50, seed=5)
    cfg = replace(cfg, task=replace(cfg.task, num_fewshot=3))
    assert "fewshot_ids" not in runs.read_config(sim_run)
    inputs = heldout.eval_inputs(cfg, sim_run)
    assert len(inputs.fewshot) == 3 and "drawn with the eval seed" in inputs.held_out[
        "fewshot_source"] and "the run used 0" in inputs.held_out["fewshot_source"]
    _, same_id, same_text = split_seen(inputs.questions, inputs.fewshot)
    assert not same_id and not same_text
    # the shared ARC-Easy test split holds 2 questions of its train split (other ids)
    full = heldout.eval_inputs(heldout.config_for_run(sim_run), sim_run)
    assert full.held_out["train_duplicates"] == 2 and len(full.questions) == 2376 - 2


def test_hellaswag_offline_halves_share_no_example_or_context(bench_dir, monkeypatch):
    """Offline HellaSwag trains on one validation half and evaluates on the other; its few-shot
    split is validation too. No example is a held-out question (id or text), the examples
    leave the training half, and the 12 contexts the halves share are not scored as held out."""
    from prefixopt.benchmarks import load_split, split_seen
    from prefixopt.config import EngineConfig, TrainConfig

    monkeypatch.setenv("PREFIXOPT_DATA_DIR", str(bench_dir))
    cfg = TrainConfig(engine=EngineConfig(kind="synthetic"), train_split="validation[:50%]",
                      task=TaskConfig(benchmark="hellaswag", num_fewshot=5))
    job = prepare_train(cfg, create=False)
    (ecfg,) = pipeline.eval_configs_for(job, eval_split="validation[50%:]")
    inputs = pipeline.check_eval_for(job, ecfg)
    half = load_split("hellaswag", "validation[50%:]", data_dir=bench_dir)
    assert split_seen(half, job.fewshot)[0] == half  # drawn from the training half only
    assert split_seen(job.questions, job.fewshot)[0] == job.questions  # and taken out of it
    assert len(job.questions) == 5021 - 5 and inputs.fewshot.ids == job.fewshot.ids
    held = inputs.held_out
    assert held["eval_duplicates"] == 12  # repeats within the second half
    assert held["train_duplicates"] == 11  # contexts of the first half (12, one a repeat)
    assert len(inputs.questions) == len(half) - 12 - 11
    assert not split_seen(inputs.questions, load_split("hellaswag", "validation[:50%]",
                                                       data_dir=bench_dir))[2]
