#!/usr/bin/env bash
# The main job on the embedded default (SmolLM2-135M-Instruct, ARC-Easy, cloze scoring):
# a short REINFORCE run over the 10,000 people, a held-out evaluation of what it learned
# against no prefix, random people and hand-written prompts, and the report. Sets up the
# venv first when needed. About 7 minutes on 2 CPU cores once set up (measured 396 s; each
# command starts its own vLLM engine, about a minute each).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${PREFIXOPT_VENV:-$ROOT/.venv}"

if ! compgen -G "$VENV/.prefixopt-setup-*" >/dev/null; then
    bash scripts/setup.sh
fi
export VLLM_CPU_NUM_OF_RESERVED_CPU="${VLLM_CPU_NUM_OF_RESERVED_CPU:-0}"
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-2}"

RUN_NAME="quickstart-$(date +%Y%m%d-%H%M%S)"
RUN="runs/$RUN_NAME"
# 6 iterations x 8 people x 16 questions: a demonstration, far too short to learn anything
# (docs/learner_study.md: the defaults need ~50,000 question evaluations).
"$VENV/bin/prefixopt" train --run-name "$RUN_NAME" --iterations 6 \
    --samples-per-iteration 8 --batch-size 16
# 200 held-out ARC-Easy test questions: the learned top 3, no prefix, 3 random people and the
# hand-written prompts, in one batched call, with intervals and paired tests.
"$VENV/bin/prefixopt" eval "$RUN" --num-questions 200 --top-k 3 --num-random 3
"$VENV/bin/prefixopt" report "$RUN"
echo "quickstart: run directory $RUN"
echo "quickstart: report $RUN/report/report.md"
