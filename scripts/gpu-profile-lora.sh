#!/usr/bin/env bash
# Where the LoRA paths' GPU time goes (issue 14), in one call on a CUDA
# machine (after scripts/pack-gpu-carry.sh): Nsight Compute (ncu, which the
# CUDA image has; it has no nsys) times every kernel of a window of decode
# steps, one bench process per row (`bench --adapters --mix-rows`; ROWS,
# default 1:base 1:one 16:base 16:mixed). ncu runs kernels one at a time
# with cold caches and fixed clocks, so its times are longer than in a real
# run: compare rows with each other, not with bench's tok/s. Per row
# $OUT/ncu-<N>-<row>.csv, all of them packed into $OUT/ncu.tar.xz (the
# device tool returns few files); summarise with
# `python3 scripts/ncu-kernels.py ncu-*.csv`.
set -uo pipefail
OUT=${OUT:-artifacts/gpu-profile}
. "$(dirname "$0")/gpu-setup.sh"
export PATH=$PATH:/usr/local/cuda/bin
command -v ncu > /dev/null || { echo "no ncu on this machine"; exit 1; }
tmp=$(mktemp -d)
for r in ${ROWS:-1:base 1:one 16:base 16:mixed}; do
	n=${r%%:*} row=${r#*:}
	# Skip model load, prefill and the first decode steps; 2,500 kernels is
	# a few decode steps of Qwen3-4B.
	timeout 240 ncu --metrics gpu__time_duration.sum --launch-skip "${SKIP:-30000}" --launch-count "${COUNT:-2500}" --csv --print-units base \
		bin/qwen3-server bench --model "$MODEL" --gpu-layers -1 --prompt-len 32 --gen-len 64 --adapter-dtype F16 \
		--adapters 4 --adapter-levels "$n" --parallel "$n" --mix-rows "$row" > "$tmp/ncu-$n-$row.csv" 2> "$tmp/ncu-$n-$row.log"
	echo "== $n $row: exit $?, $(grep -c '^"' "$tmp/ncu-$n-$row.csv") csv lines"
done
tar -C "$tmp" -cJf "$OUT/ncu.tar.xz" .
