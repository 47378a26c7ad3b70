#!/usr/bin/env bash
# Issue 14 on a CUDA machine, in one call (after scripts/pack-gpu-carry.sh):
# the per-sequence (mixed) adapter path on the GPU and the fused LoRA paths.
# 1. The mixed-path logit tests with every layer on the GPU (both layouts),
#    and the same batch without adapters (what batching alone moves there);
# 2. the scheduler's adapter tests five times each (with the fused CUDA LoRA
#    path, the default: it used to give wrong tokens now and then with
#    several adapted requests at once), and the adapter churn test;
# 3. `bench --adapters` at 1 and 16 streams on the Qwen3-4B-shaped F16 model
#    (rank 16, all seven projections), with the 16-stream table; the same
#    table without the fused B·t epilogue (GGML_CUDA_DISABLE_LORA_B_FUSION=1) and, at one stream,
#    without the single-token fusion (GGML_CUDA_DISABLE_LORA_FUSION=1).
# FULL=0 leaves out step 2 and the churn test; REUSE=1 adds the 16-stream
# table without graph reuse (LLAMA_GRAPH_REUSE_DISABLE=1) and with it again.
# FUSION=0 runs all of it with the single-token fusion off
# (QWEN3_CUDA_LORA_FUSION=0). Results in $OUT.
set -uo pipefail
OUT=${OUT:-artifacts/gpu-mixed}
. "$(dirname "$0")/gpu-setup.sh"
[ "${FUSION:-1}" = 0 ] && export QWEN3_CUDA_LORA_FUSION=0
export QWEN3_TEST_GPU_LAYERS=-1
# the tests check every replayed CUDA graph against its ggml graph (not the bench: it costs host time)
export GGML_CUDA_GRAPH_HINT_VERIFY=1
timeout 180 bin/scheduler.test -test.run '^(TestMixedBaseOnlyEqualAlone|TestMixedAdaptersOneDecodeEqualAlone|TestMixedAdaptersDenseLayout|TestMixedF16AdaptersEqualAlone|TestMixedAdaptersOnF16Base|TestMixedAdaptersShortRanks|TestMixedAdaptersDeepModel|TestMixedAdaptersWideBatchEqualAlone|TestAdaptersLoadedAndUnloadedBetweenSteps|TestSeqSwitchesAdapterSetsBetweenRequests)$' -test.v > "$OUT/mixed.log" 2>&1
echo "== mixed path on the GPU: exit $?"
grep -E 'max \|logit|^\s*--- |^(ok|FAIL|PASS)$|SIGSEGV|panic:|GGML_ASSERT|CUDA error|differ by' "$OUT/mixed.log" | head -40
if [ "${FULL:-1}" = 1 ]; then # FULL=0: without step 2 and the churn test (a shorter call)
timeout 200 bin/scheduler.test -test.count 5 -test.run '^(TestConcurrentAdaptersMatchAlone|TestSchedulerMixesAdaptersInOneBatch|TestAdapterSwitchOnSameShapeBatch|TestAdapterChangesOutputScaleZeroIsBase)$' -test.v > "$OUT/fused.log" 2>&1
echo "== scheduler adapter tests x5: exit $?"
grep -E '^--- |^(ok|FAIL|PASS)$|SIGSEGV|panic:|GGML_ASSERT|diverges' "$OUT/fused.log" | sed -E 's/ \([0-9.]+s\)//' | sort | uniq -c | head -20
unset QWEN3_TEST_GPU_LAYERS
timeout 120 bin/scheduler.test -test.run '^TestGPUAdapterChurnFreesMemory$' -test.v > "$OUT/churn.log" 2>&1
echo "== churn: exit $?"
grep -E 'loads\+unloads|engine closed|gap|^--- |^(ok|FAIL|PASS)$|SIGSEGV|panic:|GGML_ASSERT' "$OUT/churn.log" | head -10
fi
unset GGML_CUDA_GRAPH_HINT_VERIFY
b() { timeout 200 bin/qwen3-server bench --model "$MODEL" --gpu-layers -1 --prompt-len 130 --gen-len 64 --adapter-dtype F16 "$@" 2>> "$OUT/bench.log"; }
b --adapters 16 --adapter-levels 1,16 --parallel 1,16 --out "$OUT/adapters.md" > /dev/null
echo "== bench --adapters: exit $?"; cat "$OUT/adapters.md" 2>/dev/null
if [ "${REUSE:-0}" = 1 ]; then
	# REUSE=1: the 16-stream table again without graph reuse
	# (LLAMA_GRAPH_REUSE_DISABLE=1: what every multi-sequence step did before
	# the KQ-mask check of llama-multilora.patch), then with it once more.
	LLAMA_GRAPH_REUSE_DISABLE=1 b --adapters 16 --adapter-levels 16 --parallel 16 --out "$OUT/adapters-noreuse.md" > /dev/null
	echo "== without graph reuse: exit $?"; grep -E '^\| ' "$OUT/adapters-noreuse.md"
	b --adapters 16 --adapter-levels 16 --parallel 16 --out "$OUT/adapters-reuse-2.md" > /dev/null
	echo "== with graph reuse, again: exit $?"; grep -E '^\| ' "$OUT/adapters-reuse-2.md"
fi
[ "${COMPARE:-1}" = 1 ] || exit 0 # COMPARE=0: without the two comparisons below
GGML_CUDA_DISABLE_LORA_B_FUSION=1 b --adapters 16 --adapter-levels 16 --parallel 16 --out "$OUT/adapters-nob.md" > /dev/null
echo "== the same without the fused B epilogue: exit $?"; cat "$OUT/adapters-nob.md" 2>/dev/null
GGML_CUDA_DISABLE_LORA_FUSION=1 b --adapters 1 --adapter-levels 1 --parallel 1 --out "$OUT/adapters-1-unfused.md" > /dev/null
echo "== one stream without the single-token fusion: exit $?"; cat "$OUT/adapters-1-unfused.md" 2>/dev/null
