"""A score cache around any engine: a request whose exact scoring inputs were scored before (by
this engine, same model, same settings) is served from the cache; every miss goes to the inner
engine in request order, in calls of at most CHUNK requests, each written as one shard (JSON
Lines, atomically) as soon as it is scored: shards are loaded at start, so a killed study's eval
resumes from its last whole chunk. A study wraps its evals' engine, never training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prefixopt import runs
from prefixopt.engines import run_modes
from prefixopt.records import Request, Response

FORMAT = "prefixopt-score-cache"
VERSION = 1  # part of every key: a change in what a key covers bumps it
# misses per inner call, each one shard: ~10 min of cloze scoring on a 2-core CPU (~3.3 question
# evaluations/s, docs/engine_speed.md), what a kill can lose of an eval; vLLM batches within a
# call by its own token budget and keeps its prefix cache across calls, so chunks cost ~nothing
CHUNK = 2048
# the Response fields a shard stores (from_score_cache is set when served, never stored)
STORED = tuple(f.name for f in dataclasses.fields(Response) if f.name != "from_score_cache")


def _digest(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_plain)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plain(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest() + str(obj.dtype)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"not part of a score-cache key: {type(obj).__name__}")


def engine_identity(engine: Any, extra: Mapping[str, Any] | None = None) -> str:
    """What the inner engine is, as one digest: its class, `info()` (model, dtype, device,
    library versions, template), `extra` (the caller's EngineConfig and scenario) and its
    `fingerprint()` (a synthetic engine's planted tables, which info() does not list)."""
    return _digest({"class": f"{type(engine).__module__}.{type(engine).__qualname__}",
                    "api": engine.api, "persona_placement": engine.persona_placement,
                    "info": engine.info(), "extra": dict(extra or {}),
                    "planted": engine.fingerprint()})


def request_key(identity: str, request: Request, mode: str, max_tokens: int,
                stop: Sequence[str]) -> str:
    """Everything that decides a Response: the engine's identity, the whole request (rendered
    prompt, person, question record, continuations, letters), the scoring mode, max tokens and
    stop strings (kept for every mode: conservative)."""
    return _digest({"v": VERSION, "engine": identity, "mode": mode,
                    "max_tokens": int(max_tokens), "stop": list(stop),
                    "request": dataclasses.asdict(request)})


class ScoreCache:
    """The Engine protocol around `inner`. hits / misses: requests served from the cache / sent
    to the inner engine since the wrapper was built (`last`: the latest call's). directory:
    where shards are read and written (None: in memory only). chunk: misses per inner call
    (None: CHUNK).
    on_chunk(scored, misses): told after each chunk of a call (a study's progress line)."""

    def __init__(self, inner: Any, directory: str | Path | None = None,
                 identity: Mapping[str, Any] | None = None, chunk: int | None = None) -> None:
        chunk = CHUNK if chunk is None else chunk
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1 (got {chunk})")
        self.inner = inner
        self.chunk = chunk
        self.on_chunk: Callable[[int, int], None] | None = None
        self.directory = Path(directory) if directory is not None else None
        self._extra = dict(identity or {})
        self._identity: str | None = None  # engine_identity, at the first call
        self.store: dict[str, dict[str, Any]] = {}
        self.hits = self.misses = 0
        self.last = {"hits": 0, "misses": 0}
        if self.directory is not None and self.directory.is_dir():
            for path in sorted(self.directory.glob("*.jsonl")):
                self.store.update(_read_shard(path))

    # --- the Engine protocol, delegated ------------------------------------------------------
    @property
    def api(self) -> str:
        return self.inner.api

    @property
    def persona_placement(self) -> str:
        return self.inner.persona_placement

    @property
    def deterministic(self) -> bool:
        return self.inner.deterministic

    def fingerprint(self) -> dict[str, Any]:
        return self.inner.fingerprint()

    def render_chat(self, system: str | None, user: str) -> str:
        return self.inner.render_chat(system, user)

    def info(self) -> dict[str, str]:
        return self.inner.info()

    def __getattr__(self, name: str) -> Any:  # anything else an engine offers (bench, tokens)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def run(self, requests: Sequence[Request], mode: str | Sequence[str], *,
            max_tokens: int = 1, stop: Sequence[str] = (), **extra: Any) -> list[Response]:
        """The cached requests from the cache, every other one by inner.run in calls of at most
        `chunk` requests (request order kept; a request repeated within the call is sent once,
        the repeats count as hits and carry from_score_cache, as they were not computed), each
        chunk's shard written before the next is sent. Nothing is cached from a call with
        settings beyond max_tokens/stop (a sampling temperature, say) or on an engine that is
        not deterministic: such a call goes to the inner engine whole, in ONE call."""
        modes = run_modes(requests, mode)
        cacheable = self.inner.deterministic and not extra
        keys: list[str | None] = [None] * len(requests)
        if cacheable:
            if self._identity is None:
                self._identity = engine_identity(self.inner, self._extra)
            keys = [request_key(self._identity, r, m, max_tokens, stop)
                    for r, m in zip(requests, modes, strict=True)]
        out: list[Response | None] = [self._served(k) for k in keys]
        first: dict[str, int] = {}  # key -> its first miss: a repeat in the call is scored once
        todo = [i for i, resp in enumerate(out) if resp is None
                and (keys[i] is None or first.setdefault(keys[i], i) == i)]
        step = self.chunk if cacheable else max(len(todo), 1)
        for lo in range(0, len(todo), step):
            part = todo[lo:lo + step]
            sub = [modes[i] for i in part]
            arg = sub[0] if len(set(sub)) == 1 else sub
            got = self.inner.run([requests[i] for i in part], arg, max_tokens=max_tokens,
                                 stop=stop, **extra)
            if len(got) != len(part):
                raise RuntimeError(f"engine returned {len(got)} responses for {len(part)}")
            fresh = {}
            for i, resp in zip(part, got, strict=True):
                out[i] = resp
                if keys[i] is not None:
                    fresh[keys[i]] = {f: getattr(resp, f) for f in STORED}
            self.store.update(fresh)
            if fresh and self.directory is not None:
                _write_shard(self.directory, fresh)  # this chunk's commit point
            if self.on_chunk is not None:
                self.on_chunk(lo + len(part), len(todo))
        if todo:
            out = [resp if resp is not None else self._served(k) for resp, k in zip(
                out, keys, strict=True)]  # the repeats, from their first's response
        self.last = {"hits": len(requests) - len(todo), "misses": len(todo)}
        self.hits += self.last["hits"]
        self.misses += self.last["misses"]
        return out  # type: ignore[return-value]

    def _served(self, key: str | None) -> Response | None:
        fields = self.store.get(key) if key is not None else None
        if fields is None:
            return None
        return Response(**{**fields, "logprobs": tuple(fields["logprobs"])},
                        from_score_cache=True)


def counts(engine: Any, responses: Sequence[Response]) -> dict[str, int] | None:
    """{"hits", "misses"} of one call's responses when `engine` is a ScoreCache, else None."""
    if not isinstance(engine, ScoreCache):
        return None
    hits = sum(r.from_score_cache for r in responses)
    return {"hits": hits, "misses": len(responses) - hits}


def _write_shard(directory: Path, entries: Mapping[str, dict[str, Any]]) -> Path:
    """One shard: a header line (format, version, count), then one line per entry; written
    atomically (runs.write_text), so a killed writer leaves no partial shard."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{uuid.uuid4().hex}.jsonl"
    lines = [json.dumps({"format": FORMAT, "version": VERSION, "count": len(entries)})]
    lines += [json.dumps({"key": k, "response": v}, allow_nan=True) for k, v in entries.items()]
    runs.write_text(path, "\n".join(lines) + "\n")
    return path


def _read_shard(path: Path) -> dict[str, dict[str, Any]]:
    """A shard's entries; a corrupt, partial or foreign one is ignored with one stderr line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        head = json.loads(lines[0])
        if head.get("format") != FORMAT or head.get("version") != VERSION:
            raise ValueError(f"format {head.get('format')!r} version {head.get('version')!r}")
        if len(lines) != 1 + int(head["count"]):
            raise ValueError(f"{len(lines) - 1} entries, header says {head['count']}")
        out = {}
        for line in lines[1:]:
            entry = json.loads(line)
            fields = entry["response"]
            if set(fields) != set(STORED):
                raise ValueError("entry fields differ from records.Response's")
            out[str(entry["key"])] = fields
        return out
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        print(f"warning: score cache shard {path} ignored ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        return {}
