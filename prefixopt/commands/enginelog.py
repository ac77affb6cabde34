"""A quiet terminal while an engine runs. vLLM, torch and transformers write dozens of lines per
start (Python logging, warnings, tqdm, and C++ prints straight to file descriptor 2). While a
command's engine is alive, fds 1 and 2 point at RUN/engine.log (a temp file without a run dir,
removed on success), and prefixopt's own consoles write to the real terminal through saved
copies of those fds. `--verbose` leaves everything on the terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from prefixopt import device, runs
from prefixopt.engines import build
from prefixopt.engines.resolved import ResolvedEngine
from prefixopt.commands.common import err_console, out_console
from prefixopt.config import EngineConfig
from prefixopt.errors import PrefixoptError
from prefixopt.ask.prompts import persona_placement


@contextlib.contextmanager
def engine_output(log_path: Path | None, verbose: bool = False) -> Iterator[Path | None]:
    """Route the libraries' output to `log_path` for the duration of the block."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "INFO")  # all of it, in the log or on --verbose
    if verbose:
        yield None
        return
    temp = log_path is None
    if temp:
        fd, name = tempfile.mkstemp(prefix="prefixopt-engine-", suffix=".log")
        log_path = Path(name)
    else:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {1: os.dup(1), 2: os.dup(2)}
    consoles = {1: out_console, 2: err_console}
    previous = {n: c._file for n, c in consoles.items()}  # None: follows sys.stdout/stderr
    terminal = {n: os.fdopen(saved[n], "w", buffering=1, closefd=False) for n in saved}
    for n in (1, 2):
        consoles[n].file = terminal[n]
        os.dup2(fd, n)
    ok = False
    try:
        yield log_path
        ok = True
    except PrefixoptError as exc:  # the one line also says where the engine's own words are
        sys.stdout.flush()
        sys.stderr.flush()
        if log_path.stat().st_size == 0:
            raise
        raise PrefixoptError(f"{exc} (engine log: {log_path})") from exc
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        for n in (1, 2):
            terminal[n].flush()
            os.dup2(saved[n], n)
            os.close(saved[n])
            consoles[n]._file = previous[n]
        os.close(fd)
        if temp and (ok or log_path.stat().st_size == 0):
            log_path.unlink(missing_ok=True)


def header(command: str, cfg: EngineConfig, run_dir: Path | None,
           resolved: ResolvedEngine | None = None, notes: Sequence[str] = ()) -> None:
    """The line before the engine starts: model, device, dtype (and why), run directory; then
    `notes` (the job's estimate and warnings, commands/estimate.py), one line each."""
    _header(command, cfg, run_dir, resolved)
    for note in notes:
        err_console.print(note, highlight=False, soft_wrap=True)


def _header(command: str, cfg: EngineConfig, run_dir: Path | None,
            resolved: ResolvedEngine | None) -> None:
    where = f", run {run_dir}" if run_dir is not None else ""
    if cfg.kind == "openai":  # the key is never shown
        err_console.print(f"prefixopt {command}: {cfg.model} through {cfg.base_url} (--engine "
                          f"openai, api {cfg.api}){where}", highlight=False, soft_wrap=True)
        return
    if cfg.kind != "vllm":
        err_console.print(f"prefixopt {command}: {cfg.kind} engine (no LLM){where}",
                          highlight=False,
                          soft_wrap=True)
        return

    resolved = resolved or build.resolve(cfg)
    err_console.print(
        f"prefixopt {command}: {cfg.model} on {'cuda' if resolved.cuda else 'cpu'}, "
        f"{resolved.dtype_why}, {'eager' if resolved.eager else 'compiled'}{where}",
        highlight=False, soft_wrap=True)
    note = None if resolved.cuda or resolved.eager else device.allocator_note()  # a long job
    if note is not None:
        err_console.print(note, highlight=False, soft_wrap=True)


@contextlib.contextmanager
def engine_session(command: str, cfg: EngineConfig, run_dir: Path | None,
                   verbose: bool = False, model_path: str = "", notes: Sequence[str] = (),
                   evaluations: int | None = None, resumes: Sequence[Path] = (),
                   **engine_args: Any) -> Iterator[tuple[Any, float]]:
    """Header, then the job's ONE engine with its output in RUN/engine.log: (engine, start s).
    model_path: what build.check_engine located (the engine is resolved once, from it);
    evaluations: the job's question evaluations left (eager or compiled: resolved.vllm_eager);
    resumes: the runs whose training continues on this engine (the same dtype:
    runs.check_resume_dtype)."""

    resolved = build.resolve(cfg, model_path, evaluations) if cfg.kind == "vllm" else None
    if resolved is not None:
        runs.check_resume_dtype(resumes, resolved.dtype, resolved.dtype_why)
    header(command, cfg, run_dir, resolved, notes)
    if cfg.kind == "synthetic":  # nothing to silence
        yield build.make_engine(cfg, run_dir=run_dir, **engine_args)
        return
    if cfg.kind == "openai":  # a remote engine prints nothing of its own
        engine, start_s = build.make_engine(cfg, run_dir=run_dir, resolved=resolved,
                                            **engine_args)
        placement_note(engine)
        yield engine, start_s
        return
    log = Path(run_dir) / "engine.log" if run_dir is not None else None
    with engine_output(log, verbose):
        engine, start_s = build.make_engine(cfg, run_dir=run_dir, resolved=resolved,
                                            **engine_args)
        placement_note(engine)
        yield engine, start_s


def placement_note(engine: Any) -> None:
    """Say once when the chat template has no system role (the persona then opens the user
    turn; config.json records it as persona_placement)."""

    if persona_placement(engine) == "user":
        err_console.print("note: this model's chat template has no system role; the persona "
                          "goes first in the user turn instead", highlight=False)
