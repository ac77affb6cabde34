"""vLLM's start-up, mended where it goes wrong for prefixopt: the CPU build's compile cache
that never reloads (so every start recompiled, ~140 s on 2 cores; installed through
engines.patches, which checks the versions), and vLLM's many load errors mapped to one line that
says what to change.
"""

from __future__ import annotations

from typing import Any

from prefixopt.config import EngineConfig


def mend_aot_cache_load() -> None:
    """Make vLLM's compile cache load on CPU. vLLM 0.32 + torch 2.13: the CPU build compiles
    with torch's own Inductor backend, whose AOT artifact deserialises to a plain function;
    vLLM then calls `.finalize_loading(...)` on it (a method of its own backend's artifact
    only), fails with "'function' object has no attribute 'finalize_loading'" and compiles
    again on every start (~140 s here). Giving that function a no-op `finalize_loading` lets
    the saved artifact load (nothing is left to finalise for Inductor's artifact). Idempotent;
    does nothing when torch's class is not there. Apply it with patches.apply("aot_cache_load")."""
    try:
        from torch._dynamo import aot_compile_types as act
    except ImportError:
        return
    cls = getattr(act, "BundledAOTAutogradSerializableCallable", None)
    orig = getattr(cls, "deserialize_compile_artifacts", None)
    if orig is None or getattr(orig, "_prefixopt_mended", False):
        return
    orig_fn = orig.__func__

    def deserialize_compile_artifacts(klass: Any, data: bytes) -> Any:
        fn = orig_fn(klass, data)
        if not hasattr(fn, "finalize_loading"):
            try:
                fn.finalize_loading = lambda vllm_config: None
            except (AttributeError, TypeError):
                pass
        return fn

    deserialize_compile_artifacts._prefixopt_mended = True  # type: ignore[attr-defined]
    cls.deserialize_compile_artifacts = classmethod(deserialize_compile_artifacts)


def load_error(cfg: EngineConfig, model: str, exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = text.lower()
    if "out of memory" in low or "memory" in low and ("kv cache" in low or "not enough" in low):
        return (
            f"model {model} does not fit ({text}); lower --max-model-len, raise "
            "--gpu-memory-utilization, use --load-in-4bit or a smaller model"
        )
    if "max_model_len" in low or "max model len" in low:
        return f"model {model}: {text}; lower --max-model-len"
    if any(s in low for s in ("not found", "does not appear", "repository", "offline", "connect")):
        return f"cannot load model {model!r} ({text}); check the HF id or pass a local folder"
    return f"cannot build the vLLM engine for {model} ({type(exc).__name__}: {text})"
