"""Issue 11's parity target: the same ARC-Easy test questions, no prefix plus 3 people, scored
in-process and through a vLLM server (`prefixopt serve`), cloze and letter; prints how many
predictions agree and the largest log-prob difference. Start the server first:

    .venv/bin/prefixopt serve --port 8000 &
    .venv/bin/python scripts/server_parity.py --base-url http://127.0.0.1:8000/v1 -n 100
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from prefixopt.benchmarks import load_split
from prefixopt.config import EngineConfig
from prefixopt.engines.openai_engine import build_openai_engine
from prefixopt.engines.vllm_engine import build_engine
from prefixopt.ask.prompts import build_grid
from prefixopt.records import NO_PERSON
from prefixopt.ask.scoring import score

PREFIXES = [(NO_PERSON, None), (1, "You are Marie Curie."), (2, "You are Napoleon Bonaparte."),
            (3, "You are Confucius.")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", required=True)
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    questions = load_split("arc_easy", "test", data_dir=args.data_dir)[:args.n]
    remote = build_openai_engine(EngineConfig(kind="openai", base_url=args.base_url))
    local = build_engine(EngineConfig())
    out = {"questions": len(questions), "prefixes": len(PREFIXES), "dtype": local.dtype}
    for mode in ("cloze", "letter"):
        reqs = build_grid(local, PREFIXES, questions, scoring=mode)
        t = time.perf_counter()
        resp_l, ans_l = score(local, reqs, mode)
        local_s = time.perf_counter() - t
        t = time.perf_counter()
        resp_r, ans_r = score(remote, reqs, mode)
        remote_s = time.perf_counter() - t
        diff = max(float(np.max(np.abs(np.subtract(a.logprobs, b.logprobs))))
                   for a, b in zip(resp_l, resp_r, strict=True))
        out[mode] = {"prompts": len(reqs),
                     "identical_predictions": sum(a.pred == b.pred for a, b in
                                                  zip(ans_l, ans_r, strict=True)),
                     "max_abs_logprob_diff": diff, "in_process_s": local_s,
                     "server_s": remote_s}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
