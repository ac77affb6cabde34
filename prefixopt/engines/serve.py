"""`prefixopt serve`: vLLM's OpenAI-compatible server with prefixopt's engine settings (dtype by
device, block size, prefix caching, processed logprobs, KV cache GiB on CPU), started as a child
process (prefixopt.engines.vllm_server, which carries the compile-cache mend into vLLM's engine
process). `serve_command` builds the argv and environment, `start_server` returns a `Server`
handle (url, wait_ready, stop, kill, restart) that the CLI and the test fixture share.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from prefixopt.config import EngineConfig
from prefixopt.engines.ports import DEFAULT_HOST, check_port
from prefixopt.engines.resolved import ResolvedEngine, resolve_engine
from prefixopt.errors import PrefixoptError
from prefixopt.models import locate

DEFAULT_PORT = 8000
READY_TIMEOUT_S = 900.0  # a cold start on 2 CPU cores compiles for up to ~4 minutes
STOP_GRACE_S = 30.0
SECRET_FLAGS = ("--api-key",)  # values never printed


@dataclass(frozen=True)
class ServeSpec:
    """What to run: argv, the environment variables added to ours, and where it will answer."""

    argv: list[str]
    env: dict[str, str]
    host: str
    port: int
    model_name: str
    model_path: str = ""  # what vLLM loads; /v1/models reports it as "root"

    @property
    def url(self) -> str:
        """The OpenAI base URL clients use (…/v1)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def shown(self) -> str:
        """The command line for logs, with secret values replaced."""
        out = list(self.argv)
        for i, arg in enumerate(out):
            name = arg.split("=", 1)[0]
            if name in SECRET_FLAGS:
                out[i] = f"{name}=***" if "=" in arg else arg
                if "=" not in arg and i + 1 < len(out):
                    out[i + 1] = "***"
        return " ".join(out)


