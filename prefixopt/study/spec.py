"""A study spec (`prefixopt study SPEC.toml`): the TOML file read into a StudyConfig, and its
grid expanded into cells (models x benchmarks x learner options x budgets x seeds), each a
TrainConfig with a stable readable id (`smollm2-135m__arc_easy__b20000__s0`). Unknown keys and
bad values are one-line errors that list what is valid; nothing is loaded here.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefixopt.config import TrainConfig, opt, split_benchmarks
from prefixopt.config_file import config_keys, train_config_from_mapping
from prefixopt.errors import PrefixoptError

TOP_KEYS = ("name", "engine", "output_dir", "grid", "train", "eval", "transfer", "synthetic")
GRID_AXES = ("models", "benchmarks", "budgets", "seeds")
# set by the grid or the study itself, so not a [train] key nor a learner-option axis
RESERVED = ("model", "model_name", "benchmark", "benchmark_name", "iterations",
            "num_iterations", "seed", "run_name", "output_dir", "kind")
EVAL_KEYS = ("eval_split", "num_questions", "top_k", "num_random", "prompts", "people_names",
             "handwritten", "paraphrase_null", "allow_overlap", "bootstrap_samples", "seed",
             "score_cache")
STUDY_EVAL_KEYS = ("seed", "score_cache")  # the study's own, not EvalConfig options
TRANSFER_KEYS = ("enabled", "benchmarks")
SYNTHETIC_KEYS = ("planted_field", "planted_people", "delta", "base_accuracy", "difficulty_sd",
                  "seed")
ENGINES = ("vllm", "synthetic", "openai")


@dataclass(frozen=True)
class StudyConfig:
    """One study: the grid, the fixed training settings, eval, transfer and the planted
    scenario of a synthetic study. (A candidate for config.py, beside TrainConfig.)"""

    name: str
    models: tuple[str, ...]
    benchmarks: tuple[str, ...]  # each a benchmark or a comma list (one multi-benchmark run)
    budgets: tuple[int, ...]  # question evaluations; iterations = budget // (K * B)
    seeds: tuple[int, ...] = (0,)
    options: tuple[tuple[str, tuple[Any, ...]], ...] = ()  # learner-option axes, in spec order
    engine: str = opt("vllm", "vllm | openai | synthetic (default: the spec's engine)",
                      study={"default": None})
    output_dir: str = opt("studies", "Where studies/<name>/ goes (default: the spec's "
                          "output_dir, else studies).", study={"default": None})
    train: dict[str, Any] = field(default_factory=dict)  # fixed TrainConfig fields (flat)
    eval: dict[str, Any] = field(default_factory=dict)  # EvalConfig fields; seed: all runs'
    transfer: bool = True
    transfer_benchmarks: tuple[str, ...] = ()  # () -> every benchmark of the grid
    synthetic: dict[str, Any] = field(default_factory=dict)

    @property
    def eval_seed(self) -> int:
        return int(self.eval.get("seed", 0))

    @property
    def score_cache(self) -> bool:
        """[eval] score_cache (default on): evals served from studies/<name>/score_cache/."""
        return bool(self.eval.get("score_cache", True))

    def all_benchmarks(self) -> tuple[str, ...]:
        """Every single benchmark the study trains or evaluates on, in spec order."""
        names = [b for spec in self.benchmarks for b in split_benchmarks(spec)]
        return tuple(dict.fromkeys([*names, *self.transfer_benchmarks]))

    def eval_benchmarks(self) -> tuple[str, ...]:
        """The columns of the transfer matrix."""
        if not self.transfer:
            return ()
        grid = [b for spec in self.benchmarks for b in split_benchmarks(spec)]
        return self.transfer_benchmarks or tuple(dict.fromkeys(grid))


def _keys(where: str, table: Any, valid: tuple[str, ...] | list[str]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise PrefixoptError(f"{where} must be a table of keys ({', '.join(valid)})")
    unknown = sorted(set(table) - set(valid))
    if unknown:
        raise PrefixoptError(f"unknown {where} key(s): {', '.join(unknown)}; valid: "
                             f"{', '.join(valid)}")
    return dict(table)


def _axis(name: str, value: Any, kind: type | None = None) -> tuple[Any, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or (kind is not None and not all(
            isinstance(v, kind) and not isinstance(v, bool) for v in values)):
        what = f" of {kind.__name__}" if kind is not None else ""
        raise PrefixoptError(f"[grid] {name} must be a non-empty list{what} (got {value!r})")
    return tuple(values)


def load_spec(path: str | Path) -> StudyConfig:
    """Read and check SPEC.toml (see README "Studies" for the format)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PrefixoptError(f"cannot read study spec {path}: {exc}") from None
    return spec_from_mapping(data, str(path))


