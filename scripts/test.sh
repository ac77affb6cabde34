#!/usr/bin/env bash
# Run the test suite (sets up the venv first when needed). Extra args go to pytest:
#   scripts/test.sh -m "not engine"     # skip the real-engine tests (~2 min less)
#   scripts/test.sh tests/test_people.py
set -euo pipefail

# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# the machine kind first: a failure that only one CPU kind shows is then traceable
echo "test.sh: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
     "$(nproc) cores, flags: $(grep -o 'avx512_bf16\|avx512f\|avx2\|amx_bf16' /proc/cpuinfo \
     | sort -u | xargs)"

# lint first (pyproject.toml [tool.ruff]): a lint failure fails fast, before any test runs
"$VENV/bin/ruff" check prefixopt tests scripts

set +e
"$VENV/bin/pytest" -q -ra "$@"
code=$?
set -e
if [[ "$code" == 5 ]]; then
    echo "test.sh: pytest collected no tests (exit 5); treating that as a failure" >&2
    exit 1
fi
exit "$code"
