#!/usr/bin/env bash
# The main job on the embedded default (SmolLM2-135M-Instruct, ARC-Easy, cloze scoring):
# a short REINFORCE run over the 10,000 people. Sets up the venv first when needed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${PREFIXOPT_VENV:-$ROOT/.venv}"

if ! compgen -G "$VENV/.prefixopt-setup-*" >/dev/null || [[ ! -f notable_people_10k.csv ]]; then
    bash scripts/setup.sh
fi
export VLLM_CPU_NUM_OF_RESERVED_CPU="${VLLM_CPU_NUM_OF_RESERVED_CPU:-0}"
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-2}"

"$VENV/bin/prefixopt" train --iterations 5 --samples-per-iteration 8 --batch-size 16
RUN="$(ls -td runs/*/ | head -1)"
# TODO(lead): enable once eval/report exist:
# "$VENV/bin/prefixopt" eval "$RUN" --num-questions 200
# "$VENV/bin/prefixopt" report "$RUN"
echo "quickstart: run directory $RUN"
