#!/usr/bin/env bash
# A/B of CUDA LoRA kernel variants on a CUDA machine, in one call (after
# scripts/pack-gpu-carry.sh): build libggml-cuda.so, run the GPU adapter
# tests under each of $TEST_VARIANTS, then the adapter table's rows of
# $LEVELS under each of $VARIANTS, alternated $ROUNDS times, side by side
# in $OUT/ab.md (tok/s; shared machines move 10% between runs, so only a
# difference within one round means anything).
#   VARIANTS       space-separated; each "default" or VAR=V[,VAR=V...];
#                  the token dtype=F32 benches adapters of that type (default F16)
#   TEST_VARIANTS  the same, for the tests (default: $VARIANTS); when the
#                  first fails there is no benchmark, when a later one
#                  fails that variant is left out of it
#   LEVELS         space-separated streams:rows (rows of bench --mix-rows)
#   ROUNDS         how many times each variant runs (default 2)
#   ADAPTERS       random adapters bench makes (default 4; 16 for the 16x1 row)
#   GEN_LEN        tokens each stream generates (default 64; longer runs weigh
#                  the steady decode more than the steps after the prefill)
#   ALT_SED, ALT_FILE  a second libggml-cuda.so, built from the sources
#                  with the sed script ALT_SED applied to ggml-cuda/ALT_FILE;
#                  a variant with the token lib=alt runs with it (for changes
#                  that no environment variable can switch, like a kernel's
#                  launch bounds)
# Example: VARIANTS="default GGML_CUDA_LORA_T_EARLY=0" LEVELS="1:base,one" scripts/gpu-ab-lora.sh
set -uo pipefail
OUT=${OUT:-artifacts/gpu-ab}
. "$(dirname "$0")/gpu-setup.sh"
VARIANTS=${VARIANTS:-default}
TEST_VARIANTS=${TEST_VARIANTS:-$VARIANTS}
LEVELS=${LEVELS:-"1:base,one 16:base,mixed"}
ROUNDS=${ROUNDS:-2}
cp lib/ollama/libggml-cuda.so /tmp/libggml-cuda-default.so
if [ -n "${ALT_SED:-}" ]; then
	src=build/_ggml-src/ml/backend/ggml/ggml/src/ggml-cuda/${ALT_FILE:?ALT_FILE names the file ALT_SED edits}
	cp "$src" /tmp/alt-orig
	sed -i "$ALT_SED" "$src"
	if cmp -s "$src" /tmp/alt-orig; then echo "ALT_SED changed nothing in $src"; exit 1; fi
	diff /tmp/alt-orig "$src" | head -20
	start=$(date +%s)
	cmake --build build/cuda --target ggml-cuda -j "$(nproc)" > "$OUT/alt-build.log" 2>&1 || { grep -E -A6 error "$OUT/alt-build.log" | head -40; exit 1; }
	cp build/cuda/lib/ollama/libggml-cuda.so /tmp/libggml-cuda-alt.so
	cp /tmp/alt-orig "$src"
	echo "alt build: $(( $(date +%s) - start )) s"
