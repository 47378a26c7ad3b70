#!/usr/bin/env bash
# One call on a CUDA machine, after scripts/pack-gpu-carry.sh (carry
# ["build/carry"]), that does what a session's GPU time is mostly for:
#   1. scripts/gpu-ab-lora.sh: the GPU adapter tests under $TEST_VARIANTS,
#      then the bench rows of $LEVELS under $VARIANTS, alternated;
#   2. one bench run under $PROFILE_VARIANT with QWEN3_DECODE_PROFILE=16:
#      llama_decode's host phases and ggml-cuda's, base against mixed;
#   3. scripts/gpu-trace-lora.sh under $TRACE_VARIANT: where the GPU time of
#      a step goes, kernel by kernel.
# The device tool brings back at most 8 files from $OUT, so everything is
# packed into six: ab.md, ab.log, profile.txt, trace.md, traces.tar.xz and
# logs.tar.xz (the rest). The first call of the sixteenth session lost its
# trace tables to that limit.
#   TEST_VARIANTS, VARIANTS, LEVELS, ROUNDS, ADAPTERS: as gpu-ab-lora.sh
#   AB_TIMEOUT       seconds for step 1 (default 380)
#   PROFILE_VARIANT  a variant as gpu-ab-lora.sh takes (default: the last of $VARIANTS); "none": no step 2
#   TRACE_VARIANT    the same for step 3 (default: the last of $VARIANTS); "none": no step 3
#   TRACE_ROWS       rows for step 3 (default "16:base 16:mixed")
#   PROFILE_LEVEL    streams:rows for step 2 (default: the first of $LEVELS)
#   PROFILE_EVERY    step 2 prints llama_decode's phases averaged over this many calls (default 16; 1: every call)
#   GEN_LEN          tokens each stream generates in every bench run (default 64)
# TRACE_VARIANT may name several variants, space-separated: one timeline each.
set -uo pipefail
cd "$(dirname "$0")/.."
O=${OUT:?OUT names the folder the results go to}
W=$(mktemp -d)
VARIANTS=${VARIANTS:-default}
last=${VARIANTS##* }
(OUT=$W/ab timeout "${AB_TIMEOUT:-380}" bash scripts/gpu-ab-lora.sh > "$W/ab.log" 2>&1; echo "gpu-ab-lora.sh: exit $?" >> "$W/ab.log")
grep -v '% of' "$W/ab.log" | tail -60
cp "$W/ab.log" "$O/ab.log"
[ -f "$W/ab/ab.md" ] && cp "$W/ab/ab.md" "$O/ab.md"
pack() { tar -C "$W" -cJf "$O/logs.tar.xz" --exclude='bench-*' --exclude='*.trace' ab pr tr 2> /dev/null; }
# no benchmark (a test failed, no CUDA backend): nothing more to measure
grep -q '^| 1 |' "$W/ab/ab.md" 2> /dev/null || { pack; exit 1; }

pv=${PROFILE_VARIANT:-$last}
if [ "$pv" != none ]; then
	OUT=$W/pr . scripts/gpu-setup.sh > /dev/null
	first_level=${LEVELS:-16:base,mixed}; first_level=${PROFILE_LEVEL:-${first_level%% *}}
	n=${first_level%%:*}; rows=${first_level#*:}
	(for kv in $(envof "$pv"); do export "$kv"; done
	 QWEN3_DECODE_PROFILE="${PROFILE_EVERY:-16}" timeout 90 bin/qwen3-server bench --model "$MODEL" --gpu-layers -1 --prompt-len 130 --gen-len "${GEN_LEN:-64}" \
		--adapter-dtype "$(dtypeof "$pv")" --adapters "${ADAPTERS:-4}" --adapter-levels "$n" --parallel "$n" --mix-rows "$rows" > "$W/pr/bench.log" 2>&1)
	{ echo "variant $pv, $n streams, rows $rows"; grep -E 'profile|tok/s; per' "$W/pr/bench.log"; } > "$O/profile.txt"
	cat "$O/profile.txt"
fi

tv=${TRACE_VARIANT:-$last}
if [ "$tv" != none ]; then
	(OUT=$W/tr ROWS="${TRACE_ROWS:-16:base 16:mixed}" VARIANTS="$tv" timeout 150 bash scripts/gpu-trace-lora.sh > "$W/tr.log" 2>&1; echo "gpu-trace-lora.sh: exit $?" >> "$W/tr.log")
	tail -5 "$W/tr.log"
	cat "$W"/tr/trace-*.md > "$O/trace.md" 2> /dev/null
	[ -f "$W/tr/traces.tar.xz" ] && cp "$W/tr/traces.tar.xz" "$O/traces.tar.xz"
	mkdir -p "$W/tr" && cp "$W/tr.log" "$W/tr/"
fi
pack
ls -la "$O"
