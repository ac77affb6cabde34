"""The commands' options derived from the config fields (commands/options.py): each option's
default and help are its field's (or the field's per-command entry), and `--benchmark` is
parsed once (config.split_benchmarks, TaskConfig.benchmarks).
"""

from __future__ import annotations

import dataclasses
import typing

import pytest

from prefixopt.commands import options as o
from prefixopt.config import EngineConfig, EvalConfig, TaskConfig, TrainConfig, split_benchmarks
from prefixopt.config_cli import BenchConfig


def _field(cls: type, name: str) -> dataclasses.Field:
    return {f.name: f for f in dataclasses.fields(cls)}[name]


def _info(param):
    return typing.get_args(param.annotation)[1]


def _decls(param) -> tuple[str, ...]:
    """An Annotated typer.Option's flags (its first positional argument is kept as `default`)."""
    info = _info(param)
    first = (info.default,) if isinstance(info.default, str) else ()
    return (*first, *info.param_decls)


def _by_name(group) -> dict:
    return {p.name: p for p in group}


def test_train_options_are_the_config_defaults() -> None:
    params = _by_name(o.TRAIN)
    cfg = TrainConfig()
    for name, param in params.items():
        owner = next(c for c in (cfg, cfg.task, cfg.engine) if hasattr(c, name))
        value = getattr(owner, name)
        assert param.default == (None if isinstance(value, tuple) else value), name
        assert _info(param).help, name
    assert params["iterations"].default == 20
    assert _info(params["learning_rate"]).help == _field(TrainConfig, "learning_rate").metadata[
        "help"]
    assert params["benchmark"].default == TaskConfig().benchmark
    assert "arc_easy" in _info(params["benchmark"]).help  # {BENCHMARKS} filled in
    assert _decls(params["samples_per_iteration"]) == ("--samples-per-iteration", "-k")


def test_every_run_setting_has_an_option() -> None:
    names = {p.name for p in o.TRAIN} | {p.name for p in o.JOB}
    for cls in (TrainConfig, TaskConfig, EngineConfig):
        for f in dataclasses.fields(cls):
            if "help" in f.metadata:
                assert f.metadata.get("name", f.name) in names, f.name


def test_per_command_entries() -> None:
    ev = _by_name(o.EVAL_CMD)
    assert ev["model"].default is None and _info(ev["model"]).help.startswith("Model (default")
    assert ev["engine"].default is None
    assert ev["top_k"].default == EvalConfig().top_k
    assert _decls(ev["people"]) == ("--people",)
    assert ev["people_file"].default is None
    run = _by_name(o.EVAL)
    assert set(run) >= {"eval_top_k", "eval_num_questions", "eval_prompt", "eval_people"}
    assert run["eval_bootstrap_samples"].default == EvalConfig().bootstrap_samples
    bench = _by_name(o.BENCH)
    assert bench["k"].default == BenchConfig().k and bench["model"].default == "smollm2-135m"
    assert bench["engine"].default == EngineConfig().kind
    study = _by_name(o.STUDY)
    assert study["resume"].default is False and study["engine"].default is None


def test_eval_options_maps_run_flags_to_fields() -> None:
    values = {p.name: p.default for p in o.EVAL}
    values.update(eval_top_k=3, eval_prompt=["Be careful."], eval_people=None)
    out = o.eval_options(values)
    assert out["top_k"] == 3 and out["prompts"] == ("Be careful.",) and out["people_names"] == ()
    EvalConfig(**out)  # every key is an EvalConfig field


@pytest.mark.parametrize(("spec", "names"), [
    ("mmlu", ("mmlu",)), ("mmlu, gsm8k,mmlu", ("mmlu", "gsm8k")), (" , ", ()),
])
def test_benchmarks_parsed_once(spec: str, names: tuple[str, ...]) -> None:
    assert split_benchmarks(spec) == names
    assert TaskConfig(benchmark=spec).benchmarks == names
