"""`prefixopt serve`: the argv/env it builds (no server), bad input refused before vLLM starts,
the process handle's failure and stop paths on small real processes, and (engine) the real
server through the session fixture: /v1/models and the /v1/completions fields the openai
engine relies on (token-id prompts, allowed_token_ids, logprobs, prompt_logprobs, usage).
"""

from __future__ import annotations

import json
import math
import socket
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import run_main

from prefixopt.engines import ports, serve
from prefixopt.config import EngineConfig
from prefixopt.errors import PrefixoptError
from prefixopt.models import resolve_model

CPU = {"cuda": False, "flags": frozenset({"avx2"})}


def flag(argv: list[str], name: str) -> str:
    """The value after `name` in argv."""
    return argv[argv.index(name) + 1]


def test_cpu_command_carries_prefixopts_engine_settings(monkeypatch):
    for key in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_NUM_OF_RESERVED_CPU", "VLLM_SERVER_DEV_MODE"):
        monkeypatch.delenv(key, raising=False)
    spec = serve.serve_command(EngineConfig(cpu_kvcache_gib=3), port=8123, **CPU)
    argv = spec.argv
    assert argv[:5] == [sys.executable, "-m", "prefixopt.engines.vllm_server", "serve",
                        resolve_model("smollm2-135m")]
    assert flag(argv, "--served-model-name") == "smollm2-135m"
    assert flag(argv, "--dtype") == "float32"  # AVX2 without bf16
    assert flag(argv, "--block-size") == "32"
    assert flag(argv, "--logprobs-mode") == "processed_logprobs"
    assert flag(argv, "--generation-config") == "vllm"
    assert flag(argv, "--max-model-len") == "2048"
    assert flag(argv, "--port") == "8123" and flag(argv, "--host") == "127.0.0.1"
    assert "--enable-prefix-caching" in argv and "--enable-prompt-tokens-details" in argv
    assert "--gpu-memory-utilization" not in argv
    assert spec.env["VLLM_CPU_KVCACHE_SPACE"] == "3"
    assert spec.env["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    assert "VLLM_SERVER_DEV_MODE" not in spec.env
    assert spec.url == "http://127.0.0.1:8123/v1"
    assert spec.model_name == "smollm2-135m"


def test_cuda_command_parallelism_and_passthrough(monkeypatch):
    monkeypatch.delenv("VLLM_SERVER_DEV_MODE", raising=False)
    cfg = EngineConfig(tensor_parallel_size=2, data_parallel_size=4, enable_prefix_caching=False)
    spec = serve.serve_command(cfg, served_name="tiny", extra=["--max-num-seqs", "64"],
                               dev_mode=True, cuda=True, flags=frozenset())
    argv = spec.argv
    assert flag(argv, "--tensor-parallel-size") == "2"
    assert flag(argv, "--data-parallel-size") == "4"
    assert flag(argv, "--dtype") == "bfloat16"  # the embedded model's saved dtype
    assert "--block-size" not in argv  # vLLM's own on CUDA
    assert flag(argv, "--gpu-memory-utilization") == "0.85"
    assert "--no-enable-prefix-caching" in argv
    assert argv[-2:] == ["--max-num-seqs", "64"]
    assert flag(argv, "--served-model-name") == "tiny" and spec.model_name == "tiny"
    assert not any(k.startswith("VLLM_CPU_") for k in spec.env)
    assert spec.env["VLLM_SERVER_DEV_MODE"] == "1"


def test_bf16_cpu_and_user_environment_wins(monkeypatch):
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "7")
    spec = serve.serve_command(EngineConfig(), cuda=False, flags=frozenset({"avx512_bf16"}))
    assert flag(spec.argv, "--dtype") == "bfloat16"
    assert "VLLM_CPU_KVCACHE_SPACE" not in spec.env  # the child inherits the user's 7


