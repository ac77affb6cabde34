"""The OpenAI-compatible engine's own parts, without a server: the key (environment or .env,
never shown), the chat prompt encoding that survives prompts.build_grid's splicing, reading
letters from a chat API's top_logprobs, and the checks before any request."""

from __future__ import annotations

import math

import pytest

from prefixopt.config import EngineConfig
from prefixopt.engines.openai_chat import letter_logprobs
from prefixopt.engines.openai_client import Http, api_key
from prefixopt.engines.openai_engine import OpenAIEngine
from prefixopt.errors import PrefixoptError
from prefixopt.engines.build import check_engine
from prefixopt.ask.prompts import build_grid, persona_placement
from prefixopt.records import NO_PERSON, Question


def test_key_from_environment_then_dotenv(tmp_path, monkeypatch):
    monkeypatch.delenv("PFX_TEST_KEY", raising=False)
    assert api_key("PFX_TEST_KEY", tmp_path) is None
    (tmp_path / ".env").write_text("OTHER=1\nexport PFX_TEST_KEY='sk-from-file'\n")
    assert api_key("PFX_TEST_KEY", tmp_path) == "sk-from-file"
    monkeypatch.setenv("PFX_TEST_KEY", "sk-from-env")
    assert api_key("PFX_TEST_KEY", tmp_path) == "sk-from-env"


def test_key_never_in_repr():
    http = Http("http://127.0.0.1:1/v1", key="sk-secret-123")
    assert "sk-secret-123" not in repr(http) and "sk-secret-123" not in str(http)
    assert http.headers == {"Authorization": "Bearer sk-secret-123"}


def _chat_engine() -> OpenAIEngine:
    return OpenAIEngine(Http("http://127.0.0.1:1/v1"), "some-model", "chat")


def test_chat_prompts_round_trip_through_the_grid():
    eng = _chat_engine()
    assert persona_placement(eng) == "system"
    q = Question("arc_easy/x", "arc_easy", "Which is a planet?", ("Mars", "Moon"), ("A", "B"),
                 "A")
    grid = build_grid(eng, [(NO_PERSON, None), (7, "You are Ada Lovelace.")], [q],
                      scoring="letter")
    none, ada = (OpenAIEngine.messages(r.prompt) for r in grid)
    assert [m["role"] for m in none] == ["user"]
    assert ada[0] == {"role": "system", "content": "You are Ada Lovelace."}
    assert ada[1]["role"] == "user" and "Which is a planet?" in ada[1]["content"]
    assert ada[1]["content"] == none[0]["content"]  # the persona is the only difference
    # a harness-format prompt (plain text) is one user message
    assert OpenAIEngine.messages("Question: x\nAnswer:") == [
        {"role": "user", "content": "Question: x\nAnswer:"}]


def test_letters_from_top_logprobs_missing_is_minus_inf():
    choice = {"logprobs": {"content": [{"token": "B", "logprob": -0.1, "top_logprobs": [
        {"token": "B", "logprob": -0.1}, {"token": " A", "logprob": -2.5},
        {"token": "A", "logprob": -3.0}, {"token": "The", "logprob": -4.0}]}]}}
    lp = letter_logprobs(choice, ("A", "B", "C", "D"))
    assert lp[:2] == (-2.5, -0.1)  # the best spelling of A counts
    assert math.isinf(lp[2]) and math.isinf(lp[3]) and lp[2] < 0
    assert all(math.isinf(x) for x in letter_logprobs({}, ("A", "B")))


def test_chat_api_refuses_cloze_in_one_line():
    eng = _chat_engine()
    q = Question("arc_easy/x", "arc_easy", "Q?", ("a", "b"), ("A", "B"), "A")
    reqs = build_grid(eng, [(NO_PERSON, None)], [q], scoring="cloze")
    with pytest.raises(PrefixoptError, match="cloze scoring needs prompt log-probs"):
        eng.run(reqs, "cloze")


@pytest.mark.parametrize("cfg, match", [
    (EngineConfig(kind="openai"), "needs --base-url"),
    (EngineConfig(kind="openai", base_url="127.0.0.1:8000"), "needs --base-url http"),
    (EngineConfig(kind="openai", base_url="http://h/v1", api="grpc"), "--api 'grpc'"),
    (EngineConfig(kind="openai", base_url="http://h/v1", max_concurrency=0), "max-concurrency"),
    (EngineConfig(kind="vllm", base_url="http://h/v1"), "--base-url is for --engine openai"),
])
def test_engine_options_checked_before_any_request(cfg, match):
    with pytest.raises(PrefixoptError, match=match):
        check_engine(cfg)


def test_unreachable_endpoint_is_one_line_fast(monkeypatch):
    from prefixopt.engines.openai_engine import build_openai_engine

    cfg = EngineConfig(kind="openai", base_url="http://127.0.0.1:9/v1", max_retries=1)
    with pytest.raises(PrefixoptError, match="cannot reach the endpoint.*127.0.0.1:9") as err:
        build_openai_engine(cfg)
    assert "\n" not in str(err.value)


def test_cloze_rows_served_from_the_cache_are_detected():
    from prefixopt.engines.openai_engine import _rows_present

    def out(cached, plp):
        return {"usage": {"prompt_tokens_details": {"cached_tokens": cached}},
                "choices": [{"prompt_logprobs": plp}]}

    row = {"5": {"logprob": -1.0}}
    full = [None, row, row, row, row]  # 5 prompt tokens, continuation from position 3
    assert _rows_present(out(0, full), 3, 5)
    assert _rows_present(out(2, full), 3, 5)  # the hit ends before row 2 (predicts token 3)
    assert not _rows_present(out(3, full), 3, 5)  # row 2 came from the cache
    assert not _rows_present(out(0, [None, row, row, None, row]), 3, 5)
    assert not _rows_present(out(0, [None, row]), 3, 5)
