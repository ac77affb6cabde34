"""Every reward that reaches the policy is finite (issue J, item 1): a chat API's missing letter
scores -inf, which used to turn the advantages and then every probability into NaN, after
which `Policy.sample` drew the last person forever without a word. Now `--reward margin` is
refused where no margin exists, a non-finite reward fails the iteration in one line naming the
person and question, and the policy refuses non-finite advantages and probabilities."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from prefixopt import runs
from prefixopt.cli import main
from prefixopt.config import EngineConfig, TaskConfig, TrainConfig
from prefixopt.engines.synthetic import SyntheticEngine
from prefixopt.errors import PrefixoptError
from prefixopt.learn.job import prepare_train
from prefixopt.policy import Policy
from prefixopt.learn.loop import train


class MissingLetterEngine:
    """The synthetic engine's answers with ONE letter of ONE response scored -inf, as a chat
    API scores a letter absent from its top_logprobs (fault injection, not a stand-in)."""

    def __init__(self, inner, at_call: int = 1, api: str | None = None):
        self.inner, self.at_call, self.calls = inner, at_call, 0
        if api is not None:
            self.api = api

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def run(self, requests, mode, **kw):
        self.calls += 1
        out = self.inner.run(requests, mode, **kw)
        if self.calls == self.at_call:
            q = requests[5].question
            lp = list(out[5].logprobs)
            lp[q.gold_index] = -math.inf  # the gold letter missing from the top list
            out[5] = replace(out[5], logprobs=tuple(lp))
        return out


def _job(people_csv, tmp_path, bench_dir, **kw):
    cfg = TrainConfig(iterations=3, samples_per_iteration=4, batch_size=6, reward="margin",
                      people=people_csv, output_dir=str(tmp_path), run_name="r",
                      engine=EngineConfig(kind="synthetic"),
                      task=TaskConfig(data_dir=str(bench_dir)), **kw)
    job = prepare_train(cfg)
    engine = SyntheticEngine(job.people, np.full(len(job.people.person_id), 0.5), seed=0)
    return job, engine


def test_non_finite_margin_fails_loudly_naming_person_and_question(people_csv, tmp_path,
                                                                   bench_dir):
    job, inner = _job(people_csv, tmp_path, bench_dir)
    engine = MissingLetterEngine(inner, at_call=2)
    with pytest.raises(PrefixoptError) as err:
        train(job.cfg, engine, job.people, job.questions, job.run_dir)
    message = str(err.value)
    assert "--reward margin" in message and "-inf" in message and "\n" not in message
    # the person and question named are those of the broken answer (request 5 of call 2)
    assert "question " in message and "person " in message
    # iteration 0 is on disk; nothing of the broken iteration 1 was written
    assert int(runs.load_checkpoint(job.run_dir)["iteration"]) == 0
    assert runs.scan(job.run_dir, "samples").collect()["iteration"].unique().to_list() == [0]
    assert np.all(np.isfinite(runs.load_checkpoint(job.run_dir)["probs"]))


def test_margin_on_a_chat_api_is_refused_before_the_engine_is_reached(capsys):
    # validation runs before any connection: the base URL points nowhere on purpose
    with pytest.raises(SystemExit) as exc:
        main(["train", "--engine", "openai", "--base-url", "http://127.0.0.1:9/v1",
              "--api", "chat", "--reward", "margin"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1
    assert "--reward margin" in err and "chat API" in err and "127.0.0.1:9" not in err


def test_margin_on_an_engine_found_to_be_a_chat_api_is_refused(people_csv, tmp_path, bench_dir):
    job, inner = _job(people_csv, tmp_path, bench_dir)
    engine = MissingLetterEngine(inner, at_call=0, api="chat")  # --api auto resolved to chat
    with pytest.raises(PrefixoptError, match="--reward margin needs every choice"):
        train(job.cfg, engine, job.people, job.questions, job.run_dir)
    assert engine.calls == 0  # refused before the first question was asked


def test_policy_refuses_non_finite_advantages_and_probabilities():
    policy = Policy(np.zeros(5, np.int64), np.zeros(5, np.int64), "tabular", "adam", 0.1)
    before = policy.params.copy()
    with pytest.raises(FloatingPointError, match="non-finite advantage"):
        policy.update(np.array([0, 1]), np.array([0.5, np.nan]))
    assert np.array_equal(policy.params, before)  # nothing moved
    with pytest.raises(FloatingPointError, match="non-finite probabilities"):
        policy.sample(np.random.default_rng(0), 3, probs=np.array([0.5, np.nan, 0, 0, 0.5]))
