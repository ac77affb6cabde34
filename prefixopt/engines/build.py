"""The one place that branches on the engine kind: check an engine's options before anything
starts (`check_engine`, which locates the model once), resolve them once (`resolve`:
engines.resolved), then build the job's ONE engine (`make_engine`): the in-process vLLM engine,
an OpenAI-compatible server, or the synthetic engine (a scenario's planted one,
`synthetic_engine`, or a simulate run's, rebuilt from its config.json by
`synthetic_engine_for_run`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from prefixopt import runs
from prefixopt.config import EngineConfig
from prefixopt.device import DTYPES
from prefixopt.engines.openai_engine import APIS, build_openai_engine
from prefixopt.engines.resolved import ResolvedEngine, resolve_engine
from prefixopt.engines.scenarios import small_effects
from prefixopt.engines.synthetic import SyntheticEngine
from prefixopt.engines.vllm_engine import build_engine
from prefixopt.errors import PrefixoptError
from prefixopt.models import locate


ENGINE_KINDS = ("vllm", "synthetic", "openai")


def check_engine(cfg: EngineConfig) -> str:
    """The engine options: its kind, the dtype, the model (path or cached hub id). Returns the
    located model for --engine vllm ("" otherwise): pass it on to `resolve` (no second
    models.locate)."""

    model_path = ""
    if cfg.kind not in ENGINE_KINDS:
        raise PrefixoptError(f"--engine {cfg.kind!r} is not one of: {', '.join(ENGINE_KINDS)}")
    if cfg.kind == "vllm":
        if cfg.dtype not in DTYPES:
            raise PrefixoptError(f"--dtype {cfg.dtype!r} is not one of: {', '.join(DTYPES)}")
        model_path = locate(cfg.model)
    if cfg.kind == "openai":
        if not cfg.base_url or not cfg.base_url.startswith(("http://", "https://")):
            raise PrefixoptError("--engine openai needs --base-url http(s)://HOST:PORT/v1 (what "
                                 "`prefixopt serve` prints, or the hosted API's base URL)")
        if cfg.api not in APIS:
            raise PrefixoptError(f"--api {cfg.api!r} is not one of: {', '.join(APIS)}")
        if cfg.max_concurrency < 1 or cfg.max_retries < 0 or cfg.request_timeout <= 0:
            raise PrefixoptError("--max-concurrency must be >= 1, --max-retries >= 0 and "
                                 "--request-timeout > 0")
    elif cfg.base_url:
        raise PrefixoptError(f"--base-url is for --engine openai, not --engine {cfg.kind}")
    return model_path


def resolve(cfg: EngineConfig, model_path: str | None = None,
            evaluations: int | None = None) -> ResolvedEngine:
    """The job's one ResolvedEngine (model path, device, dtype and why, block size, seed,
    eager or compiled for a job of `evaluations` question evaluations); model_path: what
    check_engine returned (the model is then not located again). Imports torch for --engine
    vllm (the device)."""
    return resolve_engine(cfg, model_path=model_path or None, evaluations=evaluations)


def make_engine(cfg: EngineConfig, *, people=None, seed: int = 0,
                run_dir: str | Path | None = None,
                resolved: ResolvedEngine | None = None) -> tuple[Any, float]:
    """(engine, seconds it took to start). vllm: the in-process vLLM engine (from `resolved`,
    else resolved here). synthetic: the planted engine a simulate run recorded, else everyone
    at 0.5 (plumbing tests)."""
    t = time.perf_counter()
    if cfg.kind == "synthetic":
        planted = run_dir is not None and (Path(run_dir) / "config.json").is_file() and (
            "synthetic" in runs.read_config(run_dir))
        if planted or people is None:  # a simulate run's own engine (or why there is none)
            engine = synthetic_engine_for_run(run_dir)
        else:
            engine = SyntheticEngine(people, np.full(len(people.person_id), 0.5), seed=seed)
    elif cfg.kind == "openai":
        engine = build_openai_engine(cfg)
    else:
        engine = build_engine(cfg, resolved)
    return engine, time.perf_counter() - t


def synthetic_engine(people, scenario, base_accuracy: float, difficulty_sd: float,
                     seed: int) -> SyntheticEngine:
    """The planted engine of a scenario (engines.scenarios: its engine_accuracy(), one entry
    per person row or one table per benchmark), what simulate and study's synthetic grid run
    against."""
    return SyntheticEngine(people, scenario.engine_accuracy(), base_accuracy, difficulty_sd,
                           seed)


def synthetic_engine_for_run(run_dir: str | Path):
    """Rebuild the planted engine a `simulate` run trained against, from config.json's
    "synthetic" entry: base_accuracy, difficulty_sd, seed, delta, planted_person_ids."""

    meta = runs.read_config(run_dir)
    syn = meta.get("synthetic")
    if not syn:
        raise PrefixoptError(f"{run_dir} has no planted scenario in config.json (the "
                             "'synthetic' entry `prefixopt simulate` records); evaluate it with "
                             "--engine vllm")
    people = runs.run_people(run_dir)
    base = float(syn.get("base_accuracy", 0.5))

    def planted_accuracy(ids: list[int]) -> np.ndarray:  # (N,)
        planted = np.isin(people.person_id, np.asarray(ids, np.int64))
        return np.where(planted, base + float(syn.get("delta", 0.0)), base)

    by_benchmark = syn.get("planted_person_ids_by_benchmark")
    if syn.get("small_effects_sd"):  # every person's own accuracy, redrawn from the seed

        accuracy = small_effects(people, float(syn["small_effects_sd"]), base,
                                 int(syn["seed"])).accuracy
        return SyntheticEngine(people, accuracy, base, float(syn.get("difficulty_sd", 1.0)),
                               int(syn["seed"]))
    accuracy = ({b: planted_accuracy(ids) for b, ids in by_benchmark.items()} if by_benchmark
                else planted_accuracy(syn.get("planted_person_ids", [])))
    return SyntheticEngine(people, accuracy, base, float(syn.get("difficulty_sd", 1.0)),
                           int(syn.get("seed", meta.get("config", {}).get("seed", 0))))
