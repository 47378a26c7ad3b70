#!/usr/bin/env bash
# One call on a bare CUDA machine (after scripts/pack-gpu-carry.sh):
# issue 15's eval-vs-decode benchmark and/or issue 16's batch benchmark on
# the Qwen3-4B-shaped F16 model. WHAT=eval, batch or both (default both).
# Results go to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-artifacts/gpu-eval-batch}
source scripts/gpu-setup.sh
[ -f build/carry/eval.test.xz ] && [ ! -f bin/eval.test ] && xz -dc build/carry/eval.test.xz > bin/eval.test && chmod +x bin/eval.test
# A GPU run that silently fell back to the CPU would take an hour: stop.
# (bench refuses --gpu-layers -1 without a GPU backend)
bin/qwen3-server bench --model "$MODEL" --gpu-layers -1 --parallel 1 --prompt-len 16 --gen-len 4 > "$OUT/check.log" 2>&1 || { echo "no CUDA backend loaded"; tail -20 "$OUT/check.log"; exit 1; }
case "${WHAT:-both}" in eval|both)
	# 500 items x 2 models, 256 tokens each, 64 sequences at once.
	EVAL_BENCH_MODEL=$MODEL EVAL_BENCH_PARALLEL=${EVAL_PARALLEL:-64} EVAL_BENCH_ITEMS=500 EVAL_BENCH_TOKENS=256 \
		bin/eval.test -test.run '^$' -test.bench EvalVsDecode -test.benchtime 1x 2>&1 | tee "$OUT/eval.txt" | grep -E 'Benchmark|ok|FAIL' ;;
esac
case "${WHAT:-both}" in batch|both)
	bin/qwen3-server bench --batch --model "$MODEL" --gpu-layers -1 --parallel 16 --prompt-len 130 --gen-len 64 \
		--out "$OUT/batch.md" > /dev/null 2> "$OUT/batch.log"
	cat "$OUT/batch.md" ;;
esac
