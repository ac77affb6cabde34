#!/usr/bin/env bash
# The main job on the embedded default (SmolLM2-135M-Instruct, ARC-Easy, cloze scoring):
# a short REINFORCE run over the 10,000 people, a held-out evaluation of what it learned
# against no prefix, random people and hand-written prompts, and the report. Sets up the
# venv first when needed. `prefixopt run` does all three in one process on one engine; see
# docs/speed.md "Machines" for its measured time on each CPU kind.
set -euo pipefail

# shellcheck source=scripts/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"

RUN_NAME="quickstart-$(date +%Y%m%d-%H%M%S)"
# ONE process, ONE engine start: train 4 iterations x 8 people x 8 questions (a demonstration of
# the pipeline, far too short to learn anything: docs/learner_study.md says the defaults need
# ~50,000 question evaluations), then 60 held-out ARC-Easy test questions for the learned top 2,
# no prefix, 2 random people and the hand-written prompts in one batched call, then the report.
# Sized to finish within 5 minutes on a 2-core CPU without bf16 (docs/speed.md "Machines").
# A killed quickstart continues with: prefixopt run --resume runs/<name> (same --eval-* options)
"$VENV/bin/prefixopt" run --run-name "$RUN_NAME" --iterations 4 \
    --samples-per-iteration 8 --batch-size 8 \
    --eval-num-questions 60 --eval-top-k 2 --eval-num-random 2
echo "quickstart: run directory runs/$RUN_NAME"
echo "quickstart: report runs/$RUN_NAME/report/report.md"
