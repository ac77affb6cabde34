"""engines.score_cache: a request scored before is served from the cache, every miss goes to the
inner engine in request order, in chunks that are each a shard (a kill loses only the chunk in
flight); keys differ when any scoring input differs; shards
are reloaded by a new wrapper (a resumed study); non-deterministic engines and calls are never
cached; a study's second cell sends only its new learned people's requests to the engine, and
its tables equal an uncached study's exactly.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import WrappedEngine, study_tables, synthetic_study_spec
from typer.testing import CliRunner

from prefixopt.cli import app
from prefixopt.engines import Engine, score_cache
from prefixopt.engines.score_cache import ScoreCache, engine_identity, request_key
from prefixopt.engines.synthetic import SyntheticEngine
from prefixopt.records import NO_PERSON, Question, Request, Response
from prefixopt.study import grid
from prefixopt.study.manifest import read_manifest


class FakeEngine:
    """Deterministic answers from the prompt alone (a -inf letter among them); counts calls."""

    api = "completions"
    persona_placement = "system"

    def __init__(self, model: str = "m", dtype: str = "float32", api: str = "completions"):
        self.model, self.dtype, self.api, self.calls = model, dtype, api, []

    @property
    def deterministic(self):  # as OpenAIEngine: a chat API is not
        return self.api == "completions"

    def fingerprint(self):
        return {}

    def render_chat(self, system, user):
        return user if system is None else f"{system}\n\n{user}"

    def info(self):
        return {"model": self.model, "dtype": self.dtype}

    def run(self, requests, mode, *, max_tokens=1, stop=(), **kw):
        self.calls.append([r.prompt for r in requests])
        return [Response(text=f"{r.prompt}|{max_tokens}", prompt_tokens=len(r.prompt),
                         logprobs=(-float(len(r.prompt)), -math.inf), output_tokens=1)
                for r in requests]


QUESTION = Question("arc_easy/q1", "arc_easy", "Which?", ("a", "b"), ("A", "B"), "A")


def _req(prompt: str, person: int = NO_PERSON, question: Question = QUESTION, **kw) -> Request:
    return Request(prompt, person, question, **kw)


def _plain(resp: Response) -> dict:
    return {k: v for k, v in dataclasses.asdict(resp).items() if k != "from_score_cache"}


def test_hits_from_the_cache_misses_in_one_call_in_request_order():
    inner = FakeEngine()
    cache = ScoreCache(inner)
    assert isinstance(cache, Engine) and cache.api == "completions"  # prompts.build_grid's test
    first = cache.run([_req("p1"), _req("p2")], "letter")
    assert len(inner.calls) == 1 and not any(r.from_score_cache for r in first)
    mixed = [_req("p3"), _req("p1"), _req("p4"), _req("p2")]
    out = cache.run(mixed, "letter")
    assert inner.calls[-1] == ["p3", "p4"]  # only the misses, in ONE call, in order
    assert [r.from_score_cache for r in out] == [False, True, False, True]
    assert [_plain(r) for r in out] == [_plain(r) for r in FakeEngine().run(mixed, "letter")]
    assert cache.last == {"hits": 2, "misses": 2} and (cache.hits, cache.misses) == (2, 4)
    assert score_cache.counts(cache, out) == {"hits": 2, "misses": 2}
    assert score_cache.counts(inner, out) is None  # not a cache: no counts
    again = cache.run(mixed, "letter")
    assert len(inner.calls) == 2 and all(r.from_score_cache for r in again)  # no call at all
    assert again[0] is not out[0] and cache.run([], "letter") == []
    twice = cache.run([_req("p5"), _req("p1"), _req("p5")], "letter")  # a repeat in one call
    assert inner.calls[-1] == ["p5"] and [r.from_score_cache for r in twice] == [False, True,
                                                                                True]
    assert _plain(twice[0]) == _plain(twice[2]) and cache.last == {"hits": 2, "misses": 1}


def test_keys_differ_when_any_scoring_input_differs():
    ident = engine_identity(FakeEngine())
    base = request_key(ident, _req("p", letters=("A", "B")), "letter", 1, ())
    assert base == request_key(ident, _req("p", letters=("A", "B")), "letter", 1, ())
    variants = [
        request_key(ident, _req("p ", letters=("A", "B")), "letter", 1, ()),  # prompt
        request_key(ident, _req("p", letters=("A", "C")), "letter", 1, ()),  # letters
        request_key(ident, _req("p", continuations=("x",), letters=("A", "B")), "letter", 1, ()),
        request_key(ident, _req("p", 7, letters=("A", "B")), "letter", 1, ()),  # person
        request_key(ident, _req("p", question=dataclasses.replace(QUESTION, gold="B"),
                                letters=("A", "B")), "letter", 1, ()),  # the question record
        request_key(ident, _req("p", letters=("A", "B")), "cloze", 1, ()),  # mode
        request_key(ident, _req("p", letters=("A", "B")), "letter", 2, ()),  # max tokens
        request_key(ident, _req("p", letters=("A", "B")), "letter", 1, ("\n",)),  # stop
    ]
    conts = [request_key(ident, _req("p", continuations=c), "cloze", 1, ())
             for c in [(" a", " b"), (" a", " c")]]
    assert len({base, *variants}) == 1 + len(variants) and conts[0] != conts[1]
    # the model's identity: model, dtype, the caller's config, a synthetic engine's planted table
    others = [engine_identity(FakeEngine("m2")), engine_identity(FakeEngine(dtype="bfloat16")),
              engine_identity(FakeEngine(), {"engine_config": {"load_in_4bit": True}})]
    assert len({ident, *others}) == 4
    people = type("P", (), {"person_id": np.arange(4)})()
    a = SyntheticEngine(people, np.full(4, 0.5), seed=3)
    b = SyntheticEngine(people, np.array([0.5, 0.5, 0.9, 0.5]), seed=3)
    assert a.info() == b.info() and engine_identity(a) != engine_identity(b)


def test_a_new_wrapper_loads_the_shards_and_corrupt_ones_are_ignored(tmp_path, capsys):
    reqs = [_req("p1"), _req("p2", continuations=(" a", " b"))]
    ScoreCache(FakeEngine(), tmp_path).run(reqs, ["letter", "cloze"])
    assert len(list(tmp_path.glob("*.jsonl"))) == 1  # one shard per call, nothing left over
    assert not list(tmp_path.glob(".*"))
    (tmp_path / "garbage.jsonl").write_text("{not json\n")
    shard = next(p for p in tmp_path.glob("*.jsonl") if p.name != "garbage.jsonl")
    lines = shard.read_text().splitlines()
    (tmp_path / "partial.jsonl").write_text("\n".join(lines[:-1]).replace("p1", "p9") + "\n")
    inner = FakeEngine()  # the engine process died: a new engine, a new wrapper
    resumed = ScoreCache(inner, tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("ignored" in e for e in err), err
    out = resumed.run(reqs, ["letter", "cloze"])
    assert inner.calls == [] and all(r.from_score_cache for r in out)
    assert out[0].logprobs == (-2.0, -math.inf) and out[0].text == "p1|1"
    assert isinstance(out[0].logprobs, tuple) and out[1].prompt_tokens == 2
    # another engine (another model) finds nothing in the same shards
    other = FakeEngine("another-model")
    assert not any(r.from_score_cache for r in ScoreCache(other, tmp_path).run(reqs, "letter"))
    assert len(other.calls) == 1


class SampledEngine(FakeEngine):
    deterministic = False  # e.g. sampling at temperature > 0


def test_non_deterministic_requests_are_never_cached(tmp_path):
    reqs = [_req("p1"), _req("p2")]
    for inner in (FakeEngine(api="chat"), SampledEngine()):  # a hosted chat API; a sampler
        cache = ScoreCache(inner, tmp_path)
        for _ in range(2):
            out = cache.run(reqs, "generate", max_tokens=8)
            assert not any(r.from_score_cache for r in out)
        assert len(inner.calls) == 2 and cache.store == {}
    inner = FakeEngine()  # deterministic, but the call asks for a setting the key cannot know
    cache = ScoreCache(inner, tmp_path)
    for _ in range(2):
        cache.run(reqs, "generate", max_tokens=8, temperature=0.7)
    assert len(inner.calls) == 2 and cache.store == {} and cache.hits == 0
    assert not list(tmp_path.glob("*.jsonl"))


def _dies_after(calls_left: int) -> FakeEngine:
    """A FakeEngine (the same engine identity) that scores `calls_left` calls, then dies in the
    next one (a kill mid-eval)."""
    engine, real, left = FakeEngine(), FakeEngine.run, [calls_left]

    def run(requests, mode, **kw):
        if left[0] == 0:
            raise KeyboardInterrupt
        left[0] -= 1
        return real(engine, requests, mode, **kw)

    engine.run = run
    return engine


def test_misses_go_in_chunks_each_a_shard_and_a_kill_loses_only_the_chunk_in_flight(tmp_path):
    reqs = [_req(f"p{i}") for i in range(10)] + [_req("p3")]  # a repeat: scored once
    whole = FakeEngine().run(reqs, "letter")
    seen = []
    inner = FakeEngine()
    cache = ScoreCache(inner, tmp_path / "a", chunk=4)
    cache.on_chunk = lambda done, total: seen.append((done, total))
    out = cache.run(reqs, "letter")
    assert inner.calls == [[f"p{i}" for i in range(lo, min(lo + 4, 10))] for lo in (0, 4, 8)]
    assert seen == [(4, 10), (8, 10), (10, 10)]
    assert len(list((tmp_path / "a").glob("*.jsonl"))) == 3  # one shard per chunk
    assert [_plain(r) for r in out] == [_plain(r) for r in whole]  # chunks change nothing
    assert cache.last == {"hits": 1, "misses": 10}

    with pytest.raises(KeyboardInterrupt):  # killed in its third chunk
        ScoreCache(_dies_after(2), tmp_path / "b", chunk=4).run(reqs, "letter")
    assert len(list((tmp_path / "b").glob("*.jsonl"))) == 2
    again = FakeEngine()
    resumed = ScoreCache(again, tmp_path / "b", chunk=4).run(reqs, "letter")
    assert again.calls == [["p8", "p9"]]  # only what the kill lost
    assert [_plain(r) for r in resumed] == [_plain(r) for r in whole]
    with pytest.raises(ValueError, match="chunk"):
        ScoreCache(FakeEngine(), chunk=0)


def test_an_uncacheable_call_goes_whole_in_one_call():
    inner = SampledEngine()
    ScoreCache(inner, chunk=2).run([_req(f"p{i}") for i in range(5)], "generate", max_tokens=8)
    assert len(inner.calls) == 1 and len(inner.calls[0]) == 5


# --- a study ----------------------------------------------------------------------------------

BUILD_ENGINE = grid.build_engine


@pytest.fixture
def _data(bench_dir, monkeypatch):
    monkeypatch.setenv("PREFIXOPT_DATA_DIR", str(bench_dir))


def _run_study(tmp_path: Path, name: str, cache: bool | None = None, resume: bool = False,
               as_json: bool = True):
    spec = synthetic_study_spec(
        tmp_path / f"{name}.toml", name, tmp_path / "studies", budgets=[64], seeds=[0, 1],
        train={"samples_per_iteration": 4, "batch_size": 8},
        eval={"num_questions": 30, "top_k": 3, "num_random": 2, "bootstrap_samples": 200,
              "seed": 0, **({} if cache is None else {"score_cache": cache})},
        transfer=False, synthetic={"planted_field": ["Science"], "delta": 0.3})
    args = ["study", str(spec), *(["--json"] if as_json else []), *(["--resume"] if resume else [])]
    result = CliRunner().invoke(app, args)
    return result, tmp_path / "studies" / name


def _counting(monkeypatch, before_run=lambda n, requests, mode: None):
    """Every inner engine call's requests (grid.build_engine wrapped: under the cache)."""
    calls: list[list[Request]] = []
    real = BUILD_ENGINE  # not an earlier test's wrapper

    def hook(n, requests, mode):
        calls.append(list(requests))
        before_run(n, requests, mode)

    monkeypatch.setattr(grid, "build_engine", lambda plan, ecfg: (
        WrappedEngine(real(plan, ecfg)[0], hook), 0.0))
    return calls


