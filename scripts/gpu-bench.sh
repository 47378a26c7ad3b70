#!/usr/bin/env bash
# GPU benchmark, run on a CUDA machine in one go (the machine is bare each
# time): build libggml-cuda.so, generate the Qwen3-4B-shaped F16 model, run
# the bench at 1, 4, 16 and 64 sequences. Needs bin/qwen3-server,
# build/_ggml-src (make cuda-src) and testdata/cache/tokenizer from the
# development machine. Results go to $OUT (default: artifacts/gpu).
set -euo pipefail
OUT=${OUT:-artifacts/gpu}
. "$(dirname "$0")/gpu-setup.sh"
# bench exits non-zero when no CUDA backend loaded (no silent CPU run).
bin/qwen3-server bench --model "$MODEL" --parallel "${PARALLEL:-1,4,16,64}" --out "$OUT/bench.md" "$@" 2>&1 | tee "$OUT/bench.log"
