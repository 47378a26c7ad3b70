#!/usr/bin/env bash
# Packs what a GPU run needs into build/carry (xz), small enough for the
# device tool's 64 MiB carry limit: bin/qwen3-server, the engine's test
# binary, the (patched) ggml sources, the tokenizer files, and optionally an
# ollama binary ($OLLAMA_BIN).
set -euo pipefail
cd "$(dirname "$0")/.."
# The go commands below need build/ollama-src (go.mod's replace: our
# patched llama.cpp) and .deps/include: make deps makes both.
make -s deps
rm -rf build/carry && mkdir -p build/carry
xz -T0 -6 -c bin/qwen3-server > build/carry/qwen3-server.xz
# The engine tests as a binary, for scripts/gpu-check-lora.sh.
CGO_CPPFLAGS=-I$PWD/.deps/include go test -c -ldflags "-s -w" -o build/scheduler.test ./engine/scheduler
xz -T0 -6 -c build/scheduler.test > build/carry/scheduler.test.xz
# The eval benchmark (tools/eval, BenchmarkEvalVsDecode), for scripts/gpu-bench-eval-batch.sh.
CGO_CPPFLAGS=-I$PWD/.deps/include go test -c -ldflags "-s -w" -o build/eval.test ./tools/eval
xz -T0 -6 -c build/eval.test > build/carry/eval.test.xz
tar -C build -cJf build/carry/ggml-src.tar.xz _ggml-src
tar -C testdata/cache -cJf build/carry/tokenizer.tar.xz tokenizer
if [ -n "${OLLAMA_BIN:-}" ]; then xz -T0 -6 -c "$OLLAMA_BIN" > build/carry/ollama.xz; fi
du -sh build/carry/*