def _eval_rows(study_dir: Path, cell: int) -> pl.DataFrame:
    run = sorted((study_dir / "runs").iterdir())[cell]
    return pl.read_parquet(next(p for p in (run / "eval").glob("*.parquet")
                                if not p.stem.endswith("_summary")))


def _people(rows: pl.DataFrame, *kinds: str) -> set[int]:
    return set(rows.filter(pl.col("prefix_kind").is_in(list(kinds)))["person_id"].to_list())


@pytest.mark.usefixtures("_data")
def test_second_cell_sends_only_its_new_learned_people_and_tables_equal_uncached(
        tmp_path, monkeypatch):
    plain_calls = _counting(monkeypatch)
    plain, plain_dir = _run_study(tmp_path, "plain", cache=False)
    assert plain.exit_code == 0, plain.output
    assert not (plain_dir / "score_cache").exists()
    calls = _counting(monkeypatch)
    evals: list[int] = []  # the cache's own calls: one per eval, none from training
    cache_run = ScoreCache.run

    def counted(self, requests, mode, **kw):
        evals.append(len(requests))
        return cache_run(self, requests, mode, **kw)

    monkeypatch.setattr(ScoreCache, "run", counted)
    cached, study_dir = _run_study(tmp_path, "cached")
    assert cached.exit_code == 0, cached.output
    a, b = study_tables(plain_dir), study_tables(study_dir)
    assert a.keys() == b.keys() and "report/transfer" in a
    for name in a:
        assert a[name].equals(b[name]), name

    # per cell: 2 training calls, then ONE eval call (the cache's), which reaches the engine
    # once with its misses; training never goes through the cache
    assert len(evals) == 2 and len(calls) == len(plain_calls) == 6
    assert [len(c) for c in calls[:2] + calls[3:5]] == [32] * 4 == [len(c) for c in
                                                                    plain_calls[:2]
                                                                    + plain_calls[3:5]]
    # the first eval: every distinct request (a paraphrase repeats the generic hand-written
    # prompt: scored once)
    assert len(calls[2]) == len({request_key("", r, "cloze", 1, ()) for r in calls[2]})
    assert len(calls[2]) < len(plain_calls[2]) == evals[0]
    first, second = _eval_rows(study_dir, 0), _eval_rows(study_dir, 1)
    eval_ids = set(second["question_id"].to_list())
    seen = _people(first, "learned", "random")
    new = _people(second, "learned") - seen
    assert new  # (here all 3: none, random, hand-written and paraphrases are the hits)
    sent = calls[5]  # the second cell's eval: on its held-out questions only new people
    on_eval = [r for r in sent if r.question.question_id in eval_ids]
    assert {r.person_id for r in on_eval} == new and len(on_eval) == len(new) * len(eval_ids)
    baseline = [r for r in sent if r.question.question_id not in eval_ids]  # winner's curse
    assert all(r.person_id == NO_PERSON for r in baseline)
    assert len(sent) < len(plain_calls[5]) == evals[1]
    cells = read_manifest(study_dir)["cells"]
    assert cells[1]["score_cache"] == {"hits": evals[1] - len(sent), "misses": len(sent)}
    assert cells[0]["score_cache"] == {"hits": evals[0] - len(calls[2]),
                                       "misses": len(calls[2])}
    assert "score_cache" not in read_manifest(plain_dir)["cells"][0]
    shards = list((study_dir / "score_cache").glob("*.jsonl"))
    assert len(shards) == 2 and sum(json.loads(p.read_text().splitlines()[0])["count"]
                                    for p in shards) == len(calls[2]) + len(sent)


