#!/usr/bin/env bash
# LoRA adapter benchmark on a CUDA machine, in one go (the machine is bare
# each time): unpack what scripts/pack-gpu-carry.sh packed, build
# libggml-cuda.so, generate the Qwen3-4B-shaped F16 model, then run
# `qwen3-server bench --adapters N`. Results go to $OUT.
set -euo pipefail
OUT=${OUT:-artifacts/gpu-adapters}
mkdir -p "$OUT"
if [ -d build/carry ]; then
	mkdir -p bin build testdata/cache
	[ -f bin/qwen3-server ] || xz -dc build/carry/qwen3-server.xz > bin/qwen3-server
	[ -d build/_ggml-src ] || tar -xJf build/carry/ggml-src.tar.xz -C build
	[ -d testdata/cache/tokenizer ] || tar -xJf build/carry/tokenizer.tar.xz -C testdata/cache
	chmod +x bin/qwen3-server
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
nproc >> "$OUT/gpu.txt"
start=$(date +%s)
make cuda CUDA_ARCH="${CUDA_ARCH:-90}" 2>&1 | tail -1
echo "cuda build: $(( $(date +%s) - start )) s" | tee -a "$OUT/gpu.txt"
MODEL=${MODEL:-/tmp/qwen3-4b-f16.gguf}
[ -f "$MODEL" ] || bin/qwen3-server model random --shape qwen3-4b --tokenizer testdata/cache/tokenizer --out "$MODEL"
# bench exits non-zero when no CUDA backend loaded (no silent CPU run).
bin/qwen3-server bench --model "$MODEL" --adapters "${ADAPTERS:-4}" --out "$OUT/bench-adapters.md" "$@" 2>&1 | tee "$OUT/bench-adapters.log"
