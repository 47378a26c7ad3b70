# Sourced by the gpu-bench scripts, on a bare CUDA machine: unpack what
# scripts/pack-gpu-carry.sh packed into build/carry (when it is there),
# record the GPU in $OUT/gpu.txt, build libggml-cuda.so, and generate the
# Qwen3-4B-shaped F16 model into $MODEL.
mkdir -p "$OUT"
if [ -d build/carry ]; then
	mkdir -p bin build testdata/cache
	[ -f bin/qwen3-server ] || xz -dc build/carry/qwen3-server.xz > bin/qwen3-server
	[ -f build/carry/ollama.xz ] && [ ! -f build/ollama ] && xz -dc build/carry/ollama.xz > build/ollama
	[ -d build/_ggml-src ] || tar -xJf build/carry/ggml-src.tar.xz -C build
	[ -d testdata/cache/tokenizer ] || tar -xJf build/carry/tokenizer.tar.xz -C testdata/cache
	[ -f build/carry/scheduler.test.xz ] && [ ! -f bin/scheduler.test ] && xz -dc build/carry/scheduler.test.xz > bin/scheduler.test
	chmod +x bin/qwen3-server bin/scheduler.test build/ollama 2>/dev/null || true
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
nproc >> "$OUT/gpu.txt"
start=$(date +%s)
make cuda CUDA_ARCH="${CUDA_ARCH:-90}" > "$OUT/cuda-build.log" 2>&1 || { grep -E -B2 -A6 "error" "$OUT/cuda-build.log" | head -80; exit 1; }
tail -1 "$OUT/cuda-build.log"
echo "cuda build: $(( $(date +%s) - start )) s" | tee -a "$OUT/gpu.txt"
MODEL=${MODEL:-/tmp/qwen3-4b-f16.gguf}
[ -f "$MODEL" ] || bin/qwen3-server model random --shape qwen3-4b --tokenizer testdata/cache/tokenizer --out "$MODEL"
[ -f lib/ollama/libggml-cuda.so ] || { echo "no libggml-cuda.so: the CUDA build failed"; exit 1; }
# The engine tests' tiny model, for the scripts that run bin/scheduler.test.
if [ -f bin/scheduler.test ] && [ ! -f testdata/models/tiny-random.gguf ]; then
	mkdir -p testdata/models
	bin/qwen3-server model random --shape tiny --tokenizer testdata/cache/tokenizer --out testdata/models/tiny-random.gguf > /dev/null
fi
# A variant of gpu-ab-lora.sh and gpu-trace-lora.sh: "default" or
# VAR=V[,VAR=V...]; envof gives its environment assignments, dtypeof the
# adapter type of its dtype= token (F16 without one).
envof() { [ "$1" = default ] || echo "$1" | tr ',' '\n' | grep -v '^lib=\|^dtype=' | tr '\n' ' '; }
dtypeof() { case ",$1," in *,dtype=*) echo "$1" | tr ',' '\n' | sed -n 's/^dtype=//p' ;; *) echo F16 ;; esac; }