@pytest.mark.usefixtures("_data")
def test_a_study_killed_in_its_second_eval_resumes_from_the_shards(tmp_path, monkeypatch):
    def die(n, requests, mode):
        if n == 6:  # the second cell's eval call: the engine process is gone
            raise RuntimeError("killed")

    _counting(monkeypatch, die)
    killed, study_dir = _run_study(tmp_path, "kill")
    assert killed.exit_code != 0 and isinstance(killed.exception, RuntimeError)
    assert [c["status"] for c in read_manifest(study_dir)["cells"]] == ["done", "failed"]
    assert len(list((study_dir / "score_cache").glob("*.jsonl"))) == 1  # the first eval's
    calls = _counting(monkeypatch)  # a new engine, a new cache loading the shards
    resumed, _ = _run_study(tmp_path, "kill", resume=True)
    assert resumed.exit_code == 0, resumed.output
    row = read_manifest(study_dir)["cells"][1]
    assert row["status"] == "done" and row["score_cache"]["hits"] > 0
    assert len(calls) == 1 and len(calls[0]) == row["score_cache"]["misses"]  # eval only


@pytest.mark.usefixtures("_data")
def test_a_study_killed_mid_eval_keeps_its_scored_chunks_and_says_how_far_it_got(
        tmp_path, monkeypatch):
    plain, plain_dir = _run_study(tmp_path, "plain", cache=False)
    assert plain.exit_code == 0, plain.output
    monkeypatch.setattr(score_cache, "CHUNK", 16)

    def die(n, requests, mode):
        if n == 5:  # calls 1-2 train the first cell, 3-5 are its eval's chunks: die in the third
            raise RuntimeError("killed")

    calls = _counting(monkeypatch, die)
    killed, study_dir = _run_study(tmp_path, "chunks", as_json=False)  # the log lines, not --json
    assert killed.exit_code != 0 and [len(c) for c in calls[2:5]] == [16, 16, 16]
    assert "eval: 16/" in killed.stderr and "eval: 32/" in killed.stderr  # a line per chunk
    assert "eval: 48/" not in killed.stderr
    lines = [ln for ln in killed.stderr.splitlines() if " eval: " in ln]
    assert "h left" not in lines[0] and "h left" in lines[1]  # a pace needs two chunks
    assert len(list((study_dir / "score_cache").glob("*.jsonl"))) == 2  # the chunks scored
    scored, in_flight = calls[2:4], calls[4]
    calls = _counting(monkeypatch)
    resumed, _ = _run_study(tmp_path, "chunks", resume=True)
    assert resumed.exit_code == 0, resumed.output
    def keys(reqs):
        return [request_key("", r, "cloze", 1, ()) for r in reqs]

    assert keys(calls[0]) == keys(in_flight)  # the resumed eval starts with what the kill lost
    assert not set(keys(calls[0])) & {k for c in scored for k in keys(c)}
    assert read_manifest(study_dir)["cells"][0]["score_cache"]["hits"] >= 32
    a, b = study_tables(plain_dir), study_tables(study_dir)  # as if never killed nor cached
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].equals(b[name]), name
