#!/usr/bin/env bash
# The fused LoRA path of our ggml-cuda build
# (engine/llamacpp/patches/ggml-cuda-lora-fusion.patch), checked and measured
# on a CUDA machine in one go: build libggml-cuda.so; run the LoRA logit
# tests (TestLoRAStepsMatchMerged: against the merged model on an F32 base;
# TestLoRAOneTokenMatchesTwoOnQuantizedBases: one token per step against two
# on F32, Q8_0 and Q4_0 bases) three ways (fused with the products started
# early by programmatic dependent launch, the default; fused without it,
# GGML_CUDA_LORA_PDL=0; unfused, GGML_CUDA_DISABLE_LORA_FUSION=1); then
# `bench --adapters` on the F16 model the default way at 1 and 16 sequences
# and the other two at one sequence, and on the model quantized to $QUANT
# (default Q4_K_M) the three ways at one sequence. Results go to $OUT.
set -euo pipefail
OUT=${OUT:-artifacts/gpu-lora}
. "$(dirname "$0")/gpu-setup.sh"
[ -f lib/ollama/libggml-cuda.so ] || { echo "no libggml-cuda.so: the CUDA build failed"; exit 1; }
mode_env() {
	case $1 in
	fused) echo QWEN3_CUDA_LORA_FUSION=1 GGML_CUDA_LORA_FUSION_LOG=1 ;;
	nopdl) echo QWEN3_CUDA_LORA_FUSION=1 GGML_CUDA_LORA_FUSION_LOG=1 GGML_CUDA_LORA_PDL=0 ;;
	unfused) echo GGML_CUDA_LORA_FUSION_LOG=1 GGML_CUDA_DISABLE_LORA_FUSION=1 ;;
	esac
}
for mode in fused nopdl unfused; do
	env $(mode_env $mode) bin/scheduler.test -test.run '^(TestLoRAStepsMatchMerged|TestLoRAOneTokenMatchesTwoOnQuantizedBases)$' -test.v > "$OUT/test-$mode.log" 2>&1 || { grep -E 'steps:|FAIL|--- ' "$OUT/test-$mode.log"; tail -30 "$OUT/test-$mode.log"; exit 1; }
	echo "$mode:"; grep -E 'steps:|GPUs:|^--- ' "$OUT/test-$mode.log" | sed 's/^ */  /' | sort -u
	grep 'LoRA fusion:\|not fused' "$OUT/test-$mode.log" | sed 's/try_fuse_lora: [^ ]* /try_fuse_lora: * /' | sort | uniq -c | sort -rn | head -8 || true
done
# Fused must have fused something, or the check above proved nothing.
grep -q 'LoRA fusion: [1-9]' "$OUT/test-fused.log" || echo "WARNING: the fused run fused nothing"
EXTRA=("$@") # passed on to bench, e.g. --adapter-dtype F16
bench() { # name model levels mode
	env $(mode_env $4) bin/qwen3-server bench --model "$2" --adapters "${ADAPTERS:-4}" --adapter-levels $3 --out "$OUT/bench-adapters-$1.md" "${EXTRA[@]}" > "$OUT/bench-$1.log" 2>&1 || { tail -30 "$OUT/bench-$1.log"; exit 1; }
	echo "== $1"
	grep 'LoRA fusion:\|not fused' "$OUT/bench-$1.log" | sed 's/try_fuse_lora: [^ ]* /try_fuse_lora: * /' | sort | uniq -c | sort -rn | head -8 || true
	grep -E '^N=' "$OUT/bench-$1.log" | sed 's/per decode call.*decode-only/decode-only/' || true
	cat "$OUT/bench-adapters-$1.md"
}
for mode in fused nopdl unfused; do
	levels=1
	[ $mode = fused ] && levels=1,16
	bench $mode "$MODEL" $levels $mode
done
QUANT=${QUANT:-Q4_K_M}
QMODEL=${MODEL%.gguf}-${QUANT}.gguf
start=$(date +%s)
[ -f "$QMODEL" ] || bin/qwen3-server quantize --in "$MODEL" --out "$QMODEL" --type "$QUANT" > "$OUT/quantize.log" 2>&1 || { tail -20 "$OUT/quantize.log"; exit 1; }
echo "quantized to $QUANT in $(( $(date +%s) - start )) s"
for mode in fused nopdl unfused; do
	bench "$QUANT-$mode" "$QMODEL" 1 $mode
done
