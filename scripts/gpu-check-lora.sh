#!/usr/bin/env bash
# The fused LoRA path of our ggml-cuda build
# (engine/llamacpp/patches/ggml-cuda-lora-fusion.patch), checked and measured
# on a CUDA machine in one go: build libggml-cuda.so; run
# TestLoRAStepsMatchMerged three ways (fused with the products started early
# by programmatic dependent launch, the default; fused without it,
# GGML_CUDA_LORA_PDL=0; unfused, GGML_CUDA_DISABLE_LORA_FUSION=1); then
# `bench --adapters` the default way at 1 and 16 sequences and the other two
# at one sequence. Results go to $OUT.
set -euo pipefail
OUT=${OUT:-artifacts/gpu-lora}
. "$(dirname "$0")/gpu-setup.sh"
[ -f lib/ollama/libggml-cuda.so ] || { echo "no libggml-cuda.so: the CUDA build failed"; exit 1; }
mode_env() {
	case $1 in
	fused) echo GGML_CUDA_LORA_FUSION_LOG=1 ;;
	nopdl) echo GGML_CUDA_LORA_FUSION_LOG=1 GGML_CUDA_LORA_PDL=0 ;;
	unfused) echo GGML_CUDA_LORA_FUSION_LOG=1 GGML_CUDA_DISABLE_LORA_FUSION=1 ;;
	esac
}
for mode in fused nopdl unfused; do
	env $(mode_env $mode) bin/scheduler.test -test.run '^TestLoRAStepsMatchMerged$' -test.v > "$OUT/test-$mode.log" 2>&1 || { tail -30 "$OUT/test-$mode.log"; exit 1; }
	echo "$mode: $(grep -E 'steps:|GPUs:' "$OUT/test-$mode.log" | sed 's/^ *//' | tr '\n' ' ')"
	grep 'LoRA fusion:\|not fused' "$OUT/test-$mode.log" | sed 's/try_fuse_lora: [^ ]* /try_fuse_lora: * /' | sort | uniq -c | sort -rn | head -8 || true
done
# Fused must have fused something, or the check above proved nothing.
grep -q 'LoRA fusion: [1-9]' "$OUT/test-fused.log" || echo "WARNING: the fused run fused nothing"
for mode in fused nopdl unfused; do
	levels=1
	[ $mode = fused ] && levels=1,16
	env $(mode_env $mode) bin/qwen3-server bench --model "$MODEL" --adapters "${ADAPTERS:-4}" --adapter-levels $levels --out "$OUT/bench-adapters-$mode.md" "$@" > "$OUT/bench-$mode.log" 2>&1 || { tail -30 "$OUT/bench-$mode.log"; exit 1; }
	echo "== $mode"
	grep 'LoRA fusion:\|not fused' "$OUT/bench-$mode.log" | sed 's/try_fuse_lora: [^ ]* /try_fuse_lora: * /' | sort | uniq -c | sort -rn | head -8 || true
	grep -E '^N=' "$OUT/bench-$mode.log" | sed 's/per decode call.*decode-only/decode-only/' || true
	cat "$OUT/bench-adapters-$mode.md"
done