def serve_command(cfg: EngineConfig, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                  served_name: str | None = None, extra: Sequence[str] = (),
                  dev_mode: bool = False, cuda: bool | None = None,
                  flags: frozenset[str] | None = None,
                  resolved: ResolvedEngine | None = None) -> ServeSpec:
    """The `vllm serve` argv and environment for this EngineConfig, resolved as the in-process
    engine's (engines.resolved: the model alias, dtype by device, the CPU block size), with
    prefix caching and logprobs after allowed_token_ids masking. served_name (default:
    the model as given, e.g. the alias) is the name clients send. cuda/flags: the device (None:
    this machine's). dev_mode: vLLM's dev routes (/reset_prefix_cache ...), trusted hosts only.
    resolved: cfg already resolved (engines.resolved; then cuda/flags are not read). Raises
    PrefixoptError for a model that cannot be found."""

    if resolved is None:
        resolved = resolve_engine(cfg, cuda=cuda, flags=flags)
    model, cuda, dtype = resolved.model_path, resolved.cuda, resolved.dtype
    argv = [sys.executable, "-m", "prefixopt.engines.vllm_server", "serve", model,
            "--host", host, "--port", str(port),
            "--served-model-name", served_name or cfg.model,
            "--dtype", dtype, "--max-model-len", str(cfg.max_model_len),
            "--seed", str(resolved.seed),
            "--logprobs-mode", "processed_logprobs",
            # no sampling defaults from the model's generation_config.json: a request gets
            # what it asks for, as SamplingParams in-process
            "--generation-config", "vllm",
            "--enable-prompt-tokens-details",  # usage.prompt_tokens_details.cached_tokens
            "--disable-uvicorn-access-log",  # one line per request would dwarf the log
            ("--enable-prefix-caching" if cfg.enable_prefix_caching
             else "--no-enable-prefix-caching"),
            "--tensor-parallel-size", str(cfg.tensor_parallel_size),
            "--data-parallel-size", str(cfg.data_parallel_size)]
    if resolved.block_size is not None:
        argv += ["--block-size", str(resolved.block_size)]
    if cuda:
        argv += ["--gpu-memory-utilization", f"{cfg.gpu_memory_utilization:g}"]
    if cfg.load_in_4bit:
        argv += ["--quantization", "bitsandbytes"]
    if cfg.trust_remote_code:
        argv.append("--trust-remote-code")
    if resolved.eager:
        argv.append("--enforce-eager")
    argv += list(extra)
    env = {"VLLM_LOGGING_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}  # a live log file
    if not cuda:
        env.update(VLLM_CPU_KVCACHE_SPACE=f"{cfg.cpu_kvcache_gib:g}",
                   VLLM_CPU_NUM_OF_RESERVED_CPU="0")
    if dev_mode:
        env["VLLM_SERVER_DEV_MODE"] = "1"
    env = {k: v for k, v in env.items() if k not in os.environ}  # the user's settings win
    return ServeSpec(argv, env, host, port, served_name or cfg.model, model)


def last_error(log: Path | None) -> str:
    """The last line of the server log that names an error, for the one-line failure."""
    if log is None or not log.is_file():
        return ""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in reversed(lines):
        if "Error" in line or "error:" in line.lower():
            return line.strip()[-300:]
    return ""


@dataclass
class Server:
    """A running `vllm serve` child process (its own process group, so stop/kill reach the
    engine core too). `log`: where its output goes (None: this terminal)."""

    spec: ServeSpec
    log: Path | None
    proc: subprocess.Popen | None = None
    model: str = ""
    start_s: float = 0.0  # seconds from start() to the first answer of /v1/models
    _t0: float = field(default=0.0, repr=False)

    @property
    def url(self) -> str:
        return self.spec.url

    @property
    def port(self) -> int:
        return self.spec.port

    def start(self) -> Server:
        out: IO[Any] | None = None
        if self.log is not None:
            self.log.parent.mkdir(parents=True, exist_ok=True)
            out = open(self.log, "a", encoding="utf-8")  # noqa: SIM115 (the child keeps it)
            out.write(f"\n# prefixopt serve: {self.spec.shown()}\n")
            out.flush()
        self.model = self.spec.model_name
        self._t0 = time.monotonic()
        try:
            self.proc = subprocess.Popen(
                self.spec.argv, env={**os.environ, **self.spec.env}, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT if out else None, start_new_session=True)
        finally:
            if out is not None:
                out.close()
        return self

    @property
    def headless(self) -> bool:
        """Engine ranks only (a multi-node data-parallel worker node): no HTTP endpoint."""
        return "--headless" in self.spec.argv

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> Server:
        """Block until GET /v1/models answers (sets .model from it); one line if the server
        exits first or does not answer in time. A headless server has nothing to ask."""
        if self.headless:
            return self
        deadline = time.monotonic() + timeout
        where = f" (log: {self.log})" if self.log else ""
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.proc.returncode if self.proc else None
                err = last_error(self.log)
                raise PrefixoptError(f"vLLM server exited with code {code} before answering"
                                     f"{': ' + err if err else ''}{where}")
            try:
                with urllib.request.urlopen(self.url + "/models", timeout=5) as resp:
                    data = json.loads(resp.read())["data"][0]
                # another server that took the port while ours was loading is not ours
                if not self.spec.model_path or data.get("root") == self.spec.model_path:
                    self.model = data["id"]
                    self.start_s = time.monotonic() - self._t0
                    return self
            except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError):
                pass
            time.sleep(0.5)
        raise PrefixoptError(f"vLLM server at {self.url} did not answer within {timeout:.0f} s"
                             f"{where}")

    def wait(self) -> int:
        """Until the server process exits; its exit code."""
        return self.proc.wait() if self.proc else 0

    def _signal_group(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM (vLLM shuts its engine down), SIGKILL to the group after `grace` seconds
        and to whatever of the group is left."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self._signal_group(signal.SIGKILL)
        self.proc.wait()

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a server dying, for fault tests)."""
        self._signal_group(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def restart(self, timeout: float = READY_TIMEOUT_S) -> Server:
        """Stop if running, start again on the same port, wait until it answers."""
        self.stop()
        return self.start().wait_ready(timeout)


def default_log(port: int) -> Path:
    """Where the server's output goes without --log: the temp dir, one file per port."""
    return Path(tempfile.gettempdir()) / f"prefixopt-serve-{port}.log"


def start_server(cfg: EngineConfig, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 served_name: str | None = None, extra: Sequence[str] = (),
                 log: Path | None = None, verbose: bool = False,
                 dev_mode: bool = False) -> Server:
    """Check the model and the port (one line each, before vLLM starts), then start the
    server in the background; call .wait_ready() on the handle. Output goes to `log`
    (default: default_log(port)), or to this terminal when verbose."""

    model_path = locate(cfg.model)  # cheap checks first; resolving the device imports torch
    if "--headless" not in extra:
        check_port(host, port)
    spec = serve_command(cfg, host=host, port=port, served_name=served_name, extra=extra,
                         dev_mode=dev_mode, resolved=resolve_engine(cfg, model_path=model_path))
    return Server(spec, None if verbose else (log or default_log(port))).start()


def serve_foreground(server: Server, timeout: float = READY_TIMEOUT_S,
                     announce: Any = print) -> int:
    """Wait until the server answers, announce its URL, then run until it exits or this
    process gets Ctrl-C / SIGTERM (the server and its children are stopped either way).
    Returns 0 when stopped by a signal; raises PrefixoptError if the server dies."""
    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # SIGINT too: a shell starts background jobs with it ignored, and Ctrl-C must still work
    previous = {sig: signal.signal(sig, on_term) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.wait_ready(timeout)
        announce(server)
        code = server.wait()
        where = f" (log: {server.log})" if server.log else ""
        raise PrefixoptError(f"vLLM server exited with code {code}{where}")
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
