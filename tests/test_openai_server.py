"""`--engine openai` against a real `vllm serve` (started once per session by `prefixopt
serve`'s library, conftest.vllm_server) with the embedded model: per-question parity with the
in-process engine for letter, cloze and generate; the chat API path on the same server; a
server killed during an iteration, restarted, and the run resumed to the same tables."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import polars as pl
import pytest

from prefixopt.learn.job import prepare_train, run_train
from prefixopt import runs
from prefixopt.benchmarks import load_split
from prefixopt.config import EngineConfig, TaskConfig, TrainConfig
from prefixopt.engines.openai_client import EngineUnavailable
from prefixopt.engines.openai_engine import build_openai_engine
from prefixopt.ask.prompts import build_grid
from prefixopt.records import NO_PERSON
from prefixopt.ask.scoring import score

pytestmark = pytest.mark.engine

PREFIXES = [(NO_PERSON, None), (1, "You are Marie Curie."), (2, "You are Napoleon.")]


def _remote(server, **kw) -> object:
    return build_openai_engine(EngineConfig(kind="openai", base_url=server.url, **kw))


@pytest.fixture(scope="module")
def remote(vllm_server):
    return _remote(vllm_server)


def test_endpoint_detected_as_vllm_completions(remote, vllm_server):
    info = remote.info()
    assert remote.api == "completions" and info["server"] == "vllm"
    assert info["model"] == vllm_server.model and "api_key" not in str(info).lower()
    assert info["capability_cloze"] == "prompt_logprobs"


@pytest.mark.parametrize("benchmark, mode, fmt", [
    ("arc_easy", "letter", "chat"), ("arc_easy", "cloze", "chat"),
    ("arc_easy", "cloze", "harness"), ("mmlu", "letter", "harness"),
])
def test_parity_with_in_process(real_engine, remote, bench_dir, benchmark, mode, fmt):
    questions = load_split(benchmark, "test" if benchmark == "arc_easy" else "validation",
                           data_dir=bench_dir)[:8]
    reqs = build_grid(real_engine, PREFIXES, questions, scoring=mode, prompt_format=fmt)
    assert [r.prompt for r in build_grid(remote, PREFIXES, questions, scoring=mode,
                                         prompt_format=fmt)] == [r.prompt for r in reqs]
    local_resp, local = score(real_engine, reqs, mode)
    remote_resp, far = score(remote, reqs, mode)
    assert [a.pred for a in far] == [a.pred for a in local]  # identical predictions
    for x, y in zip(local_resp, remote_resp, strict=True):
        assert x.prompt_tokens == y.prompt_tokens
        np.testing.assert_allclose(y.logprobs, x.logprobs, atol=2e-3, rtol=1e-4)


def test_generate_parity(real_engine, remote, bench_dir):
    questions = load_split("gsm8k", "test", data_dir=bench_dir)[:3]
    reqs = build_grid(real_engine, PREFIXES[:2], questions, scoring="generate")
    here = real_engine.run(reqs, "generate", max_tokens=24, stop=("Question:",))
    there = remote.run(reqs, "generate", max_tokens=24, stop=("Question:",))
    assert [r.text for r in there] == [r.text for r in here]
    assert all(r.output_tokens > 0 for r in there)


def test_chat_api_path_on_the_same_server(vllm_server, bench_dir):
    chat = _remote(vllm_server, api="chat")
    assert chat.api == "chat"
    questions = load_split("arc_easy", "test", data_dir=bench_dir)[:4]
    reqs = build_grid(chat, PREFIXES[:2], questions, scoring="letter")
    responses, answers = score(chat, reqs, "letter")
    assert len(answers) == len(reqs)
    for resp, req in zip(responses, reqs, strict=True):
        assert len(resp.logprobs) == len(req.letters)
        assert resp.missing_letters == sum(math.isinf(x) for x in resp.logprobs)
        assert resp.prompt_tokens > 0
    # the persona reached the server as the system message: the server's prompt is exactly
    # the model's chat template over [system persona, user] (no persona: the template's own)
    from transformers import AutoTokenizer

    from prefixopt.models import locate

    tok = AutoTokenizer.from_pretrained(locate("smollm2-135m"))
    for resp, req in zip(responses, reqs, strict=True):
        ids = tok.apply_chat_template(chat.messages(req.prompt), add_generation_prompt=True,
                                      tokenize=True)
        ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
        assert resp.prompt_tokens == len(ids)
    gen = chat.run(reqs[:2], "generate", max_tokens=8)
    assert all(r.text for r in gen)


def _train_cfg(server, out, name: str) -> TrainConfig:
    return TrainConfig(engine=EngineConfig(kind="openai", base_url=server.url, max_retries=1,
                                           request_timeout=60),
                       task=TaskConfig(benchmark="arc_easy", scoring="cloze"),
                       iterations=4, samples_per_iteration=4, batch_size=4, seed=3,
                       checkpoint_every=1, output_dir=str(out), run_name=name)


def test_killed_server_then_resume_equals_uninterrupted(vllm_server, people_csv, tmp_path):
    from conftest import WrappedEngine


    full = prepare_train(replace(_train_cfg(vllm_server, tmp_path, "full"),
                                      people=people_csv))
    run_train(full, _remote(vllm_server, max_retries=1))

    part = prepare_train(replace(_train_cfg(vllm_server, tmp_path, "part"),
                                      people=people_csv))

    def kill_at_third(n, requests, mode):
        if n == 3:
            vllm_server.kill()

    engine = WrappedEngine(_remote(vllm_server, max_retries=1), kill_at_third)
    with pytest.raises(EngineUnavailable, match=r"--resume .*part") as err:
        run_train(part, engine)
    assert "\n" not in str(err.value) and vllm_server.url.split("/v1")[0] in str(err.value)
    done = runs.scan(part.run_dir, "iterations").collect()
    assert done["iteration"].to_list() == [0, 1]  # nothing of the failed iteration

    vllm_server.restart()
    vllm_server.wait_ready()
    resumed = prepare_train(runs.read_train_config(part.run_dir), resume=part.run_dir)
    run_train(resumed, _remote(vllm_server))
    for table in ("answers", "samples"):
        a = runs.scan(full.run_dir, table).collect()
        b = runs.scan(part.run_dir, table).collect()
        keys = [c for c in ("iteration", "sample", "person_id", "question_id", "correct")
                if c in a.columns]
        assert a.select(keys).equals(b.select(keys)), table
    np.testing.assert_allclose(runs.final_probs(part.run_dir), runs.final_probs(full.run_dir),
                               rtol=1e-6)
    assert pl.Series(runs.scan(part.run_dir, "iterations").collect()["iteration"]).to_list() == [
        0, 1, 2, 3]


def test_cli_run_and_only_baseline_through_the_server(vllm_server, people_csv, tmp_path,
                                                      monkeypatch):
    """`prefixopt run` and `eval --only-baseline` with --engine openai; the key given in the
    environment reaches no file, and config.json records the endpoint's capabilities."""
    from typer.testing import CliRunner

    from prefixopt.cli import app

    secret = "sk-prefixopt-test-never-written"
    monkeypatch.setenv("PFX_SERVER_KEY", secret)
    common = ["--engine", "openai", "--base-url", vllm_server.url]
    result = CliRunner().invoke(app, [
        "run", *common, "--api-key-env", "PFX_SERVER_KEY", "--people", people_csv,
        "--output-dir", str(tmp_path), "--run-name", "r", "--iterations", "1", "-k", "2",
        "-b", "2", "--eval-num-questions", "4", "--eval-top-k", "1", "--eval-num-random", "1",
        "--no-eval-handwritten", "--json"])
    assert result.exit_code == 0, result.output
    meta = runs.read_config(tmp_path / "r")
    assert meta["config"]["engine"]["kind"] == "openai"
    assert meta["versions"]["capability_api"] == "completions"
    assert meta["versions"]["model"] == vllm_server.model
    for path in (tmp_path / "r").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    result = CliRunner().invoke(app, [
        "eval", *common, "--benchmark", "arc_easy", "--only-baseline", "--num-questions", "4",
        "--output-dir", str(tmp_path), "--run-name", "base", "--json"])
    assert result.exit_code == 0, result.output


