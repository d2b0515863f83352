#!/usr/bin/env bash
# The demo on the bundled data (data/demo), with the tiny preset: the whole pipeline of
# pipelines/demo.toml — learn the degradation of the real web JPEGs, make realistic pairs,
# train ESRGAN (PSNR then GAN phase) and the bicubic and blind baselines, interpolate, upscale the
# held-out Set5 test pairs, evaluate —
# then write demo-out/report.html. Minutes on a 2-core CPU; run again, every stage is cached.
set -euo pipefail
cd "$(dirname "$0")/.."
SRPIPE=${SRPIPE:-.venv/bin/srpipe}
OUT=${OUT:-demo-out}
"$SRPIPE" run pipelines/demo.toml --out "$OUT" --cache "$OUT/cache"