def test_shown_command_hides_api_keys():
    spec = serve.serve_command(EngineConfig(), extra=["--api-key", "sk-123", "--api-key=sk-456"],
                               **CPU)
    shown = spec.shown()
    assert "sk-123" not in shown and "sk-456" not in shown and "--api-key ***" in shown
    assert serve.ServeSpec([], {}, "::1", 9, "m").url == "http://[::1]:9/v1"


def test_busy_port_and_bad_addresses():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(PrefixoptError, match=f"port {port} on 127.0.0.1 is busy"):
            ports.check_port("127.0.0.1", port)
    ports.check_port("127.0.0.1", port)  # free again
    with pytest.raises(PrefixoptError, match="not a TCP port"):
        ports.check_port("127.0.0.1", 0)
    with pytest.raises(PrefixoptError, match="not an address"):
        ports.check_port("no-such-host.invalid", 8000)


def run_cli(capsys, *args: str) -> tuple[int, str]:
    result = run_main(capsys, *args)
    return result.returncode, result.stderr


def test_cli_refuses_bad_input_before_vllm(capsys, tmp_path):
    t0 = time.monotonic()
    code, err = run_cli(capsys, "serve", "--model", str(tmp_path / "missing"))
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = str(sock.getsockname()[1])
        code, err = run_cli(capsys, "serve", "--port", port)
    assert code == 2 and err.count("\n") == 1 and f"port {port}" in err and "busy" in err
    assert time.monotonic() - t0 < 30  # no engine was started


def small_server(tmp_path: Path, code: str) -> serve.Server:
    """A Server handle around a small real process (not vLLM) for the handle's own paths."""
    spec = serve.ServeSpec([sys.executable, "-c", code], {}, "127.0.0.1", ports.free_port(), "m")
    return serve.Server(spec, tmp_path / "server.log").start()


def test_wait_ready_reports_an_early_exit_in_one_line(tmp_path):
    server = small_server(tmp_path, "import sys; print('ValueError: no such model'); sys.exit(3)")
    with pytest.raises(PrefixoptError) as info:
        server.wait_ready(timeout=60)
    msg = str(info.value)
    assert "exited with code 3" in msg and "ValueError: no such model" in msg
    assert str(tmp_path / "server.log") in msg and "\n" not in msg


def test_stop_ends_the_server_and_its_children(tmp_path):
    code = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', "
            "'import time; time.sleep(120)']); print('CHILD' + '_PID', p.pid, flush=True); "
            "time.sleep(120)")
    server = small_server(tmp_path, code)
    log = tmp_path / "server.log"
    deadline = time.monotonic() + 30
    while "CHILD_PID" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)  # the header line shows the code, not the marker
    child = int(log.read_text().split("CHILD_PID")[1].split()[0])
    server.stop(grace=5)
    assert not server.alive()
    assert not running(child)


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan waits for init to reap it), within 5 s."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.1)
    return True


def test_headless_engine_ranks_have_nothing_to_wait_for(tmp_path):
    spec = serve.ServeSpec([sys.executable, "-c", "import time; time.sleep(60)", "--headless"],
                           {}, "127.0.0.1", ports.free_port(), "m")
    server = serve.Server(spec, tmp_path / "server.log").start()
    try:
        t0 = time.monotonic()
        assert server.headless and server.wait_ready(timeout=60) is server
        assert time.monotonic() - t0 < 5 and server.alive()
    finally:
        server.stop(grace=5)
    assert not server.alive()


# ---- the real server (one per session) ---------------------------------------------------

def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model("smollm2-135m"))