def test_bench_through_the_server(vllm_server):
    from prefixopt.bench.remote import run_remote_bench

    res = run_remote_bench(EngineConfig(kind="openai", base_url=vllm_server.url), k=2, b=3,
                           repeats=1)
    assert res["num_prompts"] == 6 and res["repeats"][0]["prompt_tokens"] > 0
    assert 0 < res["client_overhead_share"] <= 1.5
    assert res["iteration_s"] >= res["engine_run_s"] > 0


def test_study_through_the_server(vllm_server, bench_dir, tmp_path):
    """`prefixopt study SPEC --engine openai --base-url URL`: the spec's vllm engine replaced
    by the endpoint, every run's config.json records it."""
    import json

    from typer.testing import CliRunner

    from prefixopt.cli import app

    spec = tmp_path / "s.toml"
    spec.write_text(f"""
name = "s"
output_dir = "{tmp_path / 'studies'}"
[grid]
models = ["{vllm_server.model}"]
benchmarks = ["arc_easy"]
budgets = [4]
[train]
samples_per_iteration = 2
batch_size = 2
data_dir = "{bench_dir}"
[eval]
num_questions = 4
top_k = 1
num_random = 1
handwritten = false
bootstrap_samples = 100
""")
    result = CliRunner().invoke(app, ["study", str(spec), "--engine", "openai", "--base-url",
                                      vllm_server.url, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout[result.stdout.index("{"):])
    assert out["complete"] and len(out["cells"]) == 1
    meta = runs.read_config(out["cells"][0]["run_dir"])
    assert meta["config"]["engine"]["kind"] == "openai"
    assert meta["config"]["engine"]["base_url"] == vllm_server.url
