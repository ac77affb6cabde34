"""Which device the engine will run on and which dtype `--dtype auto` means there, decided
before any engine starts. vLLM's own "auto" takes bfloat16 on every x86 CPU, but a CPU without
native bf16 instructions (AVX2-only Zen 3, for one) runs a bf16 matmul ~50x slower than fp32:
measured 1.1 vs 54 GFLOP/s, and every command ~6x slower. So: CUDA -> the model's dtype; a CPU
with avx512_bf16 / amx_bf16 (x86) or bf16 (Arm) -> bfloat16; any other CPU -> float32.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})  # x86 flags, Arm "Features"
DTYPES = ("auto", "float32", "bfloat16", "float16")


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags (x86 `flags`, Arm `Features`); empty when unreadable."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def model_dtype(model_dir: str | Path) -> str | None:
    """The dtype a local model folder was saved in (config.json), None when unknown."""
    try:
        cfg = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = cfg.get("torch_dtype") or cfg.get("dtype")
    return value if isinstance(value, str) else None


def resolve_dtype(requested: str, *, cuda: bool, flags: frozenset[str],
                  saved: str | None = None) -> str:
    """`requested` unless it is "auto"; then CUDA -> the model's saved dtype ("auto" lets vLLM
    read it when unknown), a bf16-capable CPU -> bfloat16, any other CPU -> float32."""
    if requested != "auto":
        return requested
    if cuda:
        return saved or "auto"
    return "bfloat16" if flags & BF16_CPU_FLAGS else "float32"


def cuda_available() -> bool:
    """True on a machine where torch sees a CUDA device (imports torch: call at engine time)."""
    import torch

    return bool(torch.cuda.is_available())


def describe(dtype: str, cuda: bool, flags: frozenset[str]) -> str:
    """Why this dtype, in a few words, for the run header and the README."""
    if cuda:
        return f"{dtype} (CUDA: the model's dtype)"
    native = sorted(flags & BF16_CPU_FLAGS)
    if native:
        return f"{dtype} (CPU with native bf16: {', '.join(native)})"
    return f"{dtype} (CPU without native bf16: float32 is faster)"


# Where Debian / Ubuntu / Fedora put tcmalloc (apt: libtcmalloc-minimal4; dnf: gperftools-libs)
TCMALLOC_DIRS = ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
                 "/usr/lib")


def allocator_note(environ: dict[str, str] | None = None,
                   dirs: tuple[str, ...] = TCMALLOC_DIRS) -> str | None:
    """One header line for a long CPU job under glibc malloc, None when tcmalloc or jemalloc is
    preloaded. Measured (docs/engine_speed.md, "Memory over a long run"): the same answers,
    bit for bit, and about the same speed, but glibc's RSS grows ~15-50 MB per iteration of
    256-512 evaluations where tcmalloc's stays flat (vLLM's CPU guide asks for it too)."""
    preload = (os.environ if environ is None else environ).get("LD_PRELOAD", "")
    if "tcmalloc" in preload or "jemalloc" in preload:
        return None
    found = sorted(p for d in dirs for p in Path(d).glob("libtcmalloc*.so.4")
                   if "debug" not in p.name)
    how = (f"LD_PRELOAD={found[0]}" if found else
           "LD_PRELOAD=<libtcmalloc_minimal.so.4> (apt install libtcmalloc-minimal4)")
    return (f"note: glibc malloc: this job's memory will grow ~15-50 MB per iteration; {how} "
            "keeps it flat, same answers (docs/engine_speed.md)")