def spec_from_mapping(data: dict[str, Any], where: str = "spec") -> StudyConfig:
    """A StudyConfig from the parsed TOML; every key checked before anything runs."""
    data = _keys(f"{where}: top-level", data, TOP_KEYS)
    learner = [k for k in config_keys() if k not in RESERVED]
    grid = _keys(f"{where}: [grid]", data.get("grid", {}), [*GRID_AXES, *learner])
    train = _keys(f"{where}: [train]", data.get("train", {}), learner)
    ev = _keys(f"{where}: [eval]", data.get("eval", {}), EVAL_KEYS)
    tr = _keys(f"{where}: [transfer]", data.get("transfer", {}), TRANSFER_KEYS)
    syn = _keys(f"{where}: [synthetic]", data.get("synthetic", {}), SYNTHETIC_KEYS)
    name, engine = data.get("name"), data.get("engine", "vllm")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise PrefixoptError(f"{where}: name must be letters, digits, '_', '-', '.' (got {name!r})")
    if engine not in ENGINES:
        raise PrefixoptError(f"{where}: engine {engine!r} is not one of: {', '.join(ENGINES)}")
    if not isinstance(ev.get("score_cache", True), bool):
        raise PrefixoptError(f"{where}: [eval] score_cache must be true or false")
    if syn and engine != "synthetic":
        raise PrefixoptError(f'{where}: a [synthetic] scenario needs engine = "synthetic"')
    missing = [k for k in ("models", "benchmarks", "budgets") if k not in grid]
    if missing:
        raise PrefixoptError(f"{where}: [grid] needs {', '.join(missing)}")
    both = sorted(set(train) & set(grid))
    if both:
        raise PrefixoptError(f"{where}: {', '.join(both)} is both a [grid] axis and a [train] "
                             "setting; give it once")
    budgets = _axis("budgets", grid.pop("budgets"), int)
    if min(budgets) < 1:
        raise PrefixoptError(f"{where}: [grid] budgets must be >= 1 question evaluation")
    if isinstance(syn.get("planted_field"), str):
        syn["planted_field"] = [syn["planted_field"]]
    return StudyConfig(
        name=name, engine=engine, output_dir=str(data.get("output_dir", "studies")),
        models=_axis("models", grid.pop("models"), str),
        benchmarks=_axis("benchmarks", grid.pop("benchmarks"), str), budgets=budgets,
        seeds=_axis("seeds", grid.pop("seeds", [0]), int),
        options=tuple((k, _axis(k, v)) for k, v in grid.items()), train=train, eval=ev,
        transfer=bool(tr.get("enabled", True)),
        transfer_benchmarks=tuple(tr.get("benchmarks", ())), synthetic=syn)


@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    id: str  # models__benchmarks__b<budget>__s<seed>[__<option>-<value>...]
    group: str  # the id without budget and seed: one row of the study's matrices
    model: str
    benchmark: str
    budget: int
    seed: int
    options: dict[str, Any]
    cfg: TrainConfig


def slug(value: Any) -> str:
    """'Qwen/Qwen2.5-1.5B-Instruct' -> 'qwen2.5-1.5b-instruct';
    'arc_easy,mmlu' -> 'arc_easy+mmlu'."""
    text = str(value).rstrip("/").rsplit("/", 1)[-1].lower().replace(",", "+")
    return re.sub(r"[^a-z0-9_.+-]+", "-", text).strip("-") or "x"


def cells(spec: StudyConfig, engine_seed: int = 0) -> list[Cell]:
    """The grid, models outermost (one engine per model), then benchmarks, options, budgets,
    seeds. Every cell's TrainConfig is built and validated here."""
    out: list[Cell] = []
    names = [k for k, _ in spec.options]
    for model, bench, combo, budget, seed in itertools.product(
            spec.models, spec.benchmarks, itertools.product(*[v for _, v in spec.options]),
            spec.budgets, spec.seeds):
        options = dict(zip(names, combo, strict=True))
        group = "__".join([slug(model), slug(bench), *(f"{k}-{slug(v)}" for k, v in
                                                          options.items())])
        try:
            cfg = train_config_from_mapping({
                **spec.train, **options, "model": model, "benchmark": bench, "seed": seed,
                # one engine serves every run of a model, so its seed is the study's
                "engine": {"kind": spec.engine, "seed": engine_seed}})
        except (ValueError, TypeError) as exc:
            raise PrefixoptError(f"study {spec.name}: {exc}") from None
        per_iteration = cfg.samples_per_iteration * cfg.batch_size
        if budget < per_iteration:
            raise PrefixoptError(f"budget {budget} is less than one iteration (K x B = "
                                 f"{per_iteration} question evaluations); raise it")
        cid = f"{slug(model)}__{slug(bench)}__b{budget}__s{seed}" + "".join(
            f"__{k}-{slug(v)}" for k, v in options.items())
        cfg = dataclasses.replace(cfg, iterations=budget // per_iteration, run_name=cid,
                                  output_dir=str(Path(spec.output_dir) / spec.name / "runs"))
        out.append(Cell(cid, group, model, bench, budget, seed, options, cfg))
    ids = [c.id for c in out]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise PrefixoptError(f"study {spec.name}: two cells share the id {dup} (two models or "
                             "values with the same short name); rename one")
    return out


def spec_dict(spec: StudyConfig) -> dict[str, Any]:
    """The spec as JSON-able data (the manifest records it; --resume compares it)."""
    import json

    return json.loads(json.dumps(dataclasses.asdict(spec)))
