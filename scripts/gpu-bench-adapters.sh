#!/usr/bin/env bash
# LoRA adapter benchmark on a CUDA machine, in one go (the machine is bare
# each time): unpack what scripts/pack-gpu-carry.sh packed, build
# libggml-cuda.so, generate the Qwen3-4B-shaped F16 model, then run
# `qwen3-server bench --adapters N`. Results go to $OUT.
set -euo pipefail
OUT=${OUT:-artifacts/gpu-adapters}
. "$(dirname "$0")/gpu-setup.sh"
# bench exits non-zero when no CUDA backend loaded (no silent CPU run).
bin/qwen3-server bench --model "$MODEL" --adapters "${ADAPTERS:-4}" --out "$OUT/bench-adapters.md" "$@" 2>&1 | tee "$OUT/bench-adapters.log"