fi
uselib() { case ",$1," in *,lib=alt,*) cp /tmp/libggml-cuda-alt.so lib/ollama/libggml-cuda.so ;; *) cp /tmp/libggml-cuda-default.so lib/ollama/libggml-cuda.so ;; esac; }
fail=0
export GGML_CUDA_LORA_FUSION_LOG=1
for v in $TEST_VARIANTS; do
	uselib "$v"
	log="$OUT/test-$(echo "$v" | tr -c 'A-Za-z0-9_\n' '_').log"
	# GGML_CUDA_GRAPH_HINT_VERIFY: every replayed CUDA graph checked against its ggml graph
	env GGML_CUDA_GRAPH_HINT_VERIFY=1 $(envof "$v") QWEN3_TEST_GPU_LAYERS=-1 timeout 300 bin/scheduler.test -test.run \
		'^(TestLoRAStepsMatchMerged|TestLoRAOneTokenMatchesTwoOnQuantizedBases|TestConcurrentAdaptersMatchAlone|TestAdapterChangesOutputScaleZeroIsBase|TestSchedulerMixesAdaptersInOneBatch|TestMixedBaseOnlyEqualAlone|TestMixedAdaptersOneDecodeEqualAlone|TestMixedAdaptersDenseLayout|TestMixedF16AdaptersEqualAlone|TestMixedAdaptersOnF16Base|TestMixedAdaptersShortRanks|TestMixedAdaptersDeepModel|TestMixedAdaptersWideBatchEqualAlone|TestAdaptersLoadedAndUnloadedBetweenSteps|TestSeqSwitchesAdapterSetsBetweenRequests)$' \
		-test.v > "$log" 2>&1
	rc=$?
	echo "== tests, $v: exit $rc"
	grep -E '^--- |^(ok|FAIL|PASS)$|SIGSEGV|panic:|GGML_ASSERT|CUDA error' "$log" | sed -E 's/ \([0-9.]+s\)//' | sort | uniq -c | head -20
	grep -o 'LoRA fusion: [^,]*\|groups. B·t in one launch ([0-9]* with the q and k norms)' "$log" | sort | uniq -c | sort -rn | head -6 || true
	if [ $rc != 0 ]; then
		# the first test variant is the baseline: without it, no benchmark;
		# a later one that fails is left out of the benchmark
		if [ "$v" = "${TEST_VARIANTS%% *}" ]; then fail=1; else
			echo "== $v failed its tests: left out of the benchmark"
			VARIANTS=$(for x in $VARIANTS; do [ "$x" = "$v" ] || printf '%s ' "$x"; done)
		fi
	fi
done
[ $fail = 0 ] || { echo "a test failed: no benchmark"; exit 1; }
[ -n "${VARIANTS// /}" ] || { echo "no variant passed its tests: no benchmark"; exit 1; }
b() { timeout 150 bin/qwen3-server bench --model "$MODEL" --gpu-layers -1 --prompt-len 130 --gen-len "${GEN_LEN:-64}" "$@"; }
{
	printf '| round | variant |'; for l in $LEVELS; do printf ' %s |' "$l"; done; echo
	printf '| --- | --- |'; for l in $LEVELS; do printf ' --- |'; done; echo
} > "$OUT/ab.md"
for r in $(seq 1 "$ROUNDS"); do
	for v in $VARIANTS; do
		uselib "$v"
		row="| $r | $v |"
		for l in $LEVELS; do
			n=${l%%:*}; rows=${l#*:}
			md="$OUT/bench-$r-$(echo "$v-$l" | tr -c 'A-Za-z0-9_\n' '_').md"
			(for kv in $(envof "$v"); do export "$kv"; done; b --adapter-dtype "$(dtypeof "$v")" --adapters "${ADAPTERS:-4}" --adapter-levels "$n" --parallel "$n" --mix-rows "$rows" --out "$md" > /tmp/bench-run.log 2>&1) || echo "bench $v $l: exit $?"
			cat /tmp/bench-run.log >> "$OUT/bench.log"
			# each row's per-step host and GPU times (bench's progress line)
			grep -E ' tok/s; per decode call' /tmp/bench-run.log | sed "s/^/$r $v: /" >> "$OUT/steps.txt"
			# QWEN3_DECODE_PROFILE=N in a variant: llama_decode's host phases
			grep -E '^qs (decode|cuda) profile' /tmp/bench-run.log | sed "s/^/$r $v $l: /" >> "$OUT/profile.txt" || true
			# tok/s of each row, in the table's order
			row="$row $(grep -E '^\| ' "$md" 2>/dev/null | tail -n +3 | awk -F'|' '{gsub(/ /,"",$4); printf "%s ", $4}')|"
		done
		echo "$row" | tee -a "$OUT/ab.md"
	done
done
{ echo; echo 'Per row: host ("launch") and GPU ("GPU wait") time of a step:'; echo; echo '```'; cat "$OUT/steps.txt" 2>/dev/null; echo '```'; } >> "$OUT/ab.md"
cat "$OUT/ab.md"
