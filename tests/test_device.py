"""The dtype resolver: `--dtype auto` -> bfloat16 only where the hardware has native bf16."""

from __future__ import annotations

import json

import pytest

from prefixopt import device

AVX2_ZEN3 = frozenset(["fpu", "sse", "sse2", "avx", "avx2", "fma", "f16c", "bmi2", "vaes"])
AVX512_BF16 = AVX2_ZEN3 | {"avx512f", "avx512bw", "avx512_bf16"}
SAPPHIRE = AVX2_ZEN3 | {"avx512f", "amx_tile", "amx_bf16"}
ARM_BF16 = frozenset(["fp", "asimd", "sve", "bf16", "i8mm"])


@pytest.mark.parametrize(("flags", "expected"), [
    (AVX2_ZEN3, "float32"), (AVX512_BF16, "bfloat16"), (SAPPHIRE, "bfloat16"),
    (ARM_BF16, "bfloat16"), (frozenset(), "float32"),
])
def test_auto_on_cpu_follows_native_bf16(flags, expected):
    assert device.resolve_dtype("auto", cuda=False, flags=flags, saved="bfloat16") == expected


def test_auto_on_cuda_is_the_models_dtype():
    assert device.resolve_dtype("auto", cuda=True, flags=AVX2_ZEN3, saved="bfloat16") == "bfloat16"
    assert device.resolve_dtype("auto", cuda=True, flags=AVX2_ZEN3, saved="float16") == "float16"
    assert device.resolve_dtype("auto", cuda=True, flags=frozenset(), saved=None) == "auto"


def test_an_explicit_dtype_is_kept():
    for dtype in ("float32", "bfloat16", "float16"):
        assert device.resolve_dtype(dtype, cuda=False, flags=AVX2_ZEN3) == dtype
        assert device.resolve_dtype(dtype, cuda=True, flags=AVX512_BF16) == dtype


def test_cpu_flags_reads_x86_and_arm_cpuinfo(tmp_path):
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512_bf16\n\nprocessor\t: 1\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert device.cpu_flags(x86) == {"fpu", "avx2", "avx512_bf16"}
    assert device.cpu_flags(arm) == {"fp", "asimd", "bf16"}
    assert device.cpu_flags(tmp_path / "missing") == frozenset()


def test_model_dtype_reads_config_json(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"torch_dtype": "bfloat16"}))
    assert device.model_dtype(tmp_path) == "bfloat16"
    assert device.model_dtype(tmp_path / "nowhere") is None


def test_describe_says_why():
    assert "without native bf16" in device.describe("float32", False, AVX2_ZEN3)
    assert "avx512_bf16" in device.describe("bfloat16", False, AVX512_BF16)
    assert "CUDA" in device.describe("bfloat16", True, frozenset())


def test_allocator_note_only_under_glibc_and_names_a_found_tcmalloc(tmp_path):
    lib = tmp_path / "libtcmalloc_minimal.so.4"
    lib.write_bytes(b"")
    (tmp_path / "libtcmalloc_minimal_debug.so.4").write_bytes(b"")  # never the debug build
    note = device.allocator_note({}, (str(tmp_path), str(tmp_path / "absent")))
    assert note is not None and f"LD_PRELOAD={lib} " in note and "\n" not in note
    bare = device.allocator_note({"LD_PRELOAD": "/x/libiomp5.so"}, (str(tmp_path / "absent"),))
    assert bare is not None and "apt install libtcmalloc-minimal4" in bare
    for preload in (str(lib), "/usr/lib/libjemalloc.so.2:/x/libiomp5.so"):
        assert device.allocator_note({"LD_PRELOAD": preload}, (str(tmp_path),)) is None
