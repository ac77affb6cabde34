#!/usr/bin/env bash
# Run the test suite (sets up the venv first when needed). Extra args go to pytest:
#   scripts/test.sh -m "not engine"     # skip the real-engine tests (~2 min less)
#   scripts/test.sh tests/test_people.py
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${PREFIXOPT_VENV:-$ROOT/.venv}"

if ! compgen -G "$VENV/.prefixopt-setup-*" >/dev/null \
        || [[ ! -f data/models/smollm2-135m-instruct/config.json ]]; then
    bash scripts/setup.sh
fi

# vLLM's CPU build: use every core for compute, and a 2 GiB KV cache.
export VLLM_CPU_NUM_OF_RESERVED_CPU="${VLLM_CPU_NUM_OF_RESERVED_CPU:-0}"
export VLLM_CPU_KVCACHE_SPACE="${VLLM_CPU_KVCACHE_SPACE:-2}"

set +e
"$VENV/bin/pytest" -q -ra "$@"
code=$?
set -e
if [[ "$code" == 5 ]]; then
    echo "test.sh: pytest collected no tests (exit 5); treating that as a failure" >&2
    exit 1
fi
exit "$code"
