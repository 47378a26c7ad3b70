#!/usr/bin/env bash
# The binary's one ggml (exported with -rdynamic) with both kinds of
# run-time backends loaded beside it on a CUDA machine: the CPU variants of
# `make cpu` (carried in lib/ollama) and the libggml-cuda.so built here.
# Checks that the GPU is used, the CPU variant is chosen for the CPU side,
# the LoRA logit tests still pass, and serve answers and exits 0 on SIGTERM.
# Results go to $OUT. Run after scripts/pack-gpu-carry.sh, with carry
# ["build/carry", "lib/ollama"].
set -euo pipefail
OUT=${OUT:-artifacts/gpu-backends}
. "$(dirname "$0")/gpu-setup.sh"
[ -f lib/ollama/libggml-cuda.so ] || { echo "no libggml-cuda.so: the CUDA build failed"; exit 1; }
ls lib/ollama/libggml-cpu-*.so >/dev/null || { echo "no CPU variants in lib/ollama (carry lib/ollama)"; exit 1; }
mkdir -p testdata/models
[ -f testdata/models/tiny-random.gguf ] || bin/qwen3-server model random --shape tiny --tokenizer testdata/cache/tokenizer --out testdata/models/tiny-random.gguf
bin/scheduler.test -test.run '^(TestCPUVariantInUse|TestLoRAStepsMatchMerged|TestLoRAOneTokenMatchesTwoOnQuantizedBases|TestCloseAndReopenWithVariants|TestLogprobsMatchRawLogits|TestPromptOnly)$' -test.v > "$OUT/test.log" 2>&1 \
	|| { grep -E 'FAIL|--- |panic|SIGSEGV' "$OUT/test.log"; tail -40 "$OUT/test.log"; exit 1; }
grep -E '^(---|ok|PASS)|CPU backend:|steps:' "$OUT/test.log"
port=18080
bin/qwen3-server serve --model "$MODEL" --addr 127.0.0.1:$port --ctx-size 1024 --parallel 2 > "$OUT/serve.log" 2>&1 &
pid=$!
for i in $(seq 1 120); do curl -fsS 127.0.0.1:$port/health >/dev/null 2>&1 && break; sleep 1; done
curl -fsS 127.0.0.1:$port/v1/completions -H 'Content-Type: application/json' -d '{"prompt":"Hello","max_tokens":16}' > "$OUT/completion.json"
kill -TERM $pid; rc=0; wait $pid || rc=$?
grep -E 'loaded (CPU|CUDA) backend|offloaded|cpu_backend|backend' "$OUT/serve.log" | head -8
echo "serve exit status after SIGTERM: $rc"; cat "$OUT/completion.json"; echo
[ $rc -eq 0 ] && grep -q 'offloaded' "$OUT/serve.log"
