"""`--config FILE.json`: the four forms prefixopt.config_file.train_config_from_mapping accepts
(nested, flat, the reference homework's TrainingConfig, a run's own config.json), the
ambiguity and unknown-key errors, and the CLI path (resolve_config, one-line errors)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from prefixopt import runs
from prefixopt.cli import main
from prefixopt.commands.train import resolve_config
from prefixopt.config import (
    EngineConfig,
    TaskConfig,
    TrainConfig,
    to_dict,
)
from prefixopt.config_file import train_config_from_mapping

CUSTOM = TrainConfig(
    engine=EngineConfig(model="Qwen/Qwen2.5-1.5B-Instruct", dtype="bfloat16", seed=3),
    task=TaskConfig(benchmark="mmlu", scoring="letter", num_fewshot=5),
    iterations=7,
    learning_rate=0.01,
    exclude_fields=("Outlaws",),
    seed=3,
)
# The reference homework's saved training_config.json, every key of its TrainingConfig.
SEED_JSON = {
    "model_name": "meta-llama/Llama-3.1-8B-Instruct", "device_map": "auto",
    "load_in_4bit": False, "people_csv_path": "notable_people_10k.csv", "learning_rate": 0.01,
    "baseline_decay": 0.9, "num_iterations": 100, "samples_per_iteration": 10, "batch_size": 50,
    "benchmark_name": "hellaswag", "benchmark_split": "train", "benchmark_num_samples": 1000,
    "max_new_tokens": 200, "temperature": 0.0, "log_interval": 1, "checkpoint_interval": 10,
    "output_dir": "outputs/runpod_hellaswag_large", "seed": 42,
}  # fmt: skip


def _ctx(*given: str) -> SimpleNamespace:
    """A stand-in for typer's Context: `given` names count as given on the command line."""
    return SimpleNamespace(
        get_parameter_source=lambda name: (
            SimpleNamespace(name="COMMANDLINE") if name in given else None
        )
    )


def test_nested_form_round_trips() -> None:
    assert train_config_from_mapping(to_dict(CUSTOM)) == CUSTOM
    assert train_config_from_mapping({}) == TrainConfig()


def test_flat_form() -> None:
    cfg = train_config_from_mapping(
        {"benchmark": "mmlu", "scoring": "letter", "num_fewshot": 5,
         "model": "Qwen/Qwen2.5-1.5B-Instruct", "dtype": "bfloat16", "iterations": 7,
         "learning_rate": 0.01, "exclude_fields": ["Outlaws"], "seed": 3}
    )  # fmt: skip
    assert cfg == CUSTOM  # a top-level seed seeds the engine too, as --seed does


def test_mixed_flat_and_nested_keep_an_explicit_engine_seed() -> None:
    cfg = train_config_from_mapping({"model": "m", "task": {"benchmark": "gsm8k"}, "seed": 5,
                                     "engine": {"seed": 9}})  # fmt: skip
    assert (cfg.engine.model, cfg.task.benchmark, cfg.seed, cfg.engine.seed) == ("m", "gsm8k", 5, 9)


def test_reference_homework_form() -> None:
    cfg = train_config_from_mapping(SEED_JSON)
    assert cfg.engine.model == "meta-llama/Llama-3.1-8B-Instruct"
    assert cfg.engine.load_in_4bit is False
    assert cfg.task.benchmark == "hellaswag"
    assert (cfg.iterations, cfg.samples_per_iteration, cfg.batch_size) == (100, 10, 50)
    assert (cfg.learning_rate, cfg.ema_decay, cfg.checkpoint_every) == (0.01, 0.9, 10)
    assert (cfg.train_split, cfg.people) == ("train", "notable_people_10k.csv")
    assert cfg.output_dir == "outputs/runpod_hellaswag_large"
    assert cfg.seed == cfg.engine.seed == 42
    rest = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("engine", "task")}
    assert rest["optimizer"] == TrainConfig().optimizer  # values only: no setting is implied


def test_run_config_json_round_trip(tmp_path: Path) -> None:
    meta = {"kind": "train", "versions": {"prefixopt": "0"}, "data_fingerprint": "abc",
            "people_fingerprint": "def", "num_questions": 10, "scoring": "letter"}  # fmt: skip
    runs.write_config(tmp_path, CUSTOM, meta)
    path = tmp_path / "config.json"
    assert train_config_from_mapping(json.loads(path.read_text(encoding="utf-8"))) == CUSTOM
    assert resolve_config(_ctx(), {}, path) == CUSTOM  # the CLI's --config path
    again = resolve_config(_ctx("iterations"), {"iterations": 40, "batch_size": 1}, path)
    assert again == dataclasses.replace(CUSTOM, iterations=40)  # only given flags override


def test_an_eval_runs_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="eval run"):
        train_config_from_mapping({"config": {"top_k": 5}, "kind": "eval"})


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"model": "a", "engine": {"model": "b"}}, "'model' and 'engine.model' both set model"),
        ({"model_name": "a", "model": "b"}, "both set model"),
        ({"benchmark_name": "mmlu", "task": {"benchmark": "gsm8k"}}, "both set benchmark"),
        ({"engine": "vllm"}, "'engine' must be an object"),
        ([1, 2], "JSON object"),
    ],
)
def test_ambiguous_or_malformed(data, needle: str) -> None:
    with pytest.raises((ValueError, TypeError), match=needle):
        train_config_from_mapping(data)


def test_unknown_keys_list_the_valid_ones() -> None:
    with pytest.raises(ValueError) as info:
        train_config_from_mapping({"iterations": 3, "learning_rte": 0.1})
    message = str(info.value)
    assert "\n" not in message and "learning_rte" in message and "valid:" in message
    for key in ("learning_rate", "benchmark", "model", "model_name", "num_iterations", "seed"):
        assert key in message
    with pytest.raises(ValueError, match="unknown engine key.*foo; valid: model, dtype"):
        train_config_from_mapping({"engine": {"foo": 1}})


def test_cli_unknown_key_is_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"benchmark": "mmlu", "bogus": 1}), encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        main(["train", "--config", str(path)])
    assert info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    assert str(path) in lines[0] and "bogus" in lines[0] and "valid:" in lines[0]


def test_cli_notes_ignored_homework_keys(tmp_path: Path, capsys) -> None:
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(SEED_JSON), encoding="utf-8")
    assert resolve_config(_ctx(), {}, path).iterations == 100
    err = capsys.readouterr().err
    assert "ignoring" in err and "max_new_tokens" in err and "temperature" in err
