#!/usr/bin/env bash
# Where a decode step's GPU time goes in a real run (issue 14), in one call
# on a CUDA machine (after scripts/pack-gpu-carry.sh): build
# libggml-cuda.so and the CUPTI kernel tracer (scripts/cupti-trace.c), run
# `bench --mix-rows` once per row of $ROWS under each of $VARIANTS with the
# tracer injected, and split each row's decode step among its kernels
# (scripts/trace-kernels.py): the idle time before each kernel and the time
# it alone extends the step. Unlike Nsight Compute (gpu-profile-lora.sh),
# nothing is serialized: programmatic dependent launches overlap as they do
# in service. Results: $OUT/trace-<variant>.md, the raw timelines packed in
# $OUT/traces.tar.xz.
#   ROWS      space-separated streams:row (default "16:base 16:mixed 1:base 1:one");
#             the first row of each streams count is the others' reference
#   VARIANTS  as in gpu-ab-lora.sh: "default" or VAR=V[,VAR=V...], dtype=F32 for F32 adapters
#   ADAPTERS  random adapters bench makes (default 16)
#   SKIP, COUNT  kernels skipped (load, prefill) and then recorded, per row (default 30000, 30000)
set -uo pipefail
OUT=${OUT:-artifacts/gpu-trace}
. "$(dirname "$0")/gpu-setup.sh"
inc=$(dirname "$(find /usr/local/cuda/ /usr/local/cuda-*/ /usr/include -name cupti.h 2> /dev/null | head -1)")
lib=$(dirname "$(find /usr/local/cuda/ /usr/local/cuda-*/ /usr/lib/x86_64-linux-gnu -name 'libcupti.so*' 2> /dev/null | head -1)")
[ -f "$inc/cupti.h" ] && [ -d "$lib" ] || { echo "no CUPTI (cupti.h, libcupti.so) on this machine"; exit 1; }
# the newest kernel record the header declares (its first fields are those of every version read here)
krec=$(grep -o 'CUpti_ActivityKernel[0-9]*' "$inc/cupti_activity.h" | sort -V | tail -1)
gcc -O2 -shared -fPIC -DKREC="$krec" -I"$inc" -o /tmp/libcupti-trace.so scripts/cupti-trace.c -L"$lib" -lcupti -Wl,-rpath,"$lib" ||
	{ echo "the CUPTI tracer did not build"; exit 1; }
echo "tracer: $krec from $inc"
ROWS=${ROWS:-"16:base 16:mixed 1:base 1:one"}
VARIANTS=${VARIANTS:-default}
tdir=$(mktemp -d)
for v in $VARIANTS; do
	vt=$(echo "$v" | tr -c 'A-Za-z0-9_\n' '_')
	traces=()
	for r in $ROWS; do
		n=${r%%:*} row=${r#*:}
		t="$tdir/$vt/$n-$row.trace"
		mkdir -p "$tdir/$vt"
		(for kv in $(envof "$v"); do export "$kv"; done
		 CUDA_INJECTION64_PATH=/tmp/libcupti-trace.so CUPTI_TRACE_OUT="$t" CUPTI_TRACE_SKIP="${SKIP:-30000}" CUPTI_TRACE_COUNT="${COUNT:-30000}" \
			timeout 200 bin/qwen3-server bench --model "$MODEL" --gpu-layers -1 --prompt-len 130 --gen-len "${GEN_LEN:-64}" \
			--adapter-dtype "$(dtypeof "$v")" --adapters "${ADAPTERS:-16}" --adapter-levels "$n" --parallel "$n" --mix-rows "$row" \
			> "$tdir/$vt/$n-$row.log" 2>&1)
		rc=$?
		echo "== $v $n:$row: exit $rc, $(wc -l < "$t" 2> /dev/null || echo 0) kernels written"
		grep -E 'cupti-trace|tok/s; per decode call' "$tdir/$vt/$n-$row.log" | tail -3
		# bench exits non-zero when no CUDA backend loaded: stop at once
		[ $rc = 0 ] || { tail -20 "$tdir/$vt/$n-$row.log"; exit 1; }
		[ -s "$t" ] && traces+=("$t")
	done
	# one report per streams count, its first row the reference
	for n in $(for r in $ROWS; do echo "${r%%:*}"; done | awk '!seen[$0]++'); do
		set -- $(for t in "${traces[@]}"; do case $(basename "$t") in "$n"-*) echo "$t" ;; esac; done)
		[ $# -gt 0 ] && python3 scripts/trace-kernels.py --top 30 "$@" >> "$OUT/trace-$vt.md"
	done
	head -5 "$OUT/trace-$vt.md" 2> /dev/null
done
tar -C "$tdir" -cJf "$OUT/traces.tar.xz" .
