"""The one training loop (learn/loop.py) over every learner: one engine call per iteration, the
same leading columns in every learner's tables, the checkpoint where runs.checkpoint_path says,
the summary's top_confidence_kind; and the run-directory paths of runs.py (checkpoint, eval)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from prefixopt import runs
from prefixopt.benchmarks import load_split
from prefixopt.config import TrainConfig
from prefixopt.engines.synthetic import SyntheticEngine
from prefixopt.learn import learners, loop
from prefixopt.people import load_people

ANSWERS = ["iteration", "sample", "person_id", "question_id", "benchmark", "correct", "parsed",
           "pred", "gold", "margin", "rule", "prompt_tokens", "cached_tokens", "output_tokens"]
SAMPLES = ["iteration", "sample", "person_id", "row", "name", "field", "era", "reward",
           "advantage", "prob"]


@pytest.fixture(scope="module")
def people(people_csv):
    return load_people(people_csv)


@pytest.fixture(scope="module")
def questions(bench_dir):
    return load_split("arc_easy", "train", data_dir=bench_dir)[:200]


class Counting:
    """The synthetic engine, counting its calls."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def run(self, requests, mode, **kw):
        self.calls += 1
        return self.inner.run(requests, mode, **kw)


@pytest.mark.parametrize("learner", learners.LEARNERS)
def test_every_learner_runs_the_one_loop(people, questions, tmp_path, learner):
    acc = np.full(len(people.person_id), 0.5)
    engine = Counting(SyntheticEngine(people, acc, 0.5, 1.0, 0))
    cfg = TrainConfig(learner=learner, iterations=3, samples_per_iteration=4, batch_size=4,
                      checkpoint_every=2)
    out = loop.train(cfg, engine, people, questions, tmp_path / "r")
    done = out["iterations_done"]
    assert done >= 1 and engine.calls == done  # ONE engine call per iteration
    answers = runs.scan(tmp_path / "r", "answers").collect()
    samples = runs.scan(tmp_path / "r", "samples").collect()
    iterations = runs.scan(tmp_path / "r", "iterations").collect()
    assert answers.columns[: len(ANSWERS)] == ANSWERS
    assert samples.columns[: len(SAMPLES)] == SAMPLES
    assert iterations.height == done and answers.height == out["evaluations"]
    # timing columns: reinforce's rows have them, the bandits' keep their older schema
    assert ("wall_s" in iterations.columns) == (learner == "reinforce")
    assert runs.checkpoint_path(tmp_path / "r").is_file()
    assert int(runs.load_checkpoint(tmp_path / "r")["iteration"]) == done - 1
    kind = "paired" if learner == "reinforce" else learners.BANDIT_KIND
    assert out["top_confidence_kind"] == kind
    assert runs.read_config(tmp_path / "r")["learner"] == learner
    # a snapshot every checkpoint_every iterations and at the end
    snaps = sorted(p.name for p in runs.checkpoint_path(tmp_path / "r").parent.glob("theta_*"))
    assert snaps[-1] == f"theta_{done - 1:06d}.npy"


def test_run_paths(tmp_path):
    assert runs.checkpoint_path(tmp_path) == tmp_path / "checkpoints" / "latest.npz"
    assert not runs.has_checkpoint(tmp_path)
    runs.save_checkpoint(tmp_path, {"probs": np.ones(3) / 3}, iteration=0)
    assert runs.has_checkpoint(tmp_path)
    split = "validation[:50%]"
    slug = runs.split_slug(split)
    assert runs.eval_path(tmp_path, split) == runs.eval_path(tmp_path, slug)  # idempotent
    assert runs.eval_path(tmp_path, slug, "_summary").name == f"{slug}_summary.parquet"
    rows, summary = pl.DataFrame({"a": [1]}), pl.DataFrame({"b": [2]})
    runs.write_eval(tmp_path, split, rows, summary)
    assert runs.scan(tmp_path, f"eval/{split}_summary").collect().equals(summary)
    assert pl.read_parquet(runs.eval_path(tmp_path, split)).equals(rows)
