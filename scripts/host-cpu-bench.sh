#!/usr/bin/env bash
# issue 12's CPU table on a machine without Go (the GPU machines' host CPU),
# after scripts/pack-gpu-carry.sh: the small model, `bench --http` at 1, 4
# and 16 streams with only the CPU backends of lib/ollama beside a copy of
# the binary (no CUDA library in reach), twice; with build/before/lib/ollama
# (the CPU backends of an earlier build, optional) beside another copy,
# alternated against it.
# Results in $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-artifacts/host-cpu}
mkdir -p "$OUT" bin testdata/cache
[ -f bin/qwen3-server ] || xz -dc build/carry/qwen3-server.xz > bin/qwen3-server
chmod +x bin/qwen3-server
[ -d testdata/cache/tokenizer ] || tar -xJf build/carry/tokenizer.tar.xz -C testdata/cache
run=$(mktemp -d); mkdir -p "$run/bin" "$run/lib/ollama"
cp bin/qwen3-server "$run/bin/" && cp lib/ollama/libggml-cpu*.so "$run/lib/ollama/"
if [ -d build/before/lib/ollama ]; then
	mkdir -p build/before/bin && cp bin/qwen3-server build/before/bin/
fi
MODEL=/tmp/small-random.gguf
[ -f "$MODEL" ] || "$run/bin/qwen3-server" model random --shape small --tokenizer testdata/cache/tokenizer --out "$MODEL" > /dev/null
lscpu > "$OUT/lscpu.txt"
args=(bench --http --model "$MODEL" --parallel "${LEVELS:-1,4,16}" --prompt-len 130 --gen-len "${GEN_LEN:-32}" --batch-size 512)
# VARIANTS: after (this build), before (build/before's backends),
# nopool (this build with QWEN3_CPU_THREADPOOL=0), each optionally with
# +threads=N (--threads N), +spin=N (QWEN3_BARRIER_SPIN=N) and +pool=0/1
# (QWEN3_CPU_THREADPOOL), e.g. after+threads=8.
for i in $(seq 1 "${RUNS:-2}"); do
	for v in ${VARIANTS:-after before}; do
		bin="$run/bin/qwen3-server" env=(QWEN3_UNUSED=) extra=()
		IFS=+ read -ra parts <<< "$v"
		case ${parts[0]} in
		before) [ -x build/before/bin/qwen3-server ] || continue; bin=build/before/bin/qwen3-server;;
		nopool) env+=(QWEN3_CPU_THREADPOOL=0);;
		esac
		for p in "${parts[@]:1}"; do
			case $p in
			threads=*) extra+=(--threads "${p#threads=}");;
			spin=*) env+=(QWEN3_BARRIER_SPIN="${p#spin=}");;
			pool=*) env+=(QWEN3_CPU_THREADPOOL="${p#pool=}");;
			*) echo "unknown variant part $p" >&2; exit 2;;
			esac
		done
		# File names without + and =: the device tool does not return them.
		f="$OUT/${v//[+=]/_}-$i"
		env "${env[@]}" timeout 300 "$bin" "${args[@]}" "${extra[@]}" ${BENCH_ARGS:-} --out "$f.md" > /dev/null 2> "$f.log"
		echo "== $v, run $i: exit $?"; grep -E "^device|^\| [0-9]|^Idle|^One stream" "$f.md"
	done
done
