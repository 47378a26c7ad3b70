#!/usr/bin/env bash
# Issue 14, item 3, on a CUDA machine (after scripts/pack-gpu-carry.sh):
# does freeing llama.cpp objects with the CUDA backend loaded still crash?
# Runs TestGPUAdapterChurnFreesMemory (1,000 adapter loads and unloads during
# 16 streams, then the context and model freed) with libggml-cuda.so as
# built, which also loads its libggml-base.so (two ggml copies in the
# process), and, if that fails, with the libggml-base dependency removed, as
# `make cpu` does for the CPU variants (one ggml: the binary's). Results go
# to $OUT.
set -uo pipefail
OUT=${OUT:-artifacts/gpu-teardown}
. "$(dirname "$0")/gpu-setup.sh"
[ -f lib/ollama/libggml-cuda.so ] || { echo "no libggml-cuda.so: the CUDA build failed"; exit 1; }
churn() { # name
	bin/scheduler.test -test.run '^TestGPUAdapterChurnFreesMemory$' -test.v > "$OUT/churn-$1.log" 2>&1
	local rc=$?
	echo "== $1: exit $rc"
	grep -E 'loads\+unloads|^--- |^(ok|FAIL|PASS)|SIGSEGV|panic|fatal' "$OUT/churn-$1.log" | head -20
	[ $rc = 0 ] || tail -40 "$OUT/churn-$1.log" > "$OUT/churn-$1.tail"
	return $rc
}
if churn as-built; then exit 0; fi
# One ggml: libggml-cuda.so's ggml symbols resolve to the binary's (it
# exports them, -rdynamic); its libggml-base dependency is dropped
# (patchelf), or, where patchelf is missing, met by an empty library.
mkdir -p /tmp/ggml-base-as-built && mv lib/ollama/libggml-base.so* /tmp/ggml-base-as-built/
if command -v patchelf >/dev/null; then
	for dep in $(patchelf --print-needed lib/ollama/libggml-cuda.so | grep '^libggml-base'); do patchelf --remove-needed "$dep" lib/ollama/libggml-cuda.so; done
else
	echo 'static int qwen3_no_ggml_base;' > /tmp/empty.c && gcc -shared -fPIC -o lib/ollama/libggml-base.so.0 /tmp/empty.c
fi
churn one-ggml
