"""bench/roofline.py: the FLOP count against a hand computation, and the measured peak's keys."""

from __future__ import annotations

import pytest

from prefixopt.bench import roofline

# SmolLM2-135M's shape (config.json of the embedded model)
SMOL = {"hidden_size": 576, "intermediate_size": 1536, "num_attention_heads": 9,
        "num_key_value_heads": 3, "head_dim": 64, "num_hidden_layers": 30, "vocab_size": 49152}


def test_flop_per_token_matches_a_hand_count():
    weights = 576 * 576 + 576 * 2 * 3 * 64 + 576 * 576 + 576 * 2 * 1536 + 1536 * 576
    assert weights == 3_538_944  # parameters of one decoder layer's matrix products
    # one prompt of 10 tokens, 4 of them cached: 6 computed tokens at positions 4..9, which
    # attend to 5..10 positions (45 in all); the LM head on 2 rows
    flop = roofline.engine_flop(SMOL, [10], [4], lm_head_positions=2)
    expected = 30 * (2 * weights * 6 + 4 * 9 * 64 * (5 + 6 + 7 + 8 + 9 + 10)) + 2 * 2 * 576 * 49152
    assert flop == expected


def test_cached_tokens_cost_nothing_and_roofline_is_a_ratio():
    assert roofline.engine_flop(SMOL, [8], [8], 0) == 0
    r = roofline.roofline(SMOL, 100.0, 2.0, [10, 10], [0, 4], 2)
    flop = roofline.engine_flop(SMOL, [10, 10], [0, 4], 2)
    assert r["model_gflops"] == pytest.approx(flop / 2.0 / 1e9)
    assert r["roofline_fraction"] == pytest.approx(r["model_gflops"] / 100.0)
    assert r["model_gflop_per_computed_token"] == pytest.approx(flop / 16 / 1e9)


def test_gemm_peak_measures_every_model_shape():
    pytest.importorskip("torch")
    out = roofline.gemm_peak(SMOL, "float32", threads=1, tokens=64, repeats=2)
    assert set(out) >= {"gemm_peak_gflops", "gemm_gflops_by_shape", "gemm_dtype", "gemm_threads"}
    assert len(out["gemm_gflops_by_shape"]) == len(roofline.weight_shapes(SMOL))
    assert out["gemm_peak_gflops"] == max(out["gemm_gflops_by_shape"].values()) > 0
    assert out["gemm_dtype"] == "float32" and out["gemm_threads"] == 1