@pytest.mark.engine
def test_server_answers_models_and_letter_cloze_fields(vllm_server, tokenizer):
    with urllib.request.urlopen(vllm_server.url + "/models", timeout=30) as resp:
        models = json.loads(resp.read())
    assert vllm_server.model == "smollm2-135m"
    assert [m["id"] for m in models["data"]] == ["smollm2-135m"]
    assert vllm_server.url == f"http://127.0.0.1:{vllm_server.port}/v1"

    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": "You are Marie Curie."},
         {"role": "user", "content": "Which is a metal?\nA. wood\nB. iron\nC. glass\nD. salt\n"
                                     "Answer with the letter."}],
        tokenize=False, add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    letters = [tokenizer.encode(x, add_special_tokens=False)[0] for x in "ABCD"]
    body = {"model": vllm_server.model, "prompt": ids, "max_tokens": 1, "temperature": 0,
            "logprobs": 2, "allowed_token_ids": letters, "prompt_logprobs": 0}
    out = post(vllm_server.url + "/completions", body)
    print(json.dumps(out)[:3000])
    choice = out["choices"][0]
    top = choice["logprobs"]["top_logprobs"][0]  # {token text: logprob}, the 2 best letters
    assert len(top) == 2 and set(top) <= set("ABCD")
    assert choice["text"] in top
    plp = choice["prompt_logprobs"]  # one entry per prompt token, the first None
    assert len(plp) == len(ids) and plp[0] is None
    for pos in (1, len(ids) - 1):
        row = plp[pos]  # {"<token id>": {"logprob", "rank", "decoded_token"}}, the actual one
        assert str(ids[pos]) in row
        assert row[str(ids[pos])]["logprob"] <= 0.0
    assert out["usage"]["prompt_tokens"] == len(ids)
    assert out["usage"]["prompt_tokens_details"]["cached_tokens"] == 0  # prompt_logprobs

    as_ids = post(vllm_server.url + "/completions",
                  {**body, "prompt_logprobs": None, "return_tokens_as_token_ids": True})
    top_ids = as_ids["choices"][0]["logprobs"]["top_logprobs"][0]  # {"token_id:49": lp, ...}
    assert set(top_ids) <= {f"token_id:{t}" for t in letters} and len(top_ids) == 2
    # the letter logprobs are after allowed_token_ids masking: the 4 letters sum to 1
    four = post(vllm_server.url + "/completions", {**body, "prompt_logprobs": None,
                                                    "logprobs": 4})
    probs = four["choices"][0]["logprobs"]["top_logprobs"][0].values()
    assert abs(sum(math.exp(p) for p in probs) - 1.0) < 1e-4


@pytest.mark.engine
def test_server_prefix_cache_fields_and_reset(vllm_server, tokenizer):
    """cached_tokens is filled; a prompt_logprobs request never reads the cache, and the
    request field skip_reading_prefix_cache is not honoured (ignored as an unknown field);
    POST /reset_prefix_cache exists with dev mode (the fixture's)."""
    ids = tokenizer("You are Ada Lovelace. " * 12, add_special_tokens=False)["input_ids"]
    body = {"model": vllm_server.model, "prompt": ids, "max_tokens": 1, "temperature": 0}
    completions = vllm_server.url + "/completions"

    def cached(extra: dict) -> int:
        return post(completions, {**body, **extra})["usage"]["prompt_tokens_details"][
            "cached_tokens"]

    root = vllm_server.url.removesuffix("/v1")
    assert post(root + "/reset_prefix_cache", {}) == {"success": True}
    assert cached({}) == 0
    hit = cached({})
    assert 0 < hit < len(ids) and hit % 32 == 0  # whole 32-token blocks, never the last token
    assert cached({"prompt_logprobs": 0}) == 0
    assert cached({"prompt_logprobs": 0, "skip_reading_prefix_cache": False}) == 0
    assert post(root + "/reset_prefix_cache", {}) == {"success": True}
    assert cached({}) == 0


@pytest.mark.engine
def test_server_killed_and_restarted_on_the_same_port(vllm_server):
    port, url = vllm_server.port, vllm_server.url
    vllm_server.kill()
    assert not vllm_server.alive()
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/models", timeout=5)
    vllm_server.restart()
    print(f"restart (compile cache warm): {vllm_server.start_s:.1f} s")
    assert vllm_server.port == port and vllm_server.alive()
    with urllib.request.urlopen(url + "/models", timeout=30) as resp:
        assert json.loads(resp.read())["data"][0]["id"] == vllm_server.model
