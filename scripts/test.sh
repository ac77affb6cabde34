#!/usr/bin/env bash
# Run the test suite (sets up the venv first when needed). Extra args go to pytest:
#   scripts/test.sh -m "not engine"     # skip the real-engine tests (~2 min less)
#   scripts/test.sh tests/test_people.py
set -euo pipefail

# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# the machine kind first (device.cpu_flags, the flags the dtype choice reads): a failure that
# only one CPU kind shows is then traceable
"$VENV/bin/python" - <<'PY'
import os
from prefixopt import device
kind = sorted(device.cpu_flags() & {"avx2", "avx512f", *device.BF16_CPU_FLAGS})
print(f"test.sh: {os.cpu_count()} cores, CPU flags: {' '.join(kind) or 'none of avx2/avx512'}")
PY

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
