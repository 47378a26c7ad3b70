#!/usr/bin/env bash
# HTTP benchmark on a CUDA machine, in one go: build libggml-cuda.so,
# generate the Qwen3-4B-shaped model, start Ollama (built from the same
# ollama module, using the same CUDA library) on the same GGUF, then run
# `qwen3-server bench --http` with Ollama as the peer. Results in $OUT.
#
# Inputs from the development machine (scripts/pack-gpu-carry.sh makes them
# small enough to carry): bin/qwen3-server, build/_ggml-src,
# testdata/cache/tokenizer, and an ollama binary (go build
# github.com/ollama/ollama@v0.17.4 with the same CGO_CPPFLAGS).
set -euo pipefail
OUT=${OUT:-artifacts/gpu-http}
. "$(dirname "$0")/gpu-setup.sh"

PEER=()
if [ -x build/ollama ]; then
	# Ollama looks for GPU libraries in <exe>/../lib/ollama/<variant>/.
	root=/tmp/ollama-root
	mkdir -p $root/bin $root/lib/ollama/cuda_v13
	cp build/ollama $root/bin/ollama
	cp -a lib/ollama/libggml-cuda.so lib/ollama/libggml-base.so* $root/lib/ollama/cuda_v13/
	export OLLAMA_HOST=127.0.0.1:11434 OLLAMA_MODELS=/tmp/ollama-models OLLAMA_NUM_PARALLEL=${OLLAMA_NUM_PARALLEL:-64} \
		OLLAMA_KEEP_ALIVE=-1 OLLAMA_FLASH_ATTENTION=1 OLLAMA_MAX_QUEUE=512
	$root/bin/ollama serve > "$OUT/ollama.log" 2>&1 &
	for _ in $(seq 1 60); do curl -fsS http://127.0.0.1:11434/api/version >/dev/null 2>&1 && break; sleep 1; done
	printf 'FROM %s\nPARAMETER num_ctx 1024\n' "$MODEL" > /tmp/Modelfile
	$root/bin/ollama create qwen3-bench -f /tmp/Modelfile > "$OUT/ollama-create.log" 2>&1
	# load it (and check it runs on the GPU) before measuring
	curl -fsS http://127.0.0.1:11434/v1/completions -d '{"model":"qwen3-bench","prompt":"hi","max_tokens":4}' > /dev/null
	$root/bin/ollama ps | tee "$OUT/ollama-ps.txt"
	PEER=(--peer-url http://127.0.0.1:11434/v1 --peer-model qwen3-bench --peer-name ollama)
fi
bin/qwen3-server bench --http --model "$MODEL" --parallel "${PARALLEL:-1,4,16,64}" --out "$OUT/http.md" "${PEER[@]}" "$@" 2>&1 | tee "$OUT/http.log"
