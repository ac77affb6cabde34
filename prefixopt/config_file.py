"""`--config FILE.json`: the JSON forms a TrainConfig is read from (nested, flat, the reference
homework's TrainingConfig keys, a run's config.json), with one-line errors that list the valid
keys (`train_config_from_mapping`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from prefixopt.config import EngineConfig, TaskConfig, TrainConfig, from_dict

# The reference homework's TrainingConfig keys that prefixopt spells differently:
# key -> (section, field); section None = a TrainConfig field. Its learning_rate,
# samples_per_iteration, batch_size, load_in_4bit, output_dir and seed keep their names.
SEED_KEYS: dict[str, tuple[str | None, str]] = {
    "model_name": ("engine", "model"),
    "benchmark_name": ("task", "benchmark"),
    "benchmark_split": (None, "train_split"),
    "num_iterations": (None, "iterations"),
    "people_csv_path": (None, "people"),
    "baseline_decay": (None, "ema_decay"),
    "checkpoint_interval": (None, "checkpoint_every"),
}
# The homework's keys with no prefixopt equivalent: accepted and ignored (the CLI says so).
SEED_IGNORED_KEYS = frozenset(
    {"device_map", "benchmark_num_samples", "max_new_tokens", "temperature", "log_interval"}
)
_SECTIONS = {"engine": EngineConfig, "task": TaskConfig}


def _names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _target(key: str) -> tuple[str | None, str] | None:
    """Where a top-level key goes: (section, field), or None for an ignored seed key."""
    if key in SEED_KEYS:
        return SEED_KEYS[key]
    if key in _names(TrainConfig):
        return None, key
    for section, cls in _SECTIONS.items():
        if key in _names(cls):
            return section, key
    if key in SEED_IGNORED_KEYS:
        return None
    raise KeyError(key)


def config_keys() -> list[str]:
    """Every top-level key `train_config_from_mapping` accepts, sorted."""
    keys = set(_names(TrainConfig)) | set(SEED_KEYS) | SEED_IGNORED_KEYS
    for cls in _SECTIONS.values():
        keys |= set(_names(cls))
    return sorted(keys)


def _section(data: Mapping[str, Any], section: str) -> dict[str, Any]:
    value = data.get(section, {})
    if not isinstance(value, Mapping):
        raise TypeError(f"{section!r} must be an object of {_SECTIONS[section].__name__} fields")
    valid = _names(_SECTIONS[section])
    unknown = sorted(set(value) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown {section} key(s): {', '.join(unknown)}; valid: {', '.join(valid)}"
        )
    return dict(value)


def train_config_from_mapping(data: Mapping[str, Any]) -> TrainConfig:
    """A TrainConfig from any of the JSON forms `--config` takes: the nested form (`to_dict`),
    a flat one (any TrainConfig, EngineConfig or TaskConfig field at top level), the reference
    homework's TrainingConfig keys (`model_name`, `num_iterations`, ...), or a run's own
    config.json (its "config" entry; the run metadata beside it is ignored). Forms may mix;
    one setting given twice (flat and nested, or under two names) is an error, as is an
    unknown key (the message lists the valid ones). A top-level `seed` also seeds the engine
    unless `engine.seed` is given, as `--seed` does."""
    if not isinstance(data, Mapping):
        raise TypeError("a config must be a JSON object")
    if isinstance(data.get("config"), Mapping):  # a run directory's config.json
        if data.get("kind") == "eval":
            raise ValueError("this is an eval run's config.json; give a train run's")
        data = data["config"]
    nested: dict[str, Any] = {s: _section(data, s) for s in _SECTIONS}
    origin = {(s, k): f"{s}.{k}" for s in _SECTIONS for k in nested[s]}
    unknown = []
    for key, value in data.items():
        if key in _SECTIONS:
            continue
        try:
            target = _target(key)
        except KeyError:
            unknown.append(key)
            continue
        if target is None:
            continue
        if target in origin:
            raise ValueError(f"{key!r} and {origin[target]!r} both set {target[1]}; give one")
        origin[target] = key
        section, name = target
        (nested[section] if section else nested)[name] = value
    if unknown:
        raise ValueError(
            f"unknown config key(s): {', '.join(sorted(unknown))}; "
            f"valid: {', '.join(config_keys())}"
            " (or nested 'engine' / 'task' objects, or a run's config.json)"
        )
    if "seed" in nested and ("engine", "seed") not in origin:
        nested["engine"]["seed"] = nested["seed"]
    return from_dict(TrainConfig, nested)
