"""What a job's engine options resolve to, decided ONCE per job before any engine starts: the
model to load (models.locate), the device, the dtype and why (device.resolve_dtype), the vLLM
block size, the seed. The in-process engine, `prefixopt serve` and the run header all read this
record instead of resolving again.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefixopt import device
from prefixopt.config import CPU_BLOCK_SIZE, EngineConfig
from prefixopt.errors import PrefixoptError
from prefixopt.models import locate


@dataclass(frozen=True)
class ResolvedEngine:
    """One job's engine options, resolved. vllm: model_path is what vLLM loads, dtype is never
    "auto" on CPU; openai/synthetic: model_path is "" and dtype/why are what info() reports."""

    kind: str
    model: str  # as given (alias, hub id or folder)
    model_path: str
    cuda: bool
    flags: frozenset[str]
    dtype: str
    dtype_why: str
    block_size: int | None  # None: vLLM's own default (CUDA)
    seed: int
    eager: bool = False  # no torch.compile / CUDA graphs (vllm_eager)


def vllm_block_size(requested: int | None, cuda: bool) -> int | None:
    """The prefix-cache block size prefixopt gives vLLM: the one asked for, else CPU_BLOCK_SIZE
    on CPU (the CPU build's best), else None (vLLM's CUDA default, 16)."""
    if requested is not None:
        if requested < 1 or (not cuda and requested % CPU_BLOCK_SIZE):
            # vLLM would only say so after loading the model (CPU_ATTN: MultipleOf(32))
            raise PrefixoptError(f"--block-size {requested}: the CPU build's attention needs a "
                                 f"positive multiple of {CPU_BLOCK_SIZE} (e.g. {CPU_BLOCK_SIZE})")
        return requested
    return None if cuda else CPU_BLOCK_SIZE


# On CPU a compiled model scored ~5% faster per iteration than an eager one (AVX2 Zen 2), but
# compiling costs 85-158 s at a machine's first engine start (~8 s with a warm compile cache):
# about 10,000 question evaluations before a cold compile pays back (docs/engine_speed.md
# "Compiled or eager"). Jobs at least twice that size compile.
COMPILE_MIN_EVALUATIONS = 20_000


def vllm_eager(requested: bool | None, cuda: bool, evaluations: int | None = None) -> bool:
    """Whether vLLM runs eagerly: as asked, else compiled on CUDA (CUDA graphs pay), and on CPU
    eager unless the job has at least COMPILE_MIN_EVALUATIONS question evaluations left
    (evaluations: the job's, None when unknown -> eager)."""
    if requested is not None:
        return requested
    return not cuda and (evaluations is None or evaluations < COMPILE_MIN_EVALUATIONS)


def resolve_engine(cfg: EngineConfig, *, cuda: bool | None = None,
                   flags: frozenset[str] | None = None,
                   model_path: str | None = None,
                   evaluations: int | None = None) -> ResolvedEngine:
    """Resolve cfg once. vllm: locate the model first (one line for a missing one, before torch
    is imported), then the device (cuda/flags: None means this machine's) and the dtype.
    model_path: an already located model (skips locate); evaluations: the job's question
    evaluations (compile or not, vllm_eager)."""
    if cfg.kind != "vllm":
        dtype = "server's" if cfg.kind == "openai" else "none"
        return ResolvedEngine(cfg.kind, cfg.model, "", False, frozenset(), dtype, "",
                              cfg.block_size, cfg.seed)
    path = locate(cfg.model) if model_path is None else model_path
    cuda = device.cuda_available() if cuda is None else cuda
    flags = device.cpu_flags() if flags is None else flags
    dtype = device.resolve_dtype(cfg.dtype, cuda=cuda, flags=flags,
                                 saved=device.model_dtype(path))
    return ResolvedEngine("vllm", cfg.model, path, cuda, flags, dtype,
                          device.describe(dtype, cuda, flags),
                          vllm_block_size(cfg.block_size, cuda), cfg.seed,
                          vllm_eager(cfg.enforce_eager, cuda, evaluations))
