"""RSS after every training iteration of a short real-engine run (and, with --trace, the Python
heap by tracemalloc): is a long run's memory growth Python objects or the native allocator?
Run it once plainly and once under LD_PRELOAD=<libtcmalloc_minimal.so.4> and compare
(docs/engine_speed.md, "Memory over a long run"). The lines land in OUT_DIR/probe/engine.log
(the engine's output goes there while it runs); OUT_DIR/probe is a normal run directory.
    python scripts/memory_probe.py OUT_DIR [--iterations 8] [--trace]
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

import prefixopt.learn.loop as loop
from prefixopt.cli import app


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--iterations", type=int, default=8)
    ap.add_argument("--trace", action="store_true", help="tracemalloc (slows vLLM's Python)")
    args = ap.parse_args()
    write = loop.runs.write_part

    def spy(run_dir, table, it, frame):  # after each iteration's answers: one line
        if table == "iterations":
            py = tracemalloc.get_traced_memory()[0] / 2**20 if args.trace else float("nan")
            print(f"{time.strftime('%H:%M:%S')} iteration {it:3d} rss {rss_mb():8.1f} MB "
                  f"python {py:8.1f} MB", flush=True)
        return write(run_dir, table, it, frame)

    loop.runs.write_part = spy
    if args.trace:
        tracemalloc.start()
    print(f"LD_PRELOAD={os.environ.get('LD_PRELOAD', '')}", flush=True)
    try:  # the flagship's benchmark and scoring, K=16 x B=16 (~60 s an iteration on 2 cores)
        app(["train", "--benchmark", "arc_easy", "--scoring", "cloze", "-k", "16", "-b", "16",
             "--iterations", str(args.iterations), "--output-dir", args.out_dir,
             "--run-name", "probe", "--json"], standalone_mode=False)
    except SystemExit:
        pass


if __name__ == "__main__":
    main()
