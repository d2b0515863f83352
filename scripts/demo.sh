#!/usr/bin/env bash
# The demo on the bundled data (data/demo): learn the degradation of the real web JPEGs with the
# tiny preset, then turn the held-out Set5 HR photos into realistic LR/HR pairs.
# Runs on a 2-core CPU in a few minutes; rerunning resumes/finishes at once.
set -euo pipefail
cd "$(dirname "$0")/.."
SRPIPE=${SRPIPE:-.venv/bin/srpipe}
OUT=${OUT:-demo-out}
"$SRPIPE" degrade-train --preset tiny --hr data/demo/hr --lr data/demo/real_lr --out "$OUT/degrade" --sample-every 100
"$SRPIPE" make-pairs --model "$OUT/degrade" --hr data/demo/test_hr --out "$OUT/pairs"
echo "demo done: generator $OUT/degrade/generator.safetensors, sample grids $OUT/degrade/samples/, pairs $OUT/pairs/"
