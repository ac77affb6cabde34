"""runs.py: run directories are never reused, writes are atomic, checkpoints load without
pickle, and `scan` reads every table."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from prefixopt import runs
from prefixopt.config import TrainConfig
from prefixopt.errors import PrefixoptError


def test_create_run_dir_never_overwrites(tmp_path):
    a = runs.create_run_dir(tmp_path, "exp")
    (a / "keep.txt").write_text("x")
    with pytest.raises(PrefixoptError, match="already exists"):
        runs.create_run_dir(tmp_path, "exp")
    assert (a / "keep.txt").read_text() == "x"
    g1, g2 = runs.create_run_dir(tmp_path, None), runs.create_run_dir(tmp_path, None)
    assert g1 != g2 and g1.is_dir() and g2.is_dir()


def test_config_round_trip(tmp_path):
    cfg = TrainConfig(learning_rate=0.3, exclude_fields=("Sports",))
    runs.write_config(tmp_path, cfg, {"people_fingerprint": "abc"})
    meta = runs.read_config(tmp_path)
    assert meta["people_fingerprint"] == "abc"
    assert runs.read_train_config(tmp_path) == cfg
    with pytest.raises(PrefixoptError, match="not a run directory"):
        runs.read_config(tmp_path / "nope")


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "t.json"
    runs.write_text(path, "old")

    def broken(p):
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        runs._atomic(path, broken)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["t.json"]  # no temp file left behind


def test_parts_scan_and_truncate(tmp_path):
    for it in range(3):
        runs.write_part(tmp_path, "iterations", it, pl.DataFrame({"iteration": [it], "x": [1.0]}))
    df = runs.scan(tmp_path, "iterations").sort("iteration").collect()
    assert df["iteration"].to_list() == [0, 1, 2]
    runs.truncate_parts(tmp_path, 1)
    assert runs.scan(tmp_path, "iterations").collect().height == 2
    with pytest.raises(PrefixoptError, match="no samples table"):
        runs.scan(tmp_path, "samples")
    assert not list(tmp_path.rglob("*.tmp"))


def test_eval_tables_with_split_syntax(tmp_path):
    rows = pl.DataFrame({"prefix_kind": ["none"], "correct": [True]})
    summary = pl.DataFrame({"prefix_kind": ["none"], "accuracy": [1.0]})
    runs.write_eval(tmp_path, "validation[50%:]", rows, summary)
    assert runs.scan(tmp_path, "eval/validation[50%:]").collect().equals(rows)
    assert runs.scan(tmp_path, "eval/validation[50%:]_summary").collect().equals(summary)
    with pytest.raises(PrefixoptError, match="prefixopt eval"):
        runs.scan(tmp_path, "eval/test")


def test_one_slug_for_splits_and_eval_names():
    from prefixopt.evaluate.heldout import eval_name

    for split in ("validation[:50%]", "validation[50%:]", "test[:40]", "test", "a+b"):
        name = eval_name(split, None, 0)
        assert runs.split_slug(split) == name == runs.split_slug(name)  # a name is its own slug
        assert runs.split_slug(eval_name(split, 100, 3)) == f"{name}_n100_seed3"
    assert runs.split_slug("validation[:50%]") != runs.split_slug("validation[50%:]")
    assert runs.split_slug("test[:40]") == "test_start-40"  # what `prefixopt run` writes


def test_checkpoint_round_trip_without_pickle(tmp_path):
    rng = np.random.default_rng(3)
    rng.random(5)
    state = {"params": np.arange(4.0), "probs": np.full(4, 0.25),
             "rng_state": json.dumps(rng.bit_generator.state)}
    runs.save_checkpoint(tmp_path, state, iteration=7, snapshot=np.arange(4.0))
    loaded = runs.load_checkpoint(tmp_path)
    assert int(loaded["iteration"]) == 7
    np.testing.assert_array_equal(loaded["params"], state["params"])
    np.testing.assert_array_equal(runs.final_probs(tmp_path), state["probs"])
    restored = np.random.default_rng()
    restored.bit_generator.state = json.loads(str(loaded["rng_state"]))
    assert restored.random() == rng.random()  # the Generator continues exactly
    snap = np.load(tmp_path / "checkpoints" / "theta_000007.npy", allow_pickle=False)
    np.testing.assert_array_equal(snap, np.arange(4.0))
    with pytest.raises(TypeError, match="plain array"):
        runs.save_checkpoint(tmp_path, {"bad": np.array([{}], dtype=object)}, iteration=8)
    assert int(runs.load_checkpoint(tmp_path)["iteration"]) == 7  # the old one survives
