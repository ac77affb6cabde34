# Sourced by quickstart.sh and test.sh: go to the repo root, pick the venv and set it up when
# it is missing (no stamp from scripts/setup.sh, or no prepared embedded model). vLLM's CPU
# settings (KV cache size, reserved CPUs) are set by prefixopt itself (engine.build_engine).
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${PREFIXOPT_VENV:-$ROOT/.venv}"
if ! compgen -G "$VENV/.prefixopt-setup-*" >/dev/null \
        || [[ ! -f data/models/smollm2-135m-instruct/config.json ]]; then
    bash scripts/setup.sh
fi
