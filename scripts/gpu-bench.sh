#!/usr/bin/env bash
# GPU benchmark, run on a CUDA machine in one go (the machine is bare each
# time): build libggml-cuda.so, generate the Qwen3-4B-shaped F16 model, run
# the bench at 1, 4, 16 and 64 sequences. Needs bin/qwen3-server,
# build/_ggml-src (make cuda-src) and testdata/cache/tokenizer from the
# development machine. Results go to $OUT (default: artifacts/gpu).
set -euo pipefail
OUT=${OUT:-artifacts/gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
nproc >> "$OUT/gpu.txt"
start=$(date +%s)
make cuda CUDA_ARCH="${CUDA_ARCH:-90}" 2>&1 | tail -3
echo "cuda build: $(( $(date +%s) - start )) s" | tee -a "$OUT/gpu.txt"
MODEL=${MODEL:-/tmp/qwen3-4b-f16.gguf}
[ -f "$MODEL" ] || bin/qwen3-server model random --shape qwen3-4b --tokenizer testdata/cache/tokenizer --out "$MODEL"
# bench exits non-zero when no CUDA backend loaded (no silent CPU run).
bin/qwen3-server bench --model "$MODEL" --parallel "${PARALLEL:-1,4,16,64}" --out "$OUT/bench.md" "$@" 2>&1 | tee "$OUT/bench.log"
