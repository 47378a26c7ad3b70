#!/usr/bin/env bash
# CUDA graphs for batches of several tokens (up to 32 by default in our
# ggml-cuda patch, GGML_CUDA_GRAPH_MAX_BATCH; upstream keeps graphs for one
# token only, GGML_CUDA_GRAPH_MAX_BATCH=1), in one call
# after scripts/pack-gpu-carry.sh: the mixed-adapter logit tests and the
# scheduler's adapter test with graphs up to 32 tokens, then the 16-stream
# adapter table with and without them, side by side. Results in $OUT.
set -uo pipefail
OUT=${OUT:-artifacts/gpu-graphs}
. "$(dirname "$0")/gpu-setup.sh"
GGML_CUDA_GRAPH_MAX_BATCH=32 QWEN3_TEST_GPU_LAYERS=-1 timeout 120 bin/scheduler.test -test.run '^(TestMixedAdaptersOneDecodeEqualAlone|TestMixedBaseOnlyEqualAlone|TestAdaptersLoadedAndUnloadedBetweenSteps|TestSchedulerMixesAdaptersInOneBatch|TestConcurrentAdaptersMatchAlone)$' -test.v > "$OUT/tests.log" 2>&1
echo "== tests with graphs up to 32 tokens: exit $?"
grep -E 'max \|logit|^--- |^(ok|FAIL|PASS)$|SIGSEGV|panic:|GGML_ASSERT|CUDA error|differ by' "$OUT/tests.log" | head -20
b() { timeout 150 bin/qwen3-server bench --model "$MODEL" --gpu-layers -1 --prompt-len 130 --gen-len 64 --adapter-dtype F16 --adapters 16 --adapter-levels 16 --parallel 16 "$@" 2>> "$OUT/bench.log"; }
GGML_CUDA_GRAPH_MAX_BATCH=32 b --out "$OUT/graphs.md" > /dev/null
echo "== 16 streams, graphs up to 32 tokens: exit $?"; cat "$OUT/graphs.md" 2>/dev/null
GGML_CUDA_GRAPH_MAX_BATCH=1 b --out "$OUT/nographs.md" > /dev/null
echo "== 16 streams, upstream (graphs for one token): exit $?"; cat "$OUT/nographs.md" 2>/dev/null
grep -E "^N=16 adapters" "$OUT/bench.log"
