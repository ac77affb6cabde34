"""Several benchmarks and contextual policies: the stratified draw, one engine call per
iteration with every scoring mode in it, the tables' benchmark / context / per-benchmark reward
columns, exact resume, and `simulate` learning a different planted field per context."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from conftest import WrappedEngine
from typer.testing import CliRunner

from prefixopt.engines import build
from prefixopt.learn.job import prepare_train, run_train
from prefixopt import runs

from prefixopt.cli import app
from prefixopt.config import EngineConfig, TaskConfig, TrainConfig
from prefixopt.learn.iteration import QuestionPlan, benchmark_names, stratify
from prefixopt.policy import Policy

THREE = "arc_easy,mmlu,gsm8k"  # cloze, letter and generate by default


def test_stratify_splits_by_weight_with_one_each():
    assert stratify(32, [1, 1]) == [16, 16]
    assert stratify(32, [1, 1, 2]) == [8, 8, 16]
    counts = stratify(10, [1, 100, 1])
    assert sum(counts) == 10 and min(counts) == 1
    with pytest.raises(Exception, match="smaller than the number of benchmarks"):
        stratify(2, [1, 1, 1])
    assert benchmark_names(TaskConfig(benchmark=" mmlu, gsm8k,mmlu ")) == ("mmlu", "gsm8k")


def _plan_inputs(bench_dir, context=None, batch=12):
    cfg = TrainConfig(task=TaskConfig(benchmark="arc_easy,mmlu", data_dir=str(bench_dir)),
                      batch_size=batch, samples_per_iteration=3, context=context,
                      engine=EngineConfig(kind="synthetic"))
    job = prepare_train(cfg, create=False)
    return job, QuestionPlan(job.questions, ("arc_easy", "mmlu"), batch, (), context)


def test_plan_draws_each_benchmarks_share_and_groups_by_context(bench_dir):
    job, plan = _plan_inputs(bench_dir)
    batch = plan.draw(np.random.default_rng(0))
    assert [q.benchmark for q in batch].count("mmlu") == plan.counts["mmlu"] == 6
    policy = Policy(job.people.field_index, job.people.era_index)
    (group,) = plan.groups(policy, np.random.default_rng(0), 3, common=True)
    assert group.context is None and len(group.rows) == 3 and len(group.questions[0]) == 12

    job, plan = _plan_inputs(bench_dir, context="subject")
    assert "-" in plan.context_names and "abstract_algebra" in plan.context_names
    policy = Policy(job.people.field_index, job.people.era_index,
                    n_contexts=len(plan.context_names))
    groups = plan.groups(policy, np.random.default_rng(1), 3, common=True)
    assert sum(len(g.questions[0]) for g in groups) == 12  # every question in one group
    for g in groups:  # a group's questions all share its context
        names = {plan.context_names[g.context]} | {
            (q.subject if q.benchmark == "mmlu" else "-") for q in g.questions[0]}
        assert len(names) == 1


def test_one_engine_call_per_iteration_with_three_scoring_modes(bench_dir, tmp_path):
    cfg = TrainConfig(task=TaskConfig(benchmark=THREE, data_dir=str(bench_dir)),
                      train_split="test[:40]", batch_size=9, samples_per_iteration=3,
                      iterations=2, context="benchmark", output_dir=str(tmp_path),
                      engine=EngineConfig(kind="synthetic"))
    job = prepare_train(cfg)
    engine = WrappedEngine(build.make_engine(cfg.engine, people=job.people)[0])
    run_train(job, engine)
    assert len(engine.calls) == 2  # ONE call per iteration
    assert all(sorted(set(m)) == ["cloze", "generate", "letter"] for m in engine.calls)
    samples = runs.scan(job.run_dir, "samples").collect()
    answers = runs.scan(job.run_dir, "answers").collect()
    assert samples.height == 2 * 3 * 3  # iterations x contexts x K
    assert set(samples["context"]) == {"arc_easy", "gsm8k", "mmlu"}
    assert {"reward_arc_easy", "reward_mmlu", "reward_gsm8k"} <= set(samples.columns)
    # every answer's context is its benchmark, and gsm8k rows carry their completion
    assert (answers["context"] == answers["benchmark"]).all()
    gsm = answers.filter(pl.col("benchmark") == "gsm8k")
    assert gsm["completion"].null_count() == 0
    assert answers.filter(pl.col("benchmark") != "gsm8k")["completion"].null_count() > 0
    iters = runs.scan(job.run_dir, "iterations").collect()
    assert iters["num_prompts"].to_list() == [27, 27]
    ckpt = runs.load_checkpoint(job.run_dir)
    assert ckpt["context_probs"].shape == (3, len(job.people.person_id))
    assert runs.read_config(job.run_dir)["persona_placement"] == "system"


def _simulate(*args):
    result = CliRunner().invoke(app, ["simulate", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


def test_simulate_contexts_learn_their_own_planted_field(bench_dir, monkeypatch):
    monkeypatch.setenv("PREFIXOPT_DATA_DIR", str(bench_dir))
    args = ["--benchmark", "arc_easy,mmlu", "--planted-field", "arc_easy=Science",
            "--planted-field", "mmlu=Philosophy", "--delta", "0.3", "--budget", "20000",
            "--seed", "3"]
    ctx = _simulate(*args, "--context", "benchmark")
    mass, share = ctx["planted_mass_by_context"], ctx["pool_share_by_context"]
    assert set(mass) == {"arc_easy", "mmlu"} and share["mmlu"] < share["arc_easy"]
    assert all(mass[b] > 3 * share[b] for b in mass), (mass, share)
    shared = _simulate(*args)  # one policy for both: cannot hold both fields at once
    assert min(shared["planted_mass_by_context"].values()) < min(mass.values())
    with pytest.raises(AssertionError):
        _simulate(*args[:2], "--planted-field", "hellaswag=Science", "--budget", "1000")


def test_contextual_run_resumes_exactly(bench_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("PREFIXOPT_DATA_DIR", str(bench_dir))
    common = ["train", "--engine", "synthetic", "--benchmark", "arc_easy,mmlu",
              "--context", "benchmark", "-k", "3", "-b", "8", "--output-dir", str(tmp_path)]
    for name, steps in (("whole", [4]), ("half", [2, 4])):
        for i, n in enumerate(steps):
            args = common + ["--run-name", name] if i == 0 else [
                "train", "--resume", str(tmp_path / name)]
            result = CliRunner().invoke(app, [*args, "--iterations", str(n)])
            assert result.exit_code == 0, result.output
    for table in runs.PART_TABLES:
        a, b = (runs.scan(tmp_path / n, table).collect().drop(
            ["generate_s", "wall_s", "host_s"], strict=False) for n in ("whole", "half"))
        assert a.equals(b), table


def test_contextual_eval_gives_each_question_its_contexts_top_person(bench_dir, tmp_path,
                                                                     monkeypatch, capsys):
    from prefixopt.cli import main

    monkeypatch.setenv("PREFIXOPT_DATA_DIR", str(bench_dir))
    run = tmp_path / "ctx"
    _simulate("--benchmark", "mmlu", "--planted-field", "Philosophy", "--context", "subject",
              "--delta", "0.3", "--budget", "8000", "--seed", "2", "--out", str(run))
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:  # the run's own (synthetic) engine by default
        main(["eval", str(run), "--num-questions", "120", "--top-k", "2", "--num-random", "1",
              "--bootstrap-samples", "300", "--json"])
    assert done.value.code == 0
    printed = capsys.readouterr().out  # the table, then the JSON
    out = json.loads(printed[printed.index("{\n"):])
    kinds = [p["prefix_kind"] for p in out["prefixes"]]
    assert kinds.count("contextual") == 1 and kinds[-1] == "contextual"
    names = {c["name"] for c in out["contrasts"]}
    assert {"contextual vs none", "contextual vs top learned"} <= names
    rows = runs.scan(run, f"eval/{out['eval']}").collect()
    ctx_rows = rows.filter(pl.col("prefix_kind") == "contextual")
    # every question's person is the top person of its subject's policy
    meta, ckpt = runs.read_config(run), runs.load_checkpoint(run)
    people = runs.run_people(run)
    top = {c: int(people.person_id[ckpt["context_probs"][i].argmax()])
           for i, c in enumerate(meta["contexts"])}
    subject = {q: q.split("/")[2] for q in ctx_rows["question_id"]}  # mmlu/<split>/<subject>/k
    assert all(pid == top[subject[q]] for q, pid in ctx_rows.select("question_id",
                                                                    "person_id").iter_rows())
    assert len(set(ctx_rows["person_id"])) > 1  # different subjects, different people
    contexts = pl.DataFrame(out["contexts"])
    assert contexts["n"].sum() == 120 and contexts.height == len(set(subject.values()))
    assert contexts["p_holm"].min() >= contexts["p_value"].min()
    # the report draws the context x field heat map from the checkpoint's context policies
    from prefixopt.report.page import build_report, collect_run

    report = build_report([run], None)
    assert any(str(f).endswith("context_field_mass.png") for f in report["figures"])
    mass = collect_run(run)["context_mass"]
    sums = mass.group_by("context").agg(pl.col("mass").sum())["mass"].to_numpy()
    np.testing.assert_allclose(sums, 1.0)
    assert set(mass["context"]) == set(meta["contexts"])


def test_multi_benchmark_eval_is_per_benchmark_and_pooled(bench_dir, tmp_path, monkeypatch,
                                                          capsys):
    from prefixopt import stats
    from prefixopt.cli import main
    from prefixopt.report.page import collect_run

    monkeypatch.setenv("PREFIXOPT_DATA_DIR", str(bench_dir))
    run = tmp_path / "two"
    _simulate("--benchmark", "arc_easy,mmlu", "--planted-field", "Science", "--budget", "3000",
              "--seed", "4", "--out", str(run))
    capsys.readouterr()
    with pytest.raises(SystemExit) as done:
        main(["eval", str(run), "--num-questions", "40", "--top-k", "2", "--num-random", "2",
              "--bootstrap-samples", "200", "--json"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    out = json.loads(printed[printed.index("{\n"):])
    assert [e["benchmark"] for e in out["evals"]] == ["arc_easy", "mmlu"]
    assert [e["eval"] for e in out["evals"]] == ["arc_easy_test_n40_seed0",
                                                "mmlu_test_n40_seed0"]
    pooled = {c["name"]: c for c in out["pooled"]}
    # the pooled learned-vs-none difference, recomputed directly from the two eval tables
    diffs = []
    for e in out["evals"]:
        rows = runs.scan(run, f"eval/{e['eval']}").collect()
        q = rows.group_by("prefix_kind", "question_id").agg(pl.col("correct").mean())
        w = q.pivot(on="prefix_kind", index="question_id", values="correct")
        diffs.append((w["learned"] - w["none"]).to_numpy())
    assert pooled["pooled learned vs none"]["diff"] == pytest.approx(
        np.concatenate(diffs).mean())
    assert pooled["pooled learned vs none"]["n_a"] == 1  # one pooled group row
    report = collect_run(run)
    assert report["pooled"][0].name == "pooled learned vs none"
    assert isinstance(report["pooled"][0], stats.Contrast)
