#!/usr/bin/env bash
# CPU speed on this machine, in one run (BENCHMARKS.md, "CPU"): the `small`
# model (about 100M parameters, F16), ~130-token prompts, 32 generated
# tokens, streaming HTTP clients at 1, 4 and 16 streams; first with the CPU
# backend variants of lib/ollama (what `make run` serves with), then with
# the binary's built-in baseline code (a copy of the binary with no
# lib/ollama beside it). `bench` measures the memory read bandwidth and the
# memory floor in the same process. Results go to $OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-artifacts/cpu-bench}
mkdir -p "$OUT"
make -s build cpu
MODEL=testdata/models/small-random.gguf
[ -f "$MODEL" ] || bin/qwen3-server model random --shape small --tokenizer testdata/cache/tokenizer --out "$MODEL"
args=(bench --http --model "$MODEL" --parallel "${LEVELS:-1,4,16}" --prompt-len 130 --gen-len 32 --batch-size 512)
bin/qwen3-server "${args[@]}" --out "$OUT/variants.md" > /dev/null 2> "$OUT/variants.log"
if [ -z "${SKIP_BUILTIN:-}" ]; then
	tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
	mkdir -p "$tmp/bin" && cp bin/qwen3-server "$tmp/bin/"
	"$tmp/bin/qwen3-server" "${args[@]}" --out "$OUT/builtin.md" > /dev/null 2> "$OUT/builtin.log"
fi
cat "$OUT"/*.md
