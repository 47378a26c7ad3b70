#!/usr/bin/env bash
# The fused LoRA path of our ggml-cuda build
# (engine/llamacpp/patches/ggml-cuda-lora-fusion.patch), checked and measured
# on a CUDA machine in one go: build libggml-cuda.so, run
# TestLoRAStepsMatchMerged fused and unfused (GGML_CUDA_DISABLE_LORA_FUSION=1),
# then `bench --adapters` both ways. Results go to $OUT.
set -euo pipefail
OUT=${OUT:-artifacts/gpu-lora}
. "$(dirname "$0")/gpu-setup.sh"
[ -f lib/ollama/libggml-cuda.so ] || { echo "no libggml-cuda.so: the CUDA build failed"; exit 1; }
for mode in fused unfused; do
	env=(GGML_CUDA_LORA_FUSION_LOG=1)
	[ $mode = unfused ] && env+=(GGML_CUDA_DISABLE_LORA_FUSION=1)
	env "${env[@]}" bin/scheduler.test -test.run '^TestLoRAStepsMatchMerged$' -test.v > "$OUT/test-$mode.log" 2>&1 || { tail -30 "$OUT/test-$mode.log"; exit 1; }
	echo "$mode: $(grep -E 'steps:|GPUs:' "$OUT/test-$mode.log" | sed 's/^ *//' | tr '\n' ' ')"
	grep 'LoRA fusion:\|not fused' "$OUT/test-$mode.log" | sed 's/try_fuse_lora: [^ ]* /try_fuse_lora: * /' | sort | uniq -c | sort -rn | head -8 || true
done
# Fused must have fused something, or the check above proved nothing.
grep -q 'LoRA fusion: [1-9]' "$OUT/test-fused.log" || echo "WARNING: the fused run fused nothing"
for mode in fused unfused; do
	env=(GGML_CUDA_LORA_FUSION_LOG=1)
	[ $mode = unfused ] && env+=(GGML_CUDA_DISABLE_LORA_FUSION=1)
	env "${env[@]}" bin/qwen3-server bench --model "$MODEL" --adapters "${ADAPTERS:-4}" --out "$OUT/bench-adapters-$mode.md" "$@" > "$OUT/bench-$mode.log" 2>&1 || { tail -30 "$OUT/bench-$mode.log"; exit 1; }
	echo "== $mode"
	grep 'LoRA fusion:\|not fused' "$OUT/bench-$mode.log" | sed 's/try_fuse_lora: [^ ]* /try_fuse_lora: * /' | sort | uniq -c | sort -rn | head -8 || true
	grep -E '^N=' "$OUT/bench-$mode.log" || true
	cat "$OUT/bench-adapters-$mode.md"
done
